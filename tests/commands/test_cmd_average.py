"""``dancekit average`` through the real entry point: single-frame files as one video, and one
clear outcome for many inputs (the CLI contract's other cases are in tests/cli)."""

import numpy as np
import pytest
from astropy.io import fits

from tests.conftest import make_wcs


def write_frames(tmp_path, frames):
    paths = []
    for i, frame in enumerate(frames):
        header = make_wcs(frame.shape).to_header()
        header["EXPTIME"] = (0.015, "[s]")
        header["DATE-OBS"] = f"2024-03-01T22:10:{i:02d}"
        paths.append(tmp_path / f"frame{i:02d}.fits")
        fits.PrimaryHDU(frame.astype(np.uint16), header=header).writeto(paths[-1])  # a camera's raw uint16 + BZERO
    return paths


def test_single_frame_files_are_averaged_as_one_video(cli, tmp_path):
    frames = np.random.default_rng(0).integers(100, 60000, (12, 16, 20))
    paths = write_frames(tmp_path, frames)
    out = tmp_path / "mean.fits"
    result = cli("average", *paths, "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    assert "error" not in result.stderr.decode() and sorted(tmp_path.glob("*.fits")) == sorted([*paths, out])
    np.testing.assert_allclose(fits.getdata(out), frames.mean(axis=0), rtol=1e-6)
    header = fits.getheader(out)
    assert header["NCOMBINE"] == 12 and header["DATE-OBS"] == "2024-03-01T22:10:00"  # the first frame's header
    assert any("12 single-frame files" in h for h in header["HISTORY"])
    result = cli("average", *paths, "--frames", "3:7", "-o", tmp_path / "part.fits")
    assert result.returncode == 0, result.stderr.decode()
    np.testing.assert_allclose(fits.getdata(tmp_path / "part.fits"), frames[3:7].mean(axis=0), rtol=1e-6)
    alone = tmp_path / "alone.fits"  # one 2-D image is a one-frame video
    assert cli("average", paths[0], "-o", alone).returncode == 0
    np.testing.assert_allclose(fits.getdata(alone), frames[0], rtol=1e-6)


def test_many_cubes_to_one_file_is_one_error_and_nothing_written(cli, tmp_path):
    cubes = []
    for i in range(4):
        cubes.append(tmp_path / f"cube{i}.fits")
        fits.PrimaryHDU(np.ones((3, 8, 8), np.float32)).writeto(cubes[-1])
    out = tmp_path / "mean.fits"
    result = cli("average", *cubes, "-o", out)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0] == f"error: {out}: with 4 inputs, -o must be an existing folder"
    assert not out.exists()


def test_lucky_keeps_the_sharpest_frames_registered_on_the_brightest_star(cli, tmp_path):
    from scipy import ndimage

    sharp = np.zeros((40, 40))
    sharp[20, 18], sharp[8, 30] = 20000.0, 3000.0
    blurs = [3.0, 2.5, 0.8, 3.5, 2.8, 3.2, 2.0, 3.0, 2.6, 3.1]                 # frame 2 is the lucky one
    frames = np.array([np.roll(ndimage.gaussian_filter(sharp, b), (k % 3 - 1, 1 - k % 2), axis=(0, 1)) + 50.0
                       for k, b in enumerate(blurs)])
    video = tmp_path / "video.fits"
    fits.PrimaryHDU(frames.astype(np.float32)).writeto(video)
    out = tmp_path / "lucky.fits"
    result = cli("average", video, "--lucky", "0.1", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    header = fits.getheader(out)
    assert header["NCOMBINE"] == 1 and header["LUCKYFRC"] == 0.1
    image = fits.getdata(out)
    assert np.nanmax(image) == pytest.approx(frames[2].max(), rel=1e-5)   # the sharpest frame, not the mean
    assert np.nanmax(image) > 3 * frames.mean(axis=0).max()
    assert header["LUCKYREF"] == "{1},{0}".format(*np.unravel_index(np.argmax(frames.mean(axis=0)), (40, 40)))
    bad = cli("average", video, "--lucky", "1.5", "-o", tmp_path / "bad.fits")
    assert bad.returncode == 2 and "the lucky fraction must be in (0, 1], got 1.5" in bad.stderr.decode()
    assert not (tmp_path / "bad.fits").exists()
