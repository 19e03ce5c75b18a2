"""Anscombe transform and its unbiased inverse; robust background against known noise."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import poisson

from dancekit.errors import ParameterError
from dancekit.unet.transforms import (ANSCOMBE_FLOOR, anscombe, dancecam_background,
                                      inverse_anscombe, robust_background)

LAMBDAS = [0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 200.0]


def expected_anscombe(lam: float) -> float:
    """E[2 sqrt(z + 3/8)] for z ~ Poisson(lam), by summing the probability mass function."""
    k = np.arange(0, int(lam + 20 * math.sqrt(lam) + 40))
    return float(np.sum(2.0 * np.sqrt(k + 0.375) * poisson.pmf(k, lam)))


@pytest.mark.parametrize("lam", LAMBDAS)
def test_inverse_of_the_exact_expectation_is_unbiased(lam):
    # Mäkitalo & Foi (2011): the closed form inverts lambda -> E[anscombe(z)]
    assert inverse_anscombe(expected_anscombe(lam)) == pytest.approx(lam, rel=0.01)


def test_algebraic_inverse_is_biased_where_the_unbiased_one_is_not():
    y = expected_anscombe(1.0)
    assert (y / 2) ** 2 - 0.375 < 0.85  # the naive inverse loses ~18 % at lambda = 1


@pytest.mark.parametrize("lam", [1.0, 3.0, 20.0])
def test_poisson_samples_inverse_of_mean_transform_recovers_lambda(lam):
    rng = np.random.default_rng(20240501)
    z = rng.poisson(lam, size=200_000)
    y = anscombe(z)
    if lam >= 20:
        assert np.var(y) == pytest.approx(1.0, abs=0.02)  # variance stabilised (below 1 at small lambda)
    # the inverse is that of the expectation (a denoised value), not of each noisy sample
    assert float(inverse_anscombe(np.mean(y))) == pytest.approx(lam, rel=0.02)
    assert np.mean(inverse_anscombe(y)) > lam + 0.1  # per-sample inversion is biased upwards


def test_inverse_is_clamped_monotonic_and_continuous():
    y = np.linspace(-3.0, 12.0, 20001)
    x = inverse_anscombe(y)
    assert np.all(np.isfinite(x)) and np.all(x >= 0.0)
    assert np.all(x[y <= ANSCOMBE_FLOOR] == 0.0)
    above = y > ANSCOMBE_FLOOR
    assert np.all(np.diff(x[above]) > 0.0)
    assert inverse_anscombe(ANSCOMBE_FLOOR + 1e-6) < 1e-5  # continuous at the clamp
    assert inverse_anscombe(anscombe(0.0)) == 0.0


def test_torch_and_numpy_agree_and_inputs_are_untouched():
    counts = np.array([[0.0, 0.5, 3.0], [10.0, 100.0, 1e4]])
    kept = counts.copy()
    t = torch.tensor(counts, dtype=torch.float32)
    y_np, y_t = anscombe(counts), anscombe(t)
    assert isinstance(y_np, np.ndarray) and isinstance(y_t, torch.Tensor) and y_t.dtype == torch.float32
    np.testing.assert_allclose(y_t.numpy(), y_np, rtol=1e-6)
    np.testing.assert_allclose(inverse_anscombe(y_t).numpy(), inverse_anscombe(y_np), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(counts, kept)
    assert float(anscombe(torch.tensor(-1.0))) == 0.0  # below -3/8: clipped, not NaN


def star_field(seed: int, level: float, sigma: float, n_stars: int = 60, size: int = 256) -> np.ndarray:
    """Gaussian noise of known level and sigma plus Gaussian stars (FWHM 3.5 px, peaks 10-3000)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(level, sigma, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for _ in range(n_stars):
        y, x = rng.uniform(0, size, 2)
        peak = 10 ** rng.uniform(1.0, 3.5)
        image += peak * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5 ** 2))
    return image


