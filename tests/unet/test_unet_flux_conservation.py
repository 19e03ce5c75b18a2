"""FLUXRAT: output flux over average-stack flux above a sky that faint stars do not bias."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dancekit.unet.flux_conservation import flux_conservation
from dancekit.unet.transforms import robust_background

SKY = 0.5  # e- per pixel per frame


def crowded_field(seed, n_stars=400, size=96):
    """A sharp truth [e-] with many faint stars (power-law fluxes), its seeing-blurred noisy
    stack with a sky, and the sky level a median/MAD clip takes from that stack."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size))
    y, x = rng.uniform(4, size - 4, (2, n_stars)).astype(int)
    np.add.at(truth, (y, x), 5.0 / (1 - rng.uniform(0, 0.998, n_stars)))  # dN/dF ~ F^-2, 5-2500 e-
    truth = gaussian_filter(truth, 0.6)
    seeing = 0.8 * gaussian_filter(truth, 1.8) + 0.2 * gaussian_filter(truth, 4.5)  # core and halo
    stack = seeing + SKY + rng.normal(0.0, 0.2, truth.shape)
    level = float(robust_background(stack)[0])
    return truth, stack, np.full(truth.shape, level)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_perfect_output_gives_one_where_the_clipped_median_sky_would_not(seed):
    truth, stack, level = crowded_field(seed)
    naive = truth.sum() / (stack - level).sum()
    assert level[0, 0] > SKY + 0.3 and naive > 1.2  # faint stars taken for sky
    check = flux_conservation(truth, stack, level)
    assert check.ratio == pytest.approx(1.0, abs=0.05)
    assert check.sky == pytest.approx(SKY, abs=0.1)


def test_an_output_holding_a_small_fraction_of_the_flux_says_so():
    truth, stack, level = crowded_field(3)
    assert flux_conservation(0.01 * truth, stack, level).ratio == pytest.approx(0.01, rel=0.1)
    # an output unrelated to the stack cannot explain it: the sky falls back to the clipped levels
    rng = np.random.default_rng(4)
    noise = np.zeros_like(truth)
    noise[rng.integers(0, 96, 30), rng.integers(0, 96, 30)] = 0.01 * truth.sum() / 30
    unrelated = flux_conservation(noise, stack, level)
    assert unrelated.ratio == pytest.approx(noise.sum() / (stack - level).sum(), rel=0.02)
    assert flux_conservation(truth, np.full_like(stack, SKY), np.full_like(stack, SKY)).ratio is None
