"""``dancekit train-unet`` through the real entry point: checkpoints, resume, Ctrl-C, bad inputs, torchrun."""

import fractions
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from astropy.io import fits
from scipy.special import erf

from dancekit.io.video import write_video
from dancekit.sky.noise import add_noise, mag_to_rate
from dancekit.sky.star_fields import homogeneous_field
from dancekit.unet.checkpoint import model_from_checkpoint
from dancekit.unet.config import UNetConfig
from dancekit.unet.domain import measure_levels
from dancekit.unet.model import build_unet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["--context", "4", "--tile", "32", "--batch", "2", "--seed", "1", "-q"]


def star_image(shape, x, y, flux, sigma):
    """Pixel-integrated circular Gaussians [e-]."""
    def profile(n, centre):
        edges = np.arange(n + 1)[None, :] - 0.5 - np.asarray(centre)[:, None]
        return 0.5 * np.diff(erf(edges / (np.sqrt(2) * sigma)), axis=1)
    return np.einsum("n,nh,nw->hw", flux, profile(shape[0], y), profile(shape[1], x))


def write_toy_video(path, seed, n_frames=6, shape=(48, 48), truth=True, truth_shape=None):
    """A toy simulate-video product: jittered, blurred stars + sky + noise [e-], TRUTH, CATALOG."""
    rng = np.random.default_rng(seed)
    field = homogeneous_field(shape, rng, n_stars=10, mag_min=14.0, mag_max=17.0)
    flux = mag_to_rate(field.mag, 24.6) * 0.19
    frames = [add_noise(star_image(shape, field.x + dx, field.y + dy, flux, 2.0) + 20.0, rng, 1.0)
              for dx, dy in rng.normal(0, 1.0, (n_frames, 2))]
    sharp = star_image(truth_shape or shape, field.x, field.y, flux, 0.8) if truth else None
    write_video(str(path), np.array(frames), fits.Header({"BUNIT": "electron", "EXPTIME": 0.19}), sharp,
                {"x": field.x, "y": field.y, "mag": field.mag})
    return path


