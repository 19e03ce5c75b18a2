"""``dancekit calibrate-unet`` through the real entry point."""

import hashlib
import json

import numpy as np
import pytest
import torch
from astropy.io import fits

from dancekit.unet.model import build_unet
from tests.commands.test_cmd_infer_tiles import SMALL, save_dancekit


def write_training_video(path, seed, frames=6, size=32, **keys):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    truth = np.zeros((size, size))
    for _ in range(4):
        x0, y0, flux = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(200, 2000)
        truth += flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 2.0) / (2 * np.pi)
    cube = rng.poisson(truth + 20.0, size=(frames, size, size)).astype(np.float32)
    header = fits.Header({"BUNIT": "electron", **keys})
    fits.HDUList([fits.PrimaryHDU(cube, header=header),
                  fits.ImageHDU(truth.astype(np.float32), name="TRUTH")]).writeto(path)


def test_calibration_is_stored_and_restores_the_flux_of_the_calibration_set(cli, tmp_path):
    model = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=2), inverse="algebraic")
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "held").mkdir()
    for seed in range(3):
        write_training_video(tmp_path / "held" / f"v{seed}.fits", seed)
    out = tmp_path / "cal.pt"
    result = cli("calibrate-unet", model, tmp_path / "held", "-o", out, "--stride", "1", "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    assert summary["videos"] == 3 and summary["windows"] == 3 * 3 and summary["pixels"] == 9 * 32 * 32
    # an untrained network is far off; its calibration is right on average over the calibration set
    assert abs(summary["flux_ratio_inverse"] - 1) > 0.2
    assert abs(summary["flux_ratio_calibrated"] - 1) < 0.05
    stored = torch.load(out, weights_only=True)["flux_calibration"]
    assert len(stored["y"]) == summary["knots"] >= 2 and stored["videos"] == ["v0.fits", "v1.fits", "v2.fits"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before  # the input model is untouched
    assert torch.load(out, weights_only=True)["test_time_augmentation"] == "none"
    domain = torch.load(out, weights_only=True)["domain"]  # no INSTRUME in the videos: the model's instrument
    assert domain["instruments"] == ["C2PU-Omicron"] and domain["videos"] == 3 and domain["pixel_scale_arcsec"] is None
    assert domain["levels_electrons"]["sky"][2] == pytest.approx(20.0, abs=1.0)
    again = cli("calibrate-unet", model, tmp_path / "held", "-o", out)
    assert again.returncode == 2 and "exists" in again.stderr.decode()


def test_a_model_calibrated_with_the_dihedral_mean_makes_infer_tiles_run_it(cli, tmp_path):
    model = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=2), inverse="algebraic")
    write_training_video(tmp_path / "v.fits", 5)
    out = tmp_path / "cal.pt"
    result = cli("calibrate-unet", model, tmp_path / "v.fits", "-o", out, "--dihedral-mean", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["dihedral_mean"] is True
    assert torch.load(out, weights_only=True)["test_time_augmentation"] == "dihedral8"
    image = tmp_path / "image.fits"
    result = cli("infer-tiles", tmp_path / "v.fits", "--model", out, "--tile", "32", "-o", image)
    assert result.returncode == 0, result.stderr.decode()
    header = fits.getheader(image)
    assert header["TTA"] == "dihedral8" and header["ANSCINV"] == "calibrated"


def test_refusals_name_the_problem_and_write_nothing(cli, tmp_path):
    write_training_video(tmp_path / "short.fits", 0, frames=3)
    model = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=2))
    out = tmp_path / "cal.pt"
    result = cli("calibrate-unet", model, tmp_path / "short.fits", "-o", out)
    assert result.returncode == 2 and "has 3 frames, fewer than the model's context of 4" in result.stderr.decode()
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    result = cli("calibrate-unet", tmp_path / "other.pt", tmp_path / "short.fits", "-o", out)
    assert result.returncode == 2 and "not a dancekit U-Net checkpoint" in result.stderr.decode()
    assert not out.exists()


def test_domain_only_records_the_videos_domain_and_keeps_the_calibration(cli, tmp_path):
    """A model calibrated before domains existed gets one; infer-tiles then checks videos against it."""
    calibration = {"y": [1.0, 5.0], "x": [0.0, 40.0], "pixels": 1000}
    model = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=2), flux_calibration=calibration)
    for seed in range(2):
        write_training_video(tmp_path / f"v{seed}.fits", seed, PIXSCALE=0.235, EXPTIME=0.19, INSTRUME="C2PU-Omicron")
    out = tmp_path / "dom.pt"
    result = cli("calibrate-unet", model, tmp_path / "v0.fits", tmp_path / "v1.fits", "--domain-only", "-o", out, "--json")
    assert result.returncode == 0, result.stderr.decode()
    stored = torch.load(out, weights_only=True)
    assert stored["flux_calibration"] == calibration and stored["domain"] == json.loads(result.stdout)["domain"]
    assert stored["domain"]["pixel_scale_arcsec"] == [0.235, 0.235] and stored["domain"]["exposure_s"] == [0.19, 0.19]
    write_training_video(tmp_path / "coarse.fits", 7, PIXSCALE=0.47, EXPTIME=0.19, INSTRUME="C2PU-Omicron")
    result = cli("infer-tiles", tmp_path / "coarse.fits", "--model", out, "--tile", "32", "-o", tmp_path / "i.fits")
    assert result.returncode == 2 and 'pixel scale 0.47"/px differs by more than 10% from the 0.235"/px' in result.stderr.decode()
    result = cli("infer-tiles", tmp_path / "v1.fits", "--model", out, "--tile", "32", "-o", tmp_path / "i.fits")
    assert result.returncode == 0, result.stderr.decode()
    assert fits.getheader(tmp_path / "i.fits")["DOMAIN"] == "inside"  # a video the domain was measured on
