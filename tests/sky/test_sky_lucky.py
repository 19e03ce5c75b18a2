"""Lucky imaging: the sharpest frames are chosen and re-registered on the brightest star."""

import numpy as np
import pytest
from scipy import ndimage

from dancekit.errors import InputError, ParameterError
from dancekit.sky.lucky import lucky_stack


def field(shape=(64, 64)):
    image = np.zeros(shape, np.float32)
    image[30, 34] = 5000.0   # the reference (brightest) star
    image[12, 15] = 800.0
    image[50, 45] = 1200.0
    return image


def test_sharpest_frames_are_kept_and_shifted_back_onto_the_reference():
    rng = np.random.default_rng(4)
    sharp = field()
    blurs = np.array([3.0, 0.8, 2.5, 3.5, 0.7, 2.0, 3.0, 2.8, 4.0, 3.2])
    offsets = rng.integers(-3, 4, (len(blurs), 2))
    frames = np.array([np.roll(ndimage.gaussian_filter(sharp, b), tuple(o), axis=(0, 1)) + 10.0
                       for b, o in zip(blurs, offsets)], np.float32)
    result = lucky_stack(frames, fraction=0.2, search_radius=8)
    assert sorted(result.selected.tolist()) == [1, 4]            # the two sharpest (blur 0.8 and 0.7)
    assert result.selected[0] == 4                               # sharpest first
    expected = np.mean([ndimage.gaussian_filter(sharp, b) for b in (0.7, 0.8)], axis=0) + 10.0
    peak = np.unravel_index(np.argmax(result.image), result.image.shape)
    assert result.reference == tuple(int(v) for v in peak)
    shift = np.subtract(peak, (30, 34))                          # the stack lands where the average put the star
    moved = np.roll(expected, tuple(shift), axis=(0, 1))
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(result.image[inner], moved[inner], rtol=1e-5, atol=1e-4)


def test_flux_is_kept_and_edges_shifted_in_are_left_out():
    frames = np.stack([np.roll(field(), (k, -k), axis=(0, 1)) for k in range(4)]) + 1.0
    result = lucky_stack(frames, fraction=1.0)
    assert np.isfinite(result.image[10:-10, 10:-10]).all()
    assert np.nansum(result.image - 1.0) == pytest.approx(field().sum(), rel=1e-5)


def test_bad_input_is_refused():
    with pytest.raises(InputError, match=r"\(T, H, W\) video"):
        lucky_stack(np.zeros((8, 8)))
    with pytest.raises(ParameterError, match=r"must be in \(0, 1\]"):
        lucky_stack(np.zeros((2, 32, 32)), fraction=0)
    with pytest.raises(InputError, match="too small"):
        lucky_stack(np.zeros((2, 12, 12)), search_radius=6)
