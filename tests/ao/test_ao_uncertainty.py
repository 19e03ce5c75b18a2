"""The spread of measured modal variances from a block jackknife of the time series."""

import numpy as np
import pytest

from dancekit.ao.synthetic import smooth_white_noise
from dancekit.ao.uncertainty import block_jackknife_deviations, draw_from_deviations


def test_jackknife_spread_is_the_seed_to_seed_scatter_of_correlated_series():
    # 4 modes with correlation times of 2-12 frames and a common component (correlated errors):
    # the jackknife standard error of each variance and the correlation of two must match 60 seeds
    estimates, errors, products = [], [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        w = smooth_white_noise(4000, [2.0, 4.0, 8.0, 12.0], seed=rng)
        common = smooth_white_noise(4000, 6.0, seed=rng)[:, 0]
        x = w + 1.5 * common[:, None]
        d = block_jackknife_deviations(x, range(4), n_blocks=20, estimate_noise=False)
        estimates.append(x.var(axis=0, ddof=1))
        cov = 19 / 20 * d.T @ d
        errors.append(np.sqrt(np.diag(cov)))
        products.append(cov[0, 3] / np.sqrt(cov[0, 0] * cov[3, 3]))
    estimates = np.array(estimates)
    assert np.allclose(np.mean(errors, axis=0) / estimates.std(axis=0, ddof=1), 1.0, atol=0.25)
    assert np.mean(products) == pytest.approx(np.corrcoef(estimates[:, 0], estimates[:, 3])[0, 1], abs=0.2)
    assert np.mean(products) > 0.3  # the common component correlates the errors (~rho^2 = 0.48)


def test_draws_have_the_jackknife_covariance():
    deviations = np.random.default_rng(1).standard_normal((20, 3)) * [1.0, 2.0, 0.5]
    draws = draw_from_deviations(np.array([10.0, 20.0, 5.0]), deviations, 200_000, np.random.default_rng(2))
    assert np.allclose(draws.mean(axis=0), [10.0, 20.0, 5.0], atol=0.02)
    assert np.allclose(np.cov(draws.T), 19 / 20 * deviations.T @ deviations, rtol=0.03, atol=0.01)


def test_too_short_series_gives_none():
    assert block_jackknife_deviations(np.zeros((60, 3)) + np.arange(60)[:, None], range(3)) is None
