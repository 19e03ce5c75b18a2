"""``dancekit evaluate`` through the real entry point, on star fields of known PSF width."""

import json
import re

import numpy as np
import pytest
from astropy.io import fits

from tests.conftest import make_wcs

SHAPE = (160, 170)


def star_field(sigma, x, y, flux, noise, seed):
    """Gaussian stars of width ``sigma`` px, summed exactly per pixel (no aliasing), plus noise."""
    from scipy.special import erf

    def cdf(edges, centre):
        return 0.5 * (1 + erf((edges[None, :] - centre[:, None]) / (np.sqrt(2) * sigma)))

    ex, ey = np.arange(SHAPE[1] + 1) - 0.5, np.arange(SHAPE[0] + 1) - 0.5
    px, py = np.diff(cdf(ex, x), axis=1), np.diff(cdf(ey, y), axis=1)
    image = np.einsum("k,ky,kx->yx", flux, py, px)
    return (image + np.random.default_rng(seed).normal(0, noise, SHAPE)).astype(np.float32)


@pytest.fixture
def field(tmp_path):
    rng = np.random.default_rng(11)
    n = 40
    x = rng.uniform(15, SHAPE[1] - 15, n)
    y = rng.uniform(15, SHAPE[0] - 15, n)
    keep = np.ones(n, bool)  # isolated stars only (> 14 px apart): D50 is then that of one PSF
    for i in range(n):
        keep[i] = np.all(np.hypot(x[:i][keep[:i]] - x[i], y[:i][keep[:i]] - y[i]) > 14)
    x, y = x[keep], y[keep]
    flux = 10 ** rng.uniform(3.3, 4.3, len(x))
    truth = star_field(1.0, x, y, flux, 0.0, 0)
    sharp = star_field(1.0, x, y, flux, 2.0, 1)
    blurred = star_field(2.5, x, y, flux, 2.0, 2)
    header = make_wcs(SHAPE).to_header()
    video = tmp_path / "video.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)),
                  fits.ImageHDU(truth, header=header, name="TRUTH")]).writeto(video)
    fits.PrimaryHDU(sharp, header=header).writeto(tmp_path / "sharp.fits")
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2), np.float32)),
                  fits.ImageHDU(blurred, header=header, name="AVERAGE")]).writeto(tmp_path / "blurred.fits")
    return tmp_path, len(x)


def d50_of_gaussian(sigma):
    """Half-light diameter of a circular Gaussian: 2 sigma sqrt(2 ln 2) (pixel-convolved: sigma^2 + 1/12)."""
    return 2 * np.sqrt(sigma**2 + 1 / 12) * np.sqrt(2 * np.log(2))


def peak_over_box(sigma):
    """Peak pixel / 10x10-px sum of a Gaussian centred on a pixel (box from -5.5 to +4.5 px)."""
    from scipy.special import erf

    peak = erf(0.5 / (np.sqrt(2) * sigma)) ** 2
    box = (0.5 * (erf(5.5 / (np.sqrt(2) * sigma)) + erf(4.5 / (np.sqrt(2) * sigma)))) ** 2
    return peak / box