@pytest.fixture(autouse=True)
def one_thread_per_process(monkeypatch):
    """The commands run as subprocesses: one torch thread each on 2 shared cores (see conftest)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for i in range(5):
        write_toy_video(folder / f"v{i}.fits", seed=i)
    return folder


def test_trains_writes_a_safe_checkpoint_and_resumes_exactly(cli, videos, tmp_path):
    whole = cli("train-unet", videos, *FAST, "--steps", "4", "--val-fraction", "0.2", "--patience", "30", "--json",
                "-o", tmp_path / "whole.pt")
    assert whole.returncode == 0, whole.stderr.decode()
    summary = json.loads(whole.stdout)
    assert summary["steps"] == 4 and len(summary["history"]) == 2  # 4 training videos, batch 2: 2 steps per epoch
    ckpt = torch.load(tmp_path / "whole.pt", weights_only=True)
    assert ckpt["format"] == "dancekit-unet" and ckpt["context"] == 4 and ckpt["tile"] == 32
    assert ckpt["inverse"] == ckpt["normalisation"]["inverse"] == "algebraic" and ckpt["instrument"] == "C2PU-Omicron"
    assert ckpt["training"]["steps"] == 4 and ckpt["training"]["train_videos"] == 4
    assert len(ckpt["training"]["data"]["val"]) == 1 and len(ckpt["config_hash"]) == 16
    domain = ckpt["domain"]  # measured on all 5 videos: 20 e- of sky, 1 e- of read noise, 0.19 s, no pixel scale
    assert domain["instruments"] == ["C2PU-Omicron"] and domain["exposure_s"] == [0.19, 0.19] and domain["videos"] == 5
    assert domain["pixel_scale_arcsec"] is None and domain["measured_by"] == "train-unet on 5 videos"
    measured = [measure_levels(fits.getdata(v)[:4]) for v in sorted(videos.iterdir())]  # the first context of frames
    for name in ("sky", "noise", "flux", "peak"):
        expected = np.percentile([getattr(m, name) for m in measured], [0, 5, 50, 95, 100])
        np.testing.assert_allclose(domain["levels_electrons"][name], expected, rtol=1e-6)
    # at least the true sky and its noise (the median/MAD level also counts some star wings)
    assert domain["levels_electrons"]["sky"][0] >= 20.0 - 0.3 and domain["levels_electrons"]["noise"][0] >= np.sqrt(21.0) * 0.97
    model = model_from_checkpoint(ckpt)  # the inference path's loader accepts it
    assert model.config == UNetConfig().with_changes(in_channels=4)

    half = cli("train-unet", videos, *FAST, "--steps", "2", "--val-fraction", "0.2", "--patience", "30",
               "-o", tmp_path / "run.pt")
    assert half.returncode == 0, half.stderr.decode()
    resumed = cli("train-unet", videos, "--steps", "4", "--val-fraction", "0.2", "-q",
                  "--resume", tmp_path / "run.pt", "-o", tmp_path / "run.pt")
    assert resumed.returncode == 0, resumed.stderr.decode()
    again = torch.load(tmp_path / "run.pt", weights_only=True)
    assert again["resume"]["step_losses"] == ckpt["resume"]["step_losses"]  # bit for bit
    assert again["resume"]["settings"]["plateau_patience"] == 30  # kept on resume without --patience
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(value, again["state_dict"][key]), key


def test_a_patience_below_one_epoch_is_refused(cli, videos, tmp_path):
    result = cli("train-unet", videos, *FAST, "--steps", "1", "--patience", "0", "-o", tmp_path / "m.pt")
    assert result.returncode == 2 and "patience must be a positive number of epochs, got 0" in result.stderr.decode()
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_the_state_and_exits(videos, tmp_path, signum, code):
    out = tmp_path / "m.pt"
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "dancekit", "train-unet", str(videos), *FAST, "--steps", "400",
                             "--val-fraction", "0", "-o", str(out)], stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while not out.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr.decode()
    assert f"--resume {out}" in stderr.decode()
    saved = torch.load(out, weights_only=True)
    assert 1 <= saved["resume"]["step"] < 400
    assert len(saved["resume"]["step_losses"]) == saved["resume"]["step"]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_every_unusable_video_is_reported_then_exit_2(cli, tmp_path):
    write_toy_video(tmp_path / "ok.fits", 4)
    write_toy_video(tmp_path / "no_truth.fits", 1, truth=False)
    write_toy_video(tmp_path / "short.fits", 2, n_frames=3)
    write_toy_video(tmp_path / "mismatch.fits", 3, truth_shape=(48, 40))
    fits.PrimaryHDU(np.zeros((48, 48), np.float32)).writeto(tmp_path / "image.fits")
    result = cli("train-unet", tmp_path, *FAST, "--steps", "1", "-o", tmp_path / "model.pt")
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert all(line.startswith("error: ") for line in lines) and len(lines) == 5, lines
    for expected in ["no_truth.fits: has no TRUTH extension",
                     "short.fits: has 3 frames, fewer than the context of 4",
                     r"mismatch.fits: TRUTH is \(48, 40\) but the frames are \(48, 48\)",
                     "image.fits: HDU 'PRIMARY' is 2-D",
                     "4 of 5 videos cannot be used"]:
        assert any(re.search(expected, line) for line in lines), (expected, lines)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("name, message", [
    ("dancecam.pth", "dancecam.pth: cannot resume from it: DanceCam's weight format"),
    ("pickle.pt", "pickle.pt: refused: the file holds Python objects"),
])
def test_a_foreign_or_unsafe_checkpoint_is_refused(cli, tmp_path, name, message):
    write_toy_video(tmp_path / "ok.fits", 4)
    if name == "dancecam.pth":
        torch.save({"state_dict": build_unet(UNetConfig(in_channels=4)).state_dict()}, tmp_path / name)
    else:
        torch.save({"evil": fractions.Fraction(1, 3)}, tmp_path / name)
    result = cli("train-unet", "ok.fits", *FAST, "--steps", "1", "--val-fraction", "0", "--resume", name,
                 "-o", "model.pt", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.slow
def test_torchrun_two_processes_match_one(videos, tmp_path):
    """DistributedDataParallel (gloo, 2 CPU processes, 1 sample each) takes the same steps as one
    process with the same global batch of 2: the first loss (same weights, same samples) and the
    second (after one step with the averaged gradient) agree to float rounding. Later steps drift
    apart slowly: Adam's first updates are ~lr sign(g), so rounding flips them for tiny gradients."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    common = [str(videos), *FAST, "--steps", "2", "--val-fraction", "0.2"]
    single = subprocess.run([sys.executable, "-m", "dancekit", "train-unet", *common, "-o", str(tmp_path / "one.pt")],
                            capture_output=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr.decode()
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "dancekit", "train-unet", *common, "-o", str(tmp_path / "two.pt")],
                           capture_output=True, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr.decode()[-3000:]
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert two["training"]["processes"] == 2 and one["training"]["processes"] == 1
    np.testing.assert_allclose(two["resume"]["step_losses"], one["resume"]["step_losses"], rtol=2e-5)
