"""AOT (aotpy) and modal-FITS telemetry: round trips, what is read from where, and refusals."""

import numpy as np
import pytest
from astropy.io import fits

from dancekit.ao.pseudo_open_loop import from_radians_at_500nm, to_radians_at_500nm
from dancekit.errors import InputError, ParameterError
from dancekit.io.aot import read_telemetry, write_aot, write_modal_fits
from dancekit.io.provenance import Provenance

T, M, S, A = 300, 14, 12, 241


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(T, 2, S)), rng.normal(size=(M, 2, S)), rng.normal(size=(T, A)),
            rng.normal(size=(M, A)))


def _aot(path, closed=True, **kw):
    slopes, s2m, commands, c2m = _arrays()
    args = dict(slopes=slopes, slopes_to_modes=s2m, frame_rate=250.0, delay=2.0, closed_loop=closed,
                commands=commands if closed else None, commands_to_modes=c2m if closed else None,
                diameter=1.8, obstruction=0.077, elevation=30.0, truth={"r0": 0.1, "seeing": 1.0},
                cards={"SIMR0": (0.1, "[m]")}, provenance=Provenance("dancekit test", seed=7))
    args.update(kw)
    write_aot(str(path), **args)
    return slopes, s2m, commands, c2m


def test_aot_round_trip_keeps_arrays_and_loop_parameters(tmp_path):
    path = tmp_path / "t.fits"
    slopes, s2m, commands, c2m = _aot(path)
    tel = read_telemetry(str(path))
    assert tel.format == "aot" and tel.closed_loop and tel.n_frames == T
    assert np.array_equal(tel.slopes, slopes) and np.array_equal(tel.slopes_to_modes, s2m)
    assert np.array_equal(tel.commands, commands) and np.array_equal(tel.commands_to_modes, c2m)
    assert (tel.frame_rate, tel.delay, tel.diameter) == (250.0, 2.0, 1.8)
    assert tel.obstruction == pytest.approx(0.077)
    assert tel.airmass == pytest.approx(2.0)  # elevation 30 deg: 1 / sin(30 deg)
    assert tel.truth["r0"] == pytest.approx(0.1)
    assert tel.modal_unit is None and tel.noll_min is None  # as the NAOMI translator: not stated
    header = fits.getheader(path)
    assert header["AOT-VERS"] and header["DKSEED"] == 7 and "CHECKSUM" in header
    assert "dancekit test" in str(header["HISTORY"])


def test_aot_written_by_dancekit_reads_back_with_plain_aotpy(tmp_path):
    import aotpy

    path = tmp_path / "t.fits"
    slopes, *_ = _aot(path, closed=False)
    system = aotpy.AOSystem.read_from_file(str(path))
    loop = system.loops[0]
    assert loop.closed is False and loop.framerate == 250.0 and loop.commands is None
    assert np.array_equal(loop.input_sensor.measurements.data, slopes)


def test_open_loop_aot_needs_no_commands(tmp_path):
    path = tmp_path / "t.fits"
    _aot(path, closed=False)
    tel = read_telemetry(str(path))
    assert not tel.closed_loop and tel.commands is None


def test_closed_loop_without_commands_is_refused(tmp_path):
    path = tmp_path / "t.fits"
    _aot(path, closed=True, commands=None, commands_to_modes=None)
    with pytest.raises(InputError, match="closed loop .* without DM commands"):
        read_telemetry(str(path))


def test_aot_without_loop_tables_is_refused(tmp_path):
    path, broken = tmp_path / "t.fits", tmp_path / "broken.fits"
    _aot(path)
    with fits.open(path) as hdus:
        fits.HDUList([h for h in hdus if h.name not in ("AOT_LOOPS", "AOT_LOOPS_CONTROL")]).writeto(broken)
    with pytest.raises(InputError, match="without the AOT_LOOPS, AOT_LOOPS_CONTROL table"):
        read_telemetry(str(broken))


def test_plain_image_is_not_telemetry(tmp_path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((8, 8))).writeto(path)
    with pytest.raises(InputError, match="not AO telemetry"):
        read_telemetry(str(path))


def test_modal_round_trip_and_header_contract(tmp_path):
    path = tmp_path / "m.fits"
    modes = np.random.default_rng(1).normal(size=(T, M))
    write_modal_fits(str(path), modes, noll_min=2, unit="rad", wavelength=1.65e-6, frame_rate=500.0,
                     diameter=1.8, obstruction=0.077, airmass=1.3)
    tel = read_telemetry(str(path))
    assert tel.format == "modal" and np.allclose(tel.modes, modes)
    assert (tel.noll_min, tel.modal_unit, tel.wavelength, tel.frame_rate, tel.airmass) == (2, "rad", 1.65e-6, 500.0, 1.3)
    assert (fits.getheader(path)["NOLLMAX"], fits.getheader(path)["POL"]) == (15, True)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(POL=False), "POL != T"),
    (lambda h: h.remove("BUNIT"), "without BUNIT"),
    (lambda h: h.update(NOLLMAX=20), "NOLLMIN..NOLLMAX = 2..20 is 19 modes but the image has 14"),
])
def test_malformed_modal_fits_is_refused(tmp_path, edit, message):
    path = tmp_path / "m.fits"
    hdu = fits.PrimaryHDU(np.zeros((T, M)))
    hdu.header.update(NOLLMIN=2, NOLLMAX=15, BUNIT="rad", WAVELEN=5e-7, FRAMERAT=500.0, POL=True)
    edit(hdu.header)
    hdu.writeto(path)
    with pytest.raises(InputError, match=message):
        read_telemetry(str(path))


def test_modal_units_convert_to_radians_at_500nm():
    # 1 um of wavefront is 2 pi / 0.5 rad at 500 nm (Turlib's NAOMI factor); phase scales as 1/lambda
    assert to_radians_at_500nm(1.0, "um") == pytest.approx(2 * np.pi / 0.5)
    assert to_radians_at_500nm(1e-6, "m") == pytest.approx(to_radians_at_500nm(1000.0, "nm"))
    assert to_radians_at_500nm(1.0, "rad", 1e-6) == pytest.approx(2.0)
    assert from_radians_at_500nm(to_radians_at_500nm(0.3, "um"), "um") == pytest.approx(0.3)
    with pytest.raises(ParameterError, match="unknown modal unit 'arcsec'"):
        to_radians_at_500nm(1.0, "arcsec")
    with pytest.raises(ParameterError, match="need the wavelength"):
        to_radians_at_500nm(1.0, "rad")