def test_sharp_and_blurred_images_get_the_d50_and_strehl_of_their_psf(cli, field):
    tmp_path, n_stars = field
    result = cli("evaluate", tmp_path / "sharp.fits", f"{tmp_path / 'blurred.fits'}[AVERAGE]",
                 "--truth", f"{tmp_path / 'video.fits'}[TRUTH]", "--json")
    assert result.returncode == 0, result.stderr.decode()
    sharp, blurred = json.loads(result.stdout)["results"]
    assert sharp["n_true"] == n_stars and sharp["precision"] == 1.0 and sharp["recall"] == 1.0
    assert sharp["mean_d50"] == pytest.approx(d50_of_gaussian(1.0), rel=0.08)
    assert blurred["mean_d50"] == pytest.approx(d50_of_gaussian(2.5), rel=0.08)
    assert sharp["mean_strehl"] == pytest.approx(1.0, abs=0.05)
    # Roberts et al. 2004: (peak / 10x10 sum) over the same for the truth, for pixelised Gaussians
    assert blurred["mean_strehl"] == pytest.approx(peak_over_box(2.5) / peak_over_box(1.0), rel=0.1)
    assert abs(sharp["mag_residual_mean"]) < 0.01 and sharp["centroid_residual_std"] < 0.05
    assert blurred["mag_residual_mean"] > 0.02  # a 10-px aperture loses the wings of the wide PSF
    assert blurred["mean_d50_arcsec"] == pytest.approx(blurred["mean_d50"] * 0.235, rel=1e-6)
    bins = sharp["by_magnitude"]
    assert sum(bins["n"]) == sharp["n_matched"] and sum(bins["n_true"]) == n_stars
    sweep = sharp["sweep"]
    assert sweep["recall"] == sorted(sweep["recall"], reverse=True)  # higher threshold, fewer stars
    assert 0 < sharp["best"]["f1"] <= 1


