"""Reading reference catalogues: the spellings of common extracts, units, colours and clear errors."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.errors import InputError, ParameterError
from dancekit.io.catalogue import parse_colour, read_reference_catalogue


def _table(path, columns, units=None):
    cols = [fits.Column(name, "D" if np.asarray(v).dtype.kind == "f" else "10A", array=v,
                        unit=(units or {}).get(name)) for name, v in columns.items()]
    fits.BinTableHDU.from_columns(cols).writeto(path)
    return path


def test_gaia_like_extract_gives_radians_band_errors_and_a_colour_difference(tmp_path):
    g, bp, rp, snr = np.array([15.0, 16.0]), np.array([15.4, 16.9]), np.array([14.5, 15.2]), np.array([1000.0, 100.0])
    path = _table(tmp_path / "gaia.fits", {"ra": np.array([10.0, 350.0]), "dec": np.array([-30.0, 45.0]),
                                           "phot_g_mean_mag": g, "phot_bp_mean_mag": bp, "phot_rp_mean_mag": rp,
                                           "phot_g_mean_flux_over_error": snr})
    cat = read_reference_catalogue(str(path), band="G", colour="bp-rp")
    np.testing.assert_allclose(cat.ra, np.radians([10.0, 350.0]))
    np.testing.assert_allclose(cat.dec, np.radians([-30.0, 45.0]))
    np.testing.assert_allclose(cat.mag, g)
    np.testing.assert_allclose(cat.colour, bp - rp)
    np.testing.assert_allclose(cat.mag_err, 2.5 / np.log(10) / snr)  # σ_m = 1.0857 / (S/N)


def test_vizier_like_columns_a_colour_column_and_radian_units(tmp_path):
    path = _table(tmp_path / "v.fits", {"RAJ2000": np.array([0.1, 0.2]), "DEJ2000": np.array([0.3, -0.4]),
                                        "rmag": np.array([14.0, 15.0]), "e_rmag": np.array([0.01, 0.02]),
                                        "g-r": np.array([0.5, 0.7])}, units={"RAJ2000": "rad", "DEJ2000": "rad"})
    cat = read_reference_catalogue(str(path), band="r", colour="g-r")
    np.testing.assert_allclose(cat.ra, [0.1, 0.2])
    np.testing.assert_allclose(cat.mag_err, [0.01, 0.02])
    np.testing.assert_allclose(cat.colour, [0.5, 0.7])
    plain = read_reference_catalogue(str(_table(tmp_path / "p.fits", {"ra": np.array([1.0]), "dec": np.array([2.0]),
                                                                       "mag": np.array([12.0])})))
    assert plain.colour is None and plain.mag_err[0] == 0.0


def test_missing_columns_are_named_with_the_available_ones(tmp_path):
    path = _table(tmp_path / "c.fits", {"ra": np.array([1.0]), "dec": np.array([2.0]), "gmag": np.array([12.0])})
    with pytest.raises(InputError, match=r"c.fits: the catalogue has no 'r'-band magnitude column .*it has: ra, dec, gmag"):
        read_reference_catalogue(str(path), band="r")
    with pytest.raises(InputError, match=r"cannot form the colour g-i: .*'i'-band"):
        read_reference_catalogue(str(path), band="g", colour="g-i")
    no_dec = _table(tmp_path / "d.fits", {"ra": np.array([1.0]), "mag": np.array([12.0])})
    with pytest.raises(InputError, match="no declination column .*it has: ra, mag"):
        read_reference_catalogue(str(no_dec))
    text = _table(tmp_path / "t.fits", {"ra": np.array(["a"]), "dec": np.array([2.0]), "mag": np.array([1.0])})
    with pytest.raises(InputError, match="column ra: column holds non-numeric values"):
        read_reference_catalogue(str(text))
    with pytest.raises(ParameterError, match="colour must read BAND-BAND"):
        parse_colour("gr")
    with pytest.raises(InputError, match="no such file"):
        read_reference_catalogue(str(tmp_path / "absent.fits"))
