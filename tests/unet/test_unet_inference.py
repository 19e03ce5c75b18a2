"""Sliding window x tiles: streaming, blending, masking, units (identity-like and small U-Nets)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from dancekit.errors import InputError, ParameterError
from dancekit.unet.config import UNetConfig
from dancekit.unet.inference import expected_windows, infer_video
from dancekit.unet.model import build_unet
from dancekit.unet.preprocess import network_input, network_output_to_electrons

SMALL = UNetConfig(in_channels=4, n_stages=3, features=(4, 8, 8), strides=(1, 2, 2),
                   blocks_per_stage=(1, 1, 1), decoder_convs_per_stage=(1, 1), deep_supervision=True)


class MeanOfFrames(nn.Module):
    """Identity-like model: the mean of the frames in Anscombe units (exact identity on a static,
    noise-free video with the algebraic inverse)."""

    def __init__(self, context):
        super().__init__()
        self.config = SimpleNamespace(in_channels=context, total_stride=1)

    def forward(self, x):
        return x.mean(dim=1, keepdim=True)


def reader(cube, calls=None):
    def read(start, stop):
        if calls is not None:
            calls.append((start, stop))
        return cube[start:stop]
    return read


def run(cube, model, **kwargs):
    kwargs = {"tile": 32, "overlap": 0.5, "batch": 3, **kwargs}
    return infer_video(reader(cube), len(cube), cube.shape[1:], model, **kwargs)


def gaussian_star(shape, x0, y0, flux, sigma=1.5):
    y, x = np.mgrid[:shape[0], :shape[1]]
    return flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)


@pytest.mark.parametrize("shape", [(70, 91), (20, 50)])
def test_constant_video_gives_a_constant_image(shape):
    cube = np.full((6, *shape), 137.5, dtype=np.float32)
    restored = run(cube, MeanOfFrames(4), inverse="algebraic")
    assert restored.image.shape == shape
    np.testing.assert_allclose(restored.image, 137.5, rtol=1e-6)
    subtracted = run(cube, MeanOfFrames(4), inverse="algebraic", background="subtract")
    np.testing.assert_allclose(subtracted.image, 0.0, atol=1e-4)
    np.testing.assert_allclose(subtracted.background, 137.5, rtol=1e-6)


def test_single_star_on_a_tile_seam_keeps_flux_and_position():
    """Through tiling, per-tile background, Anscombe, blending with the identity-like model
    (a check of the pipeline around the network, not of a trained network)."""
    shape, x0, y0, flux = (75, 83), 40.3, 47.8, 2.0e4  # seams of 32-px tiles at 16-px steps
    frame = 100.0 + gaussian_star(shape, x0, y0, flux)
    cube = np.repeat(frame[None], 5, axis=0).astype(np.float32)
    result = run(cube, MeanOfFrames(4), inverse="algebraic", background="subtract")
    image = result.image.astype(float)
    y, x = np.mgrid[:shape[0], :shape[1]]
    near = np.hypot(x - x0, y - y0) < 8
    measured = image[near].sum()
    assert measured == pytest.approx(flux * (1 - np.exp(-8**2 / (2 * 1.5**2))), rel=0.02)
    assert (image[near] * x[near]).sum() / measured == pytest.approx(x0, abs=0.1)
    assert (image[near] * y[near]).sum() / measured == pytest.approx(y0, abs=0.1)


def test_windows_slide_with_stride_in_time_order_and_frames_are_read_once_in_small_chunks():
    """One tile (no blending): the image is the mean over windows 0, 3, 6 of the U-Net's output."""
    rng = np.random.default_rng(0)
    cube = rng.poisson(50.0, size=(11, 32, 32)).astype(np.float32)
    cube[:, 10:13, 20:23] += np.arange(11, dtype=np.float32)[:, None, None] * 100  # time-dependent
    model = build_unet(SMALL, seed=2)
    calls = []
    result = infer_video(reader(cube, calls), 11, (32, 32), model, stride=3, tile=32, batch=2)
    assert result.n_windows == expected_windows(11, 4, 3) == 3
    assert sorted(calls) == calls and sum(b - a for a, b in calls) == 11 and max(b - a for a, b in calls) <= 4
    outputs = []
    with torch.no_grad():
        for start in (0, 3, 6):
            x, level = network_input(torch.from_numpy(cube[start:start + 4][None]))
            out = network_output_to_electrons(model(x)[0], "unbiased")[0] + level[0]
            outputs.append(out.numpy())
    np.testing.assert_allclose(result.image, np.mean(outputs, axis=0), rtol=1e-5, atol=1e-3)


