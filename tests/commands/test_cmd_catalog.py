"""`dancekit catalog` through the real entry point: the table it writes (columns, units, WCS round
trip, provenance, the PSF extension a second run can reuse), the truth residuals, and the one-line
errors with exit 2 and nothing written."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tests.conftest import make_wcs, run_cli
from tests.photometry.test_photometry_psf import _dual_field

COLUMNS = ["x", "y", "ra", "dec", "flux", "flux_err", "mag", "mag_err", "flags"]


def _write_field(folder, shape=(128, 128)):
    sharp, blurred, x, y, flux = _dual_field(shape=shape)
    header = make_wcs(shape).to_header()
    header.update({"EXPTIME": 0.19, "DATE-OBS": "2022-05-27T22:10:00", "BUNIT": "electron", "NCOMBINE": 1})
    fits.PrimaryHDU(sharp.astype(np.float32), header=header).writeto(folder / "inferred.fits")
    fits.PrimaryHDU(np.minimum(blurred, 3e4).astype(np.float32), header=header).writeto(folder / "average.fits")
    truth = Table({"x": x, "y": y, "flux": flux, "mag": 25.0 - 2.5 * np.log10(flux)})
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(truth)]).writeto(folder / "video.fits")
    with fits.open(folder / "video.fits", mode="update") as hdul:
        hdul[1].name = "CATALOG"
    return x, y, flux


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory):
    """One run on a rendered field, with its truth: (folder, truth arrays, JSON summary)."""
    folder = tmp_path_factory.mktemp("catalog")
    truth = _write_field(folder)
    result = run_cli("catalog", folder / "inferred.fits", "--measure", folder / "average.fits", "--saturation", "3e4",
                     "--zero-point", "25", "--truth", f"{folder / 'video.fits'}[CATALOG]", "-o", folder / "stars.fits",
                     "--json")
    assert result.returncode == 0, result.stderr.decode()
    return folder, truth, json.loads(result.stdout)


def test_catalogue_table_psf_extension_and_headers(catalogued):
    folder, (x, y, flux), summary = catalogued
    with fits.open(folder / "stars.fits", checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "CATALOG", "PSF"]
        assert all(h.verify_checksum() == 1 for h in hdul)
        primary, table_header = hdul[0].header, hdul["CATALOG"].header
        table = Table(hdul["CATALOG"].data)
        psf, psf_header = hdul["PSF"].data, hdul["PSF"].header
    assert table.colnames[:9] == COLUMNS
    assert len(table) == summary["stars"] == len(x)
    assert primary["EXPTIME"] == 0.19 and primary["DATE-OBS"] == "2022-05-27T22:10:00" and "DKVERS" in primary
    assert "catalog" in "".join(str(h) for h in primary["HISTORY"])
    units = {table_header[f"TTYPE{i}"]: table_header.get(f"TUNIT{i}") for i in range(1, len(table.colnames) + 1)}
    assert units["x"] == "pix" and units["ra"] == "deg" and units["flux"] == "electron" and units["mag"] == "mag"
    assert table_header["FLAG4"] == "blended" and table_header["MAGZPT"] == 25.0
    assert table_header["CONFERR"] == pytest.approx(summary["confusion_error"]) and summary["confusion_error"] >= 0
    assert psf_header["OVERSAMP"] == 1 and psf_header["PSFSTARS"] == summary["psf"]["stars"] >= 5
    assert psf.sum() == pytest.approx(1.0, rel=1e-5) and psf.shape[0] % 2 == 1


def test_sky_positions_round_trip_through_the_wcs(catalogued):
    folder, _, _ = catalogued
    table = Table.read(folder / "stars.fits", hdu="CATALOG")
    x, y = WCS(fits.getheader(folder / "inferred.fits")).all_world2pix(table["ra"], table["dec"], 0)
    np.testing.assert_allclose(x, table["x"], atol=1e-6)
    np.testing.assert_allclose(y, table["y"], atol=1e-6)


def test_truth_residuals_and_json_summary(catalogued):
    folder, (x, y, flux), summary = catalogued
    table = Table.read(folder / "stars.fits", hdu="CATALOG")
    truth = summary["truth"]
    assert truth["n_true"] == len(x) and truth["n_matched"] == len(x) and truth["recall"] == 1.0
    matched = table["true_index"]
    np.testing.assert_allclose(table["x_true"], x[matched])
    np.testing.assert_allclose(table["mag_residual"], table["mag"] - table["mag_true"], equal_nan=True)
    clean = table["flags"] == 0
    assert truth["clean_mag_residual_robust_std"] < 0.05
    assert np.abs(table["mag_residual"][clean] - truth["clean_mag_residual_median"]).max() < 0.25
    assert summary["flagged"]["blended"] >= 2 and summary["flagged"]["saturated"] >= 1 and summary["flagged"]["edge"] >= 1


def test_a_psf_from_an_earlier_catalogue_gives_the_same_fluxes(catalogued):
    folder, _, _ = catalogued
    result = run_cli("catalog", folder / "inferred.fits", "-m", folder / "average.fits", "--saturation", "3e4",
                     "--zero-point", "25", "--psf", f"{folder / 'stars.fits'}[PSF]", "-o", folder / "again.fits")
    assert result.returncode == 0, result.stderr.decode()
    first = Table.read(folder / "stars.fits", hdu="CATALOG")
    again = Table.read(folder / "again.fits", hdu="CATALOG")
    assert fits.getheader(folder / "again.fits", "PSF")["PSFSTARS"] == 0
    clean = first["flags"] == 0
    np.testing.assert_allclose(again["flux"][clean], first["flux"][clean], rtol=1e-3)


@pytest.mark.parametrize("problem, message", [
    ("shape", "one pixel grid"), ("wcs", "WCS of"), ("empty", "no star found"), ("few", "cannot build a PSF"),
    ("nan_psf", "unusable PSF"), ("exists", "output exists"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, problem, message):
    rng = np.random.default_rng(8)
    header = make_wcs((64, 64)).to_header()
    image = rng.normal(0, 1, (64, 64)).astype(np.float32)
    stars = image.copy()
    stars[20:23, 20:23] += 500.0
    stars[40:43, 44:47] += 500.0
    detect, measure, psf = tmp_path / "detect.fits", tmp_path / "measure.fits", None
    fits.PrimaryHDU(stars, header=header).writeto(detect)
    fits.PrimaryHDU(stars + 100, header=header).writeto(measure)
    if problem == "shape":
        fits.PrimaryHDU(stars[:, :60] + 100, header=header).writeto(measure, overwrite=True)
    elif problem == "wcs":
        fits.PrimaryHDU(stars + 100, header=make_wcs((64, 64), ra=10.0).to_header()).writeto(measure, overwrite=True)
    elif problem == "empty":
        fits.PrimaryHDU(image, header=header).writeto(detect, overwrite=True)
    elif problem == "nan_psf":
        psf = tmp_path / "psf.fits"
        fits.PrimaryHDU(np.where(np.eye(9) > 0, np.nan, 1.0)).writeto(psf)
    output = tmp_path / "stars.fits"
    if problem == "exists":
        output.write_bytes(b"keep me")
    args = ["catalog", detect, "-m", measure, "-o", output] + (["--psf", psf] if psf else [])
    result = run_cli(*args)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr
    if problem == "exists":
        assert output.read_bytes() == b"keep me"
    else:
        assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_help_documents_flags_and_has_an_example():
    result = run_cli("catalog", "--help")
    text = " ".join(result.stdout.decode().split())
    assert result.returncode == 0
    assert "Example: dancekit catalog inferred.fits --measure average.fits" in text
    for flag in ("1 saturated", "2 edge", "4 blended", "16 non-positive flux", "32 fit failed"):
        assert flag in text
