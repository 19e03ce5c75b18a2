"""``dancekit train-zeropoint`` and ``dancekit zeropoint --model`` through the real entry point."""

import json

import numpy as np
import pytest
import torch
from astropy.io import fits

from conftest import run_cli
from dancekit.photometry.exposures import generate_exposure


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained once for the module (12 exposures, 1 epoch)."""
    folder = tmp_path_factory.mktemp("zpmodel")
    path = folder / "zp.pt"
    run = run_cli("train-zeropoint", "--exposures", 12, "--epochs", 1, "--batch-size", 4, "--seed", 3,
                  "--device", "cpu", "-o", path, "--json")
    return path, run


def _exposure_file(tmp_path, telemetry=True):
    """A generated exposure as a FITS file with its WCS, detector and telemetry keywords, and its catalogue."""
    e = generate_exposure(11, survey=0)
    header = e.wcs.to_header()
    header.update({"GAIN": e.gain, "RDNOISE": e.read_noise, "EXPTIME": e.exptime, "AIRMASS": e.airmass,
                   "SATURATE": e.saturation})
    if telemetry:
        header.update({"TEMPERAT": float(e.telemetry[1]), "HUMIDITY": float(e.telemetry[2]), "WINDSPD": float(e.telemetry[3])})
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(e.image, header).writeto(image)
    cat = e.catalogue
    catalogue = tmp_path / "cat.fits"
    fits.BinTableHDU.from_columns([
        fits.Column("RA", "D", array=np.degrees(cat.ra)), fits.Column("DEC", "D", array=np.degrees(cat.dec)),
        fits.Column("rmag", "D", array=cat.mag), fits.Column("e_rmag", "D", array=cat.mag_err),
        fits.Column("gmag", "D", array=cat.mag + cat.colour),
    ]).writeto(catalogue)
    return image, catalogue, e


def test_training_writes_a_model_that_loads_with_weights_only(trained):
    path, run = trained
    assert run.returncode == 0, run.stderr.decode()
    summary = json.loads(run.stdout)
    assert summary["command"] == "train-zeropoint" and summary["train"] + summary["val"] == summary["calibrated"]
    assert summary["calibrated"] <= 12 and summary["seed"] == 3
    assert b"held-out RMSE" in run.stderr
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["format"] == "dancekit-zeropoint" and checkpoint["target"] == "zp_true - zp_classical"
    assert checkpoint["training"]["val_rmse_classical_mag"] == pytest.approx(summary["val_rmse_classical_mag"])
    assert len(checkpoint["normalisation"]["telemetry_mean"]) == 4
    assert checkpoint["domain"]["airmass"] == [1.0, 2.0] and checkpoint["domain"]["pixel_scale"] == [1.0, 1.0]


def test_existing_output_exits_2_and_is_kept(trained, cli):
    path, _ = trained
    before = path.read_bytes()
    run = cli("train-zeropoint", "--exposures", 12, "-o", path)
    assert run.returncode == 2 and b"output exists" in run.stderr
    assert path.read_bytes() == before


def test_zeropoint_with_the_model_keeps_photzp_classical(trained, tmp_path, cli):
    path, _ = trained
    image, catalogue, _ = _exposure_file(tmp_path)
    plain, learned = tmp_path / "plain.fits", tmp_path / "learned.fits"
    assert cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "-o", plain).returncode == 0
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--model", path, "-o", learned, "--json")
    assert run.returncode == 0, run.stderr.decode()
    with fits.open(plain) as a, fits.open(learned) as b:
        assert b[0].header["PHOTZP"] == a[0].header["PHOTZP"]  # classical unchanged
        assert b[0].header["PHOTZPML"] == pytest.approx(b[0].header["PHOTZP"] + b[0].header["ZPMLCOR"], abs=1e-9)
        assert abs(b[0].header["ZPMLCOR"]) < 0.5 and b[0].header["ZPMODEL"] == "zp.pt"
        assert b[0].header["ZPMLDOM"] == "inside"
        assert "PHOTZPML" not in a[0].header
        correction = b[0].header["ZPMLCOR"]
    assert json.loads(run.stdout)["results"][0]["ml_correction"] == pytest.approx(correction)


def test_corrupt_model_and_missing_telemetry_exit_2(trained, tmp_path, cli):
    path, _ = trained
    image, catalogue, _ = _exposure_file(tmp_path, telemetry=False)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:500])
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--model", corrupt, "-o", out)
    assert run.returncode == 2
    assert run.stderr.decode().strip().startswith("error: ") and "truncated or corrupt" in run.stderr.decode()
    assert not out.exists()
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--model", path, "-o", out)
    assert run.returncode == 2 and b"needs the temperature" in run.stderr
    assert not out.exists()


def test_model_refuses_exposures_outside_its_training_domain_unless_told(trained, tmp_path, cli):
    path, _ = trained
    image, catalogue, _ = _exposure_file(tmp_path)
    with fits.open(image, mode="update") as hdus:  # a high airmass from another instrument
        hdus[0].header["AIRMASS"] = 2.8
        hdus[0].header["INSTRUME"] = "DECam"
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--model", path, "-o", out)
    assert run.returncode == 2 and not out.exists()
    lines = run.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "outside the learned model's training domain: airmass 2.8 (trained 1-2); instrument 'DECam'" in lines[0]
    assert "--ignore-domain" in lines[0]
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--model", path, "--ignore-domain", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stderr.decode().count("outside the learned model's training domain") == 2  # one warning each
    header = fits.getheader(out)
    assert header["ZPMLDOM"] == "outside: airmass, instrument" and "PHOTZPML" in header