def test_robust_background_recovers_level_and_sigma_among_stars():
    image = star_field(seed=7, level=100.0, sigma=5.0)
    level, sigma = robust_background(image)
    # the median's own scatter is 1.25 sigma / 256 = 0.025; stars' faint wings add a little
    assert float(level) == pytest.approx(100.0, abs=0.25)
    assert float(sigma) == pytest.approx(5.0, rel=0.03)
    assert np.std(image) > 5 * 5.0  # plain statistics fail on this field
    big_endian = robust_background(image.astype(">f8"))  # as FITS stores pixels
    assert float(big_endian[0]) == float(level) and float(big_endian[1]) == float(sigma)
    level_sub, sigma_sub = robust_background(image, max_samples=20_000)
    assert float(level_sub) == pytest.approx(100.0, abs=0.3)
    assert float(sigma_sub) == pytest.approx(5.0, rel=0.04)


def test_robust_sigma_is_unbiased_on_pure_gaussian_noise():
    rng = np.random.default_rng(3)
    level, sigma = robust_background(torch.from_numpy(rng.normal(-2.0, 1.0, 1_000_000)))
    # MAD sigma scatters by ~1.1 / sqrt(n) = 0.0011; uncorrected clipping would give 0.9967
    assert float(level) == pytest.approx(-2.0, abs=0.005)
    assert float(sigma) == pytest.approx(1.0, abs=0.003)


def test_robust_background_per_tile_with_batch_dims():
    rng = np.random.default_rng(1)
    levels = np.array([10.0, 500.0, -3.0])
    sigmas = np.array([1.0, 20.0, 0.1])
    tiles = rng.normal(levels[:, None, None, None], sigmas[:, None, None, None], (3, 4, 64, 64))
    tiles[:, :, 10, 10] += 1e6  # a saturated star in every frame
    level, sigma = robust_background(torch.from_numpy(tiles), batch_dims=1)
    assert level.shape == (3,) and isinstance(level, torch.Tensor)
    for got_level, got_sigma, want_level, want_sigma in zip(level, sigma, levels, sigmas):
        assert float(got_level) == pytest.approx(want_level, abs=0.05 * want_sigma)
        assert float(got_sigma) == pytest.approx(want_sigma, rel=0.04)


def test_dancecam_background_matches_its_truncated_mad_theory():
    rng = np.random.default_rng(5)
    level, mad = dancecam_background(rng.normal(40.0, 2.0, 1_000_000))
    # symmetric noise: median = mean, so the mode estimate 3.5 med - 2.5 mean is the level
    assert float(level) == pytest.approx(40.0, abs=0.02)
    # raw MAD after 3 clips at 3 MAD: m_{i+1} solves erf(m / sqrt2 s) = erf(3 m_i / sqrt2 s) / 2
    m = 2.0 * 0.6744897501960817
    for _ in range(3):
        half = 0.5 * math.erf(3 * m / (math.sqrt(2) * 2.0))
        m = math.sqrt(2) * 2.0 * float(torch.erfinv(torch.tensor(half, dtype=torch.float64)))
    assert float(mad) == pytest.approx(m, rel=0.005)
    assert m < 0.97 * 2.0 * 0.6745  # its clip at ~2 sigma shrinks the MAD noticeably


def test_background_errors_name_the_problem():
    with pytest.raises(ParameterError, match="only NaN values"):
        robust_background(np.full((2, 5), np.nan), batch_dims=1)
    with pytest.raises(ParameterError, match="kappa must be > 1"):
        robust_background(np.zeros(10), kappa=0.5)
    with pytest.raises(ParameterError, match=r"batch_dims must be an integer in \[0, 1\], got 2"):
        robust_background(np.zeros((2, 3)), batch_dims=2)
    with pytest.raises(ParameterError, match="the data are empty"):
        robust_background(np.zeros((0,)))
