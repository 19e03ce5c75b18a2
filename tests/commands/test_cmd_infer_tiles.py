"""``dancekit infer-tiles`` through the real entry point: products, headers, and refusals."""

import hashlib
import json
import re

import numpy as np
import pytest
import torch
from astropy.io import fits

from dancekit.unet.checkpoint import checkpoint_entries
from dancekit.unet.config import UNetConfig
from dancekit.unet.inference import infer_video
from dancekit.unet.model import build_unet
from dancekit.unet.transforms import inverse_anscombe
from tests.conftest import make_wcs

SMALL = UNetConfig(in_channels=4, n_stages=3, features=(4, 8, 8), strides=(1, 2, 2),
                   blocks_per_stage=(1, 1, 1), decoder_convs_per_stage=(1, 1))


def save_dancekit(path, model, **extra):
    torch.save({**checkpoint_entries(model), "context": model.config.in_channels, "inverse": "unbiased",
                "instrument": "C2PU-Omicron", "training_summary": {"epochs": 3, "val_loss": 0.125}, **extra}, path)
    return path


def constant_output_model(value):
    """A real U-Net whose weights are zero but the full-resolution head's bias: it outputs ``value``
    (Anscombe units) everywhere, whatever the input, so blending can be checked end to end."""
    model = build_unet(SMALL, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder.seg_layers[-1].bias.fill_(value)  # the last head is the finest
    return model


def write_video(path, cube, **keys):
    header = make_wcs(cube.shape[-2:]).to_header()
    header["BUNIT"] = "electron"
    header["EXPTIME"] = (0.19, "s")
    header["DATE-OBS"] = "2022-05-27T22:10:00"
    header["INSTRUME"] = "C2PU-Omicron"
    for key, value in keys.items():
        header[key] = value
    fits.PrimaryHDU(cube.astype(np.float32), header=header).writeto(path)
    return path


@pytest.fixture
def noisy_cube():
    rng = np.random.default_rng(7)
    return rng.poisson(40.0, size=(7, 48, 67)).astype(np.float32)


def test_constant_video_through_a_constant_output_model_gives_a_constant_image(cli, tmp_path):
    """Odd size, 3 x 4 overlapping tiles with snapped edges: with the sky restored, every pixel is
    the sky plus the inverse Anscombe of the model's constant output, seams included."""
    model_path = save_dancekit(tmp_path / "m.pt", constant_output_model(3.0))
    cube = np.full((6, 50, 73), 250.0, dtype=np.float32)
    video = write_video(tmp_path / "v.fits", cube)
    result = cli("infer-tiles", video, "--model", model_path, "--tile", "32", "--batch", "5", "-o", tmp_path / "out.fits")
    assert result.returncode == 0, result.stderr.decode()
    with fits.open(tmp_path / "out.fits", checksum=True) as hdul:
        image, header = hdul[0].data, hdul[0].header
    expected = 250.0 + float(inverse_anscombe(np.array(3.0)))
    assert image.shape == (50, 73)
    np.testing.assert_allclose(image, expected, rtol=1e-5)
    assert header["BKGMODE"] == "restore" and header["BKGSUB"] is False
    assert header["BKGLEVEL"] == pytest.approx(250.0)
    assert header["NWINDOW"] == 3 and header["CONTEXT"] == 4 and header["NTILES"] == 3 * 4  # rows start 0, 16, 18; columns 0, 16, 32, 41


def test_a_stored_flux_calibration_replaces_the_anscombe_inverse(cli, tmp_path):
    """Knots (1, 0) and (5, 40): the constant output 3.0 maps to 20 e- by linear interpolation."""
    calibration = {"y": [1.0, 5.0], "x": [0.0, 40.0], "pixels": 1000}
    model_path = save_dancekit(tmp_path / "m.pt", constant_output_model(3.0), flux_calibration=calibration)
    video = write_video(tmp_path / "v.fits", np.full((5, 40, 40), 250.0, dtype=np.float32))
    result = cli("infer-tiles", video, "--model", model_path, "--tile", "32", "-o", tmp_path / "out.fits")
    assert result.returncode == 0, result.stderr.decode()
    image, header = fits.getdata(tmp_path / "out.fits"), fits.getheader(tmp_path / "out.fits")
    np.testing.assert_allclose(image, 250.0 + 20.0, rtol=1e-5)
    assert header["ANSCINV"] == "calibrated" and header["FLUXCAL"] is True
    broken = save_dancekit(tmp_path / "b.pt", constant_output_model(3.0), flux_calibration={"y": [1.0, 5.0], "x": [9.0, 4.0]})
    result = cli("infer-tiles", video, "--model", broken, "--tile", "32", "-o", tmp_path / "bad.fits")
    assert result.returncode == 2 and not (tmp_path / "bad.fits").exists()
    assert "b.pt: flux calibration knots must have y increasing and x non-decreasing" in result.stderr.decode()


def test_product_carries_header_wcs_model_identity_average_and_masked_frames(cli, tmp_path, noisy_cube):
    model_path = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=4))
    noisy_cube = np.concatenate([noisy_cube, noisy_cube[:2]])  # 9 frames, 3 of them NaN
    noisy_cube[[1, 2, 5]] = np.nan
    video = write_video(tmp_path / "v.fits", noisy_cube, FILTER="SDSS-r")
    out = tmp_path / "out.fits"
    result = cli("infer-tiles", video, "--model", model_path, "--tile", "32", "--stride", "2", "--average",
                 "--background", "subtract", "--json", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    assert "3 frame(s) without any finite pixel were masked: 1-2, 5" in result.stderr.decode()
    summary = json.loads(result.stdout)
    assert summary["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert summary["results"][0]["windows"] == 2 and summary["results"][0]["frames"] == 9
    assert summary["results"][0]["masked_frames"] == [1, 2, 5]
    with fits.open(out) as hdul:
        header = hdul[0].data, hdul[0].header
        image, header = header
        assert header["MODELSHA"] == summary["model_sha256"] and header["MODELFMT"] == "dancekit"
        assert header["CRVAL1"] == pytest.approx(250.42) and header["FILTER"] == "SDSS-r" and header["BUNIT"] == "electron"
        assert header["BKGSUB"] is True and header["TSTRIDE"] == 2
        assert header["NMASKED"] == 3 and header["NCOMBINE"] == 6 and header["NWINDOW"] == 2
        assert any("model training epochs: 3" in h for h in header["HISTORY"])
        assert "DKVERS" in header and "DKCFGH" in header
        np.testing.assert_allclose(hdul["AVERAGE"].data, np.nanmean(noisy_cube, axis=0), rtol=1e-5)
    assert np.isfinite(image).all() and image.shape == (48, 67)


def test_dancecam_checkpoint_format_and_stdin_to_stdout(cli, tmp_path, noisy_cube):
    model = build_unet(SMALL, seed=5)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "dancecam.pth")
    video = write_video(tmp_path / "v.fits", noisy_cube)
    result = cli("infer-tiles", "-", "--model", tmp_path / "dancecam.pth", "--tile", "32", "--stride", "3",
                 "-o", "-", stdin=video.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    with fits.open(__import__("io").BytesIO(result.stdout)) as hdul:
        assert hdul[0].header["MODELFMT"] == "DanceCam" and hdul[0].data.shape == (48, 67)


def bad_cases(tmp_path, cube):
    model_path = save_dancekit(tmp_path / "m.pt", build_unet(SMALL, seed=4))
    other = save_dancekit(tmp_path / "other.pt", build_unet(SMALL, seed=4), instrument="LAMOST-guide")
    video = write_video(tmp_path / "v.fits", cube)
    nan_video = write_video(tmp_path / "nan.fits", np.where(np.arange(7)[:, None, None] < 4, np.nan, cube))
    fits.PrimaryHDU(cube[0]).writeto(tmp_path / "a.fits")
    fits.PrimaryHDU(cube[0, :, :60]).writeto(tmp_path / "b.fits")
    (tmp_path / "junk.pt").write_bytes(b"not a zip archive")
    return {
        "context": (["--context", "8", video, "--model", model_path],
                    "--context: --context 8 but the model m.pt was trained on windows of 4 frames"),
        "instrument": ([video, "--model", other],
                       "trained for instrument 'LAMOST-guide' but the video's INSTRUME is 'C2PU-Omicron'"),
        "nan": ([nan_video, "--model", model_path],
                "only 3 of the 7 frames are usable .4 have no finite pixel.* context of 4"),
        "shapes": ([tmp_path / "a.fits", tmp_path / "b.fits", "--model", model_path],
                   "frame .*b.fits is 48x60 px but the first frame .*a.fits is 48x67 px"),
        "model file": ([video, "--model", tmp_path / "junk.pt"], "junk.pt: not a loadable torch checkpoint"),
        # without --model the bundled C2PU model (32 frames of context) is used, and refuses 7 frames
        "bundled model": ([video], "the video has 7 frames but the model needs a context of 32"),
    }


@pytest.mark.parametrize("case", ["context", "instrument", "nan", "shapes", "model file", "bundled model"])
def test_bad_inputs_exit_2_naming_both_sides_and_leave_nothing(cli, tmp_path, noisy_cube, case):
    args, message = bad_cases(tmp_path, noisy_cube)[case]
    out = tmp_path / "out.fits"
    result = cli("infer-tiles", *args, "--tile", "32", "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert re.search(message, stderr), (message, stderr)
    assert not out.exists() and not list(tmp_path.glob(".out.fits*"))


def test_single_frame_files_form_one_video_in_the_order_given(cli, tmp_path, noisy_cube):
    model = build_unet(SMALL, seed=4)
    model_path = save_dancekit(tmp_path / "m.pt", model)
    frames = [write_video(tmp_path / f"f{i}.fits", noisy_cube[i]) for i in range(5)]
    result = cli("infer-tiles", *frames, "--model", model_path, "--tile", "32", "-o", tmp_path / "from_frames.fits")
    assert result.returncode == 0, result.stderr.decode()
    cube = noisy_cube[:5]
    expected = infer_video(lambda a, b: cube[a:b], 5, cube.shape[1:], model, tile=32)
    np.testing.assert_allclose(fits.getdata(tmp_path / "from_frames.fits"), expected.image, rtol=1e-5, atol=1e-4)
    assert fits.getheader(tmp_path / "from_frames.fits")["NWINDOW"] == 2


def speckle_frames(n_frames, seed, size=64, d_over_r0=12.0, flux=3e5, companion=0.5, separation=(5, 7)):
    """Short exposures [e-] of a double star through Kolmogorov screens (D/r0 = 12, a 30 % obstructed
    pupil), sampled at lambda/2D per pixel (0.065" at 650 nm on 1 m): a speckle camera, not C2PU."""
    from dancekit.optics.phase_screens import fft_phase_screen
    from dancekit.optics.pupil import annular_pupil

    generator = torch.Generator().manual_seed(seed)
    n = 2 * size  # the pupil spans `size` of the `2 size` grid samples
    pupil = annular_pupil(n, 1.0 / size, 1.0, 0.3)
    centre = slice(n // 2 - size // 2, n // 2 + size // 2)
    frames = []
    for _ in range(n_frames):
        phase = fft_phase_screen((n, n), 1.0 / size, 1.0 / d_over_r0, generator=generator)
        psf = torch.fft.fftshift(torch.fft.fft2(pupil * torch.exp(1j * phase)).abs() ** 2).numpy()[centre, centre]
        psf = psf / psf.sum()
        frames.append(flux * (psf + companion * np.roll(psf, separation, axis=(0, 1))))
    return np.array(frames)


SPECKLE_BIAS, SPECKLE_SKY_E, SPECKLE_GAIN = 300.0, 2.0, 0.5  # ADU, e-/px/frame, e-/ADU


def write_camera_video(path, electrons, seed, **keys):
    """Raw uint16 frames (BZERO 32768) with a bias, sky, Poisson and read noise, as the issue's
    camera wrote them: EXPTIME 15 ms, and no pixel scale, GAIN, BUNIT or INSTRUME."""
    rng = np.random.default_rng(seed)
    adu = SPECKLE_BIAS + rng.poisson(electrons + SPECKLE_SKY_E) / SPECKLE_GAIN + rng.normal(0, 4.0, electrons.shape)
    header = fits.Header()
    header["EXPTIME"] = (0.015, "[s]")
    for key, value in keys.items():
        header[key] = value
    fits.PrimaryHDU(np.clip(np.round(adu), 0, 65535).astype(np.uint16), header=header).writeto(path)
    return path


@pytest.fixture(scope="module")
def speckle_electrons():
    """12 distinct frames repeated to reach the bundled model's 32, as the issue's user did."""
    return speckle_frames(12, seed=1)[np.arange(32) % 12]


def test_a_speckle_video_without_or_with_another_pixel_scale_is_refused(cli, tmp_path, speckle_electrons):
    video = write_camera_video(tmp_path / "speckle.fits", speckle_electrons, 2)
    assert fits.getheader(video)["BZERO"] == 32768
    out = tmp_path / "out.fits"
    result = cli("infer-tiles", video, "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert re.search(r'speckle.fits: outside the domain of the model c2pu_default.pt: the video\'s header gives no '
                     r'pixel scale .* trained at 0.235"/px; pass --ignore-instrument', stderr), stderr
    scaled = write_camera_video(tmp_path / "scaled.fits", speckle_electrons, 2, PIXSCALE=0.065)
    result = cli("infer-tiles", scaled, "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert 'pixel scale 0.065"/px differs by more than 10% from the 0.235"/px the model was trained at' in stderr
    assert not out.exists()


def test_ignore_instrument_runs_a_speckle_video_and_flags_the_lost_flux(cli, tmp_path, speckle_electrons):
    video = write_camera_video(tmp_path / "speckle.fits", speckle_electrons, 2)
    out = tmp_path / "out.fits"
    result = cli("infer-tiles", video, "--ignore-instrument", "--json", "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    header = fits.getheader(out)
    assert header["DOMAIN"] == "forced"
    assert set(header["DOMFLAGS"].split(",")) >= {"pixel_scale", "instrument", "exposure", "noise", "gain"}
    # the flux the output holds above the true sky (bias + sky; the counts were taken as electrons)
    stack = fits.getdata(video).astype(np.float64).mean(axis=0)
    sky_free = fits.getdata(out).astype(np.float64) - header["BKGLEVEL"]  # one tile: one level
    held = sky_free.sum() / (stack - SPECKLE_BIAS - SPECKLE_SKY_E / SPECKLE_GAIN).sum()
    assert header["FLUXRAT"] == pytest.approx(held, rel=0.2) and header["FLUXRAT"] < 0.1
    assert json.loads(result.stdout)["results"][0]["flux_ratio"] == pytest.approx(header["FLUXRAT"], rel=1e-5)
    assert f"FLUXRAT = {header['FLUXRAT']:.3g}: the output holds" in stderr
    assert "(--ignore-instrument): the video's header gives no pixel scale" in stderr
    assert "frames of 0.015 s but the model was trained on 0.19 s frames" in stderr
    assert any("FLUXRAT =" in h for h in header["HISTORY"])


def test_a_c2pu_video_lies_inside_the_bundled_models_domain_and_keeps_its_flux(cli, tmp_path):
    """The training recipe of the bundled model (scripts/make_unet_training_set.sh), 32 frames."""
    video, image = tmp_path / "v.fits", tmp_path / "i.fits"
    assert cli("simulate-video", "--frames", "32", "--size", "64", "--stars", "150", "--propagation", "geometric",
               "--set", "atmosphere.substeps=2", "--seed", "8", "-o", video).returncode == 0
    result = cli("infer-tiles", video, "-o", image)
    assert result.returncode == 0, result.stderr.decode()
    assert "warning" not in result.stderr.decode(), result.stderr.decode()
    header = fits.getheader(image)
    assert header["DOMAIN"] == "inside" and header["DOMFLAGS"] == ""
    assert 0.8 <= header["FLUXRAT"] <= 1.25
    assert header["FLUXSKY"] == pytest.approx(fits.getheader(video)["SKYLEVEL"], abs=0.3)
