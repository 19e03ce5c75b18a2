"""simulate-video through the real entry point: the product, determinism, and refusals."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

SMALL = ["--frames", "3", "--size", "48x40", "--seeing", "1.1", "--stars", "6", "--propagation", "geometric"]


def test_product_layout_and_header(cli, tmp_path):
    out = tmp_path / "v.fits"
    result = cli("simulate-video", *SMALL, "--seed", "5", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    with fits.open(out, checksum=True) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "TRUTH", "CATALOG"]
        cube, header = hdul[0].data, hdul[0].header
        assert cube.shape == (3, 48, 40) and cube.dtype.name == "float32"
        assert hdul[1].data.shape == (48, 40) and np.all(hdul[1].data >= 0)
        catalog = hdul[2].data
        assert len(catalog) == 6 and {"x", "y", "flux", "mag", "ra", "dec"} <= set(catalog.names)
        assert header["SEE_500"] == pytest.approx(1.1) and header["DKSEED"] == 5 and header["NLAYERS"] == 3
        assert header["XYORIGIN"] == 0 and header["BUNIT"] == "electron" and header["EXPTIME"] == 0.19
        ra, dec = WCS(header, naxis=2).all_pix2world(catalog["x"], catalog["y"], 0)
        np.testing.assert_allclose(ra, catalog["ra"], atol=1e-9)
        assert hdul[0].verify_checksum() == 1


def test_same_seed_same_video_other_seed_differs(cli, tmp_path):
    paths = [tmp_path / f"{name}.fits" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (7, 7, 8)):
        assert cli("simulate-video", *SMALL, "--seed", seed, "-o", path).returncode == 0
    a, b, c = (fits.getdata(p) for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_catalogue_input_places_stars_through_the_wcs(cli, tmp_path):
    catalogue = tmp_path / "stars.fits"
    fits.BinTableHDU.from_columns([
        fits.Column("x", "D", array=[10.0, 30.25]), fits.Column("y", "D", array=[12.0, 35.5]),
        fits.Column("mag", "D", array=[14.0, 15.0]),
    ]).writeto(catalogue)
    out = tmp_path / "v.fits"
    result = cli("simulate-video", "--frames", "2", "--size", "48", "--seeing", "1.0", "--catalog", catalogue,
                 "--propagation", "geometric", "--seed", "1", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    table = fits.getdata(out, "CATALOG")
    np.testing.assert_allclose(table["x"], [10.0, 30.25])
    truth = fits.getdata(out, "TRUTH")
    assert np.unravel_index(truth.argmax(), truth.shape) == (12, 10)  # the brighter star's peak pixel


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeing", "-1"], "--seeing: seeing must be > 0 arcsec, got -1.0"),
        (["--frames", "0"], "--frames: need at least 1 frame, got 0"),
        (["--catalog", "MISSING"], "MISSING: no such file"),
        (["--catalog", "NOCOLS"], "catalogue has no 'mag' column"),
        (["--size", "4x4"], "--size: '4x4': need N or HxW with each side >= 8 pixels"),
        (["--set", "optics.wavelength=-1"], "optics.wavelength must be > 0 m"),
        (["--set", "optics.n_wavelengths=3", "--set", "optics.bandwidth=-1e-8"],
         "optics.bandwidth must be in [0, wavelength = 6.5e-07) m, got -1e-08"),
        (["--set", "optics.n_wavelengths=3", "--set", "optics.bandwidth=6.5e-7"],
         "optics.bandwidth must be in [0, wavelength = 6.5e-07) m, got 6.5e-07"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, args, message):
    nocols = tmp_path / "nocols.fits"
    fits.BinTableHDU.from_columns([fits.Column("x", "D", array=[1.0]), fits.Column("y", "D", array=[1.0])]).writeto(nocols)
    args = [str(nocols) if a == "NOCOLS" else str(tmp_path / "missing.fits") if a == "MISSING" else a for a in args]
    out = tmp_path / "v.fits"
    result = cli("simulate-video", "--frames", "2", "--size", "32", "--stars", "2", "--seed", "1", *args, "-o", out)
    assert result.returncode == 2
    assert message.replace("MISSING", str(tmp_path / "missing.fits")) in result.stderr.decode()
    assert len(result.stderr.decode().strip().splitlines()) == 1
    assert not out.exists()


def test_band_video_records_its_wavelengths_and_keeps_the_flux_of_its_truth(cli, tmp_path):
    paths = {name: tmp_path / f"{name}.fits" for name in ("band", "mono")}
    runs = {"band": ["--set", "optics.n_wavelengths=3"], "mono": ["--set", "optics.bandwidth=0"]}
    for name, extra in runs.items():
        result = cli("simulate-video", *SMALL, "--seed", "3", *extra, "-o", paths[name])
        assert result.returncode == 0, result.stderr.decode()
    band = fits.getheader(paths["band"])
    assert band["NWAVE"] == 3 and band["BANDWID"] == 1.4e-7 and band["WAVELEN"] == 6.5e-7
    np.testing.assert_allclose([band[f"WAVE{i}"] for i in (1, 2, 3)], [603.333e-9, 650e-9, 696.667e-9], rtol=1e-5)
    assert [band[f"WWGT{i}"] for i in (1, 2, 3)] == pytest.approx([1 / 3] * 3)
    mono = fits.getheader(paths["mono"])
    assert mono["NWAVE"] == 1 and mono["BANDWID"] == 0 and mono["WAVE1"] == 6.5e-7
    band_truth, mono_truth = fits.getdata(paths["band"], "TRUTH"), fits.getdata(paths["mono"], "TRUTH")
    assert np.abs(band_truth - mono_truth).max() > 1e-3 * mono_truth.max()  # the band changes the truth
    assert band_truth.sum() == pytest.approx(mono_truth.sum(), rel=2e-3)  # but not its flux


def test_memory_estimate_refuses_before_working(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANCEKIT_MEMORY_LIMIT", str(2**30))
    out = tmp_path / "v.fits"
    result = cli("simulate-video", "--frames", "2000", "--size", "1024", "--stars", "10", "-o", out)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "this video needs about" in err and "but 1.0 GB is available" in err
    assert not out.exists()


def test_pipeline_simulate_to_average_through_stdout(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "avg.fits"
    dk = f"{sys.executable} -m dancekit"
    shell = f"{dk} simulate-video {' '.join(SMALL)} --seed 2 -o - | {dk} average - -o {out}"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr.decode()
    average = fits.getdata(out)
    assert average.shape == (48, 40) and fits.getheader(out)["NCOMBINE"] == 3
    assert fits.getheader(out)["EXPTIME"] == 0.19  # carried from the simulated cube


def test_first_run_path_simulate_then_infer_with_the_bundled_model(cli, tmp_path):
    """What `make demo` does, small: the bundled C2PU model accepts a video simulate-video made."""
    video, image = tmp_path / "v.fits", tmp_path / "i.fits"
    assert cli("simulate-video", "--frames", "33", "--size", "64", "--stars", "20", "--seeing", "1.2",
               "--propagation", "geometric", "--seed", "4", "-o", video).returncode == 0
    result = cli("infer-tiles", video, "--stride", "1", "-o", image)
    assert result.returncode == 0, result.stderr.decode()
    header = fits.getheader(image)
    assert fits.getdata(image).shape == (64, 64) and header["NWINDOW"] == 2 and header["CONTEXT"] == 32
    assert header["INSTRUME"] == fits.getheader(video)["INSTRUME"] == "C2PU-Omicron"