def test_fits_tables_hold_summary_bins_sweep_and_stars(cli, field):
    tmp_path, n_stars = field
    out = tmp_path / "metrics.fits"
    result = cli("evaluate", tmp_path / "sharp.fits", f"{tmp_path / 'blurred.fits'}[AVERAGE]",
                 "--truth", tmp_path / "video.fits", "--thresholds", "3,5,10", "--mag-bins", "-11:-7:1", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    with fits.open(out, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SUMMARY", "BYMAG", "SWEEP", "STARS"]
        assert hdul["PRIMARY"].header["TRUTH"].endswith("video.fits[TRUTH]")
        summary = hdul["SUMMARY"].data
        assert len(summary) == 2 and summary["n_true"][0] == n_stars
        assert len(hdul["SWEEP"].data) == 2 * 3 and len(hdul["BYMAG"].data) == 2 * 4
        stars = hdul["STARS"].data
        assert len(stars) == summary["n_matched"].sum()
        assert np.all(np.abs(stars["x"] - stars["x_true"]) < 2)


def test_truth_of_the_wrong_shape_exits_2_naming_both(cli, field, tmp_path):
    fits.PrimaryHDU(np.zeros((40, 50), np.float32)).writeto(tmp_path / "small.fits")
    out = tmp_path / "m.fits"
    result = cli("evaluate", tmp_path / "sharp.fits", "--truth", tmp_path / "small.fits", "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 2
    assert re.search(r"image .*sharp.fits is 160x170 px but the truth .*small.fits is 40x50 px", stderr), stderr
    assert not out.exists()
    result = cli("evaluate", tmp_path / "sharp.fits", "--truth", tmp_path / "small.fits")
    assert result.returncode == 2 and "give -o metrics.fits, --json and/or --plot PNG" in result.stderr.decode()


def test_images_of_different_noise_are_judged_on_one_true_star_list(cli, tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.uniform(15, SHAPE[1] - 15, 30), rng.uniform(15, SHAPE[0] - 15, 30)
    flux = 10 ** rng.uniform(1.5, 4.0, 30)  # the faint end is lost in the noisy image only
    truth = star_field(1.0, x, y, flux, 0.0, 0)
    fits.HDUList([fits.PrimaryHDU(truth), fits.ImageHDU(truth, name="TRUTH")]).writeto(tmp_path / "truth.fits")
    fits.PrimaryHDU(star_field(1.0, x, y, flux, 0.5, 1)).writeto(tmp_path / "clean.fits")
    fits.PrimaryHDU(star_field(1.0, x, y, flux, 8.0, 2)).writeto(tmp_path / "noisy.fits")
    result = cli("evaluate", tmp_path / "noisy.fits", tmp_path / "clean.fits", "--truth", tmp_path / "truth.fits", "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    noisy, clean = report["results"]
    # one truth list, detected at 5 x the lower (clean) rms: the noisy image's recall is lower on it
    assert report["truth_level"] == pytest.approx(5 * 0.5, rel=0.15)
    assert noisy["n_true"] == clean["n_true"] and noisy["recall"] < clean["recall"]
    # the common set is the stars the noisy image recovered (the clean one recovers them all)
    assert noisy["common_n"] == clean["common_n"] == noisy["n_matched"] < clean["n_matched"]
    assert clean["common_mean_d50"] == pytest.approx(d50_of_gaussian(1.0), rel=0.08)
    fixed = cli("evaluate", tmp_path / "noisy.fits", "--truth", tmp_path / "truth.fits", "--truth-level", "40", "--json")
    assert json.loads(fixed.stdout)["results"][0]["n_true"] < noisy["n_true"]
    bad = cli("evaluate", tmp_path / "noisy.fits", "--truth", tmp_path / "truth.fits", "--truth-level", "-1", "--json")
    assert bad.returncode == 2 and "--truth-level: must be > 0, got -1.0" in bad.stderr.decode()


def test_plot_shows_the_reported_numbers_and_the_psf_widths(cli, field):
    from PIL import Image

    from dancekit.io.figure_files import read_plotted_data

    tmp_path, _ = field
    png = tmp_path / "quality.png"
    result = cli("evaluate", tmp_path / "sharp.fits", f"{tmp_path / 'blurred.fits'}[AVERAGE]",
                 "--truth", f"{tmp_path / 'video.fits'}[TRUTH]", "--json", "--plot", png)
    assert result.returncode == 0, result.stderr.decode()
    sharp, blurred = json.loads(result.stdout)["results"]
    with Image.open(png) as image:
        assert np.asarray(image.convert("L"), float).var() > 150  # not a blank canvas
    data = read_plotted_data(png)

    def shown(panel, name):
        (values,) = [s for label, s in data[panel].items() if label.startswith(name)]
        return {k: np.array([np.nan if v is None else v for v in vs], float) for k, vs in values.items()}

    for report, name in ((sharp, "sharp.fits"), (blurred, "blurred.fits[AVERAGE]")):  # the files' names
        d50 = np.array([np.nan if v is None else v for v in report["by_magnitude"]["d50_mean"]])
        np.testing.assert_allclose(shown("fig8_d50", name)["y"], d50 * 0.235, rtol=1e-9)  # arcsec
        (point,) = [s for label, s in data["fig11_sweep"].items() if label == f"{name} at 5 σ"]
        assert (point["x"][0], point["y"][0]) == (report["recall"], report["precision"])
    # Fig. 5: the sharp image has the truth's PSF, the blurred one a wider Gaussian
    dd50_sharp, dd50_blurred = shown("fig5_dd50", "sharp.fits")["y"], shown("fig5_dd50", "blurred.fits")["y"]
    assert np.nanmax(np.abs(dd50_sharp)) < 0.05
    expected = (d50_of_gaussian(2.5) - d50_of_gaussian(1.0)) * 0.235
    np.testing.assert_allclose(dd50_blurred[np.isfinite(dd50_blurred)], expected, rtol=0.12)
    assert np.nanmax(np.abs(shown("fig5_dx", "sharp.fits")["y"])) < 0.05  # px


def test_plot_alone_is_an_output_and_is_never_overwritten_by_surprise(cli, field):
    tmp_path, _ = field
    png = tmp_path / "quality.png"
    args = ("evaluate", tmp_path / "sharp.fits", "--truth", tmp_path / "video.fits")
    assert cli(*args, "--plot", png).returncode == 0 and png.stat().st_size > 0
    before = png.read_bytes()
    again = cli(*args, "--plot", png)
    assert again.returncode == 2 and "output exists; pass --overwrite" in again.stderr.decode()
    assert png.read_bytes() == before and sorted(p.name for p in tmp_path.glob(".quality*")) == []
    stdout = cli(*args, "--plot", "-")
    assert stdout.returncode == 2 and "--plot: writes a PNG file, not standard output" in stdout.stderr.decode()