def test_nan_frames_are_masked_and_reported_and_nan_pixels_replaced():
    rng = np.random.default_rng(1)
    cube = rng.poisson(30.0, size=(8, 40, 36)).astype(np.float32)
    model = build_unet(SMALL, seed=1)
    with_nan = cube.copy()
    with_nan[2] = np.nan
    with_nan[5, 3, 4] = np.inf
    masked = run(with_nan, model, average=True)
    assert masked.masked_frames == [2] and masked.replaced_pixels == 1
    clean = cube.copy()
    clean[5, 3, 4] = np.median(np.delete(clean[5].ravel(), 3 * 36 + 4))
    reference = run(np.delete(clean, 2, axis=0), model)
    np.testing.assert_allclose(masked.image, reference.image, rtol=1e-5)
    finite = np.where(np.isfinite(with_nan), with_nan, np.nan)
    np.testing.assert_allclose(masked.average, np.nanmean(finite, axis=0), rtol=1e-5)


def test_video_in_adu_is_converted_with_the_gain_and_returned_in_adu():
    rng = np.random.default_rng(2)
    electrons = rng.poisson(80.0, size=(5, 32, 48)).astype(np.float32)
    model = build_unet(SMALL, seed=3)
    in_electrons = run(electrons, model)
    in_adu = run(electrons / 2.5, model, gain=2.5)
    np.testing.assert_allclose(in_adu.image * 2.5, in_electrons.image, rtol=1e-4, atol=1e-3)


def test_too_few_usable_frames_and_a_context_mismatch_are_refused_naming_both():
    cube = np.ones((6, 32, 32), dtype=np.float32)
    with pytest.raises(InputError, match="3 frames but the model needs a context of 4"):
        run(cube[:3], MeanOfFrames(4))
    cube[1:4] = np.nan
    with pytest.raises(InputError, match="only 3 of the 6 frames are usable .3 have no finite pixel"):
        run(cube, MeanOfFrames(4))
    with pytest.raises(ParameterError, match="context 8 frames asked for, but the model takes 4"):
        run(cube, MeanOfFrames(4), context=8)
    with pytest.raises(ParameterError, match="not a multiple of the model's total stride 4"):
        run(cube, build_unet(SMALL), tile=30)


def test_dihedral_mean_is_exactly_equivariant_and_leaves_an_equivariant_model_unchanged():
    from dancekit.unet.inference import forward_dihedral_mean, forward_image

    x = torch.from_numpy(np.random.default_rng(4).normal(size=(2, 4, 16, 16)).astype(np.float32))
    model = build_unet(SMALL, seed=3).eval()  # random weights: not equivariant by itself
    with torch.no_grad():
        plain = forward_image(model, x)
        turned = forward_image(model, torch.rot90(x, 1, (2, 3)))
        assert not torch.allclose(turned, torch.rot90(plain, 1, (2, 3)), atol=1e-3)
        mean = forward_dihedral_mean(model, x)
        for turns, flip in ((1, False), (2, True), (3, False)):
            xi = torch.rot90(x, turns, (2, 3))
            xi = torch.flip(xi, (3,)) if flip else xi
            expected = torch.rot90(mean, turns, (2, 3))
            expected = torch.flip(expected, (3,)) if flip else expected
            torch.testing.assert_close(forward_dihedral_mean(model, xi), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(forward_dihedral_mean(MeanOfFrames(4), x), forward_image(MeanOfFrames(4), x))
