"""Tile positions and blending weights: a partition of unity for any image size."""

import numpy as np
import pytest

from dancekit.errors import ParameterError
from dancekit.unet.tiling import TileGrid, axis_weights, tile_starts


@pytest.mark.parametrize("shape", [(1000, 1300), (256, 300), (1024, 1024), (777, 513), (100, 300), (5, 3)])
def test_blending_weights_sum_to_one_everywhere(shape):
    grid = TileGrid.for_image(shape, tile=256 if min(shape) > 50 else 16, overlap=0.5)
    total = grid.weight_sum()
    assert total.shape == grid.padded_shape
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_weights_are_within_their_tile_between_zero_and_one(overlap):
    starts = tile_starts(1000, 256, overlap)
    weights = axis_weights(1000, 256, starts)
    assert weights.min() >= 0 and weights.max() <= 1
    total = np.zeros(1000)
    for start, w in zip(starts, weights):
        total[start:start + 256] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_tiles_step_by_half_a_tile_and_the_last_one_is_snapped_to_the_edge():
    starts = tile_starts(1000, 256, 0.5)
    assert starts.tolist() == [0, 128, 256, 384, 512, 640, 744]
    assert starts[-1] + 256 == 1000
    assert tile_starts(1024, 256, 0.5).tolist() == [0, 128, 256, 384, 512, 640, 768]  # 7 x 7 = 49 tiles, as the paper


def test_interior_tiles_ramp_linearly_over_the_overlap_as_the_paper():
    """Bialek et al. §4.2.1: full weight in the centre, a linear 0 -> 1 gradient over the overlap."""
    weights = axis_weights(1024, 256, tile_starts(1024, 256, 0.5))
    interior = weights[3]
    expected_rise = (np.arange(128) + 0.5) / 128
    np.testing.assert_allclose(interior[:128], expected_rise)
    np.testing.assert_allclose(interior[128:], expected_rise[::-1])
    assert weights[0][:128].tolist() == [1.0] * 128  # the image edge keeps full weight


def test_small_images_are_padded_by_reflection_and_cropped_back():
    grid = TileGrid.for_image((20, 50), tile=32, overlap=0.5)
    assert grid.padded_shape == (32, 50) and grid.pad == (6, 6, 0, 0)
    frames = np.arange(2 * 20 * 50, dtype=float).reshape(2, 20, 50)
    padded = grid.pad_frames(frames)
    assert padded.shape == (2, 32, 50)
    np.testing.assert_array_equal(padded[:, 5], frames[:, 0])  # mirrored about the edge
    np.testing.assert_array_equal(grid.crop(padded), frames)


def test_blending_tiles_cut_from_an_image_gives_the_image_back():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(1000, 1300))
    grid = TileGrid.for_image(image.shape, 256, 0.5)
    out = np.zeros(grid.padded_shape)
    for k in range(grid.n_tiles):
        y0, x0 = grid.position(k)
        grid.accumulate(out, k, image[y0:y0 + 256, x0:x0 + 256])
    np.testing.assert_allclose(out, image, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tile=0), "tile must be a positive integer"),
    (dict(overlap=0.75), r"overlap must be in \[0, 0.5\]"),
    (dict(overlap=-0.1), "got -0.1"),
])
def test_bad_tiling_parameters_are_refused(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TileGrid.for_image((64, 64), **{"tile": 32, "overlap": 0.5, **kwargs})
