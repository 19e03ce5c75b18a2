"""Autocorrelation noise estimator (Fusco et al. 2004) and pseudo-open-loop reconstruction."""

import numpy as np
import pytest

from dancekit.ao.noise import autocorrelation, measurement_noise_variance
from dancekit.ao.pseudo_open_loop import (microns_to_radians, modes_from_commands,
                                          modes_from_slopes, pseudo_open_loop_modes)
from dancekit.ao.synthetic import simulate_telemetry, smooth_white_noise
from dancekit.errors import InputError, ParameterError


def test_smooth_noise_has_unit_variance_and_gaussian_autocorrelation():
    w = smooth_white_noise(50_000, [0.0] * 10 + [4.0] * 10, seed=1)
    c = autocorrelation(w, 8)
    # 10 series each: the mean variance is 1 within the sampling error (0.2 % white, 0.8 % smooth)
    assert c[0, :10].mean() == pytest.approx(1.0, abs=0.01)
    assert c[0, 10:].mean() == pytest.approx(1.0, abs=0.03)
    assert np.allclose(c[1:, :10].mean(axis=1), 0.0, atol=0.005)
    # Gaussian kernel sigma -> autocorrelation exp(-tau^2 / (4 sigma^2))
    assert np.allclose(c[:, 10:].mean(axis=1) / c[0, 10:].mean(), np.exp(-np.arange(9) ** 2 / 64.0),
                       atol=0.01)


def test_noise_variance_of_smooth_signal_plus_white_noise():
    rng = np.random.default_rng(3)
    signal = smooth_white_noise(20_000, np.linspace(3.0, 8.0, 12), seed=rng) * np.linspace(1, 5, 12)
    noise_var = np.linspace(0.05, 0.5, 12)
    data = signal + rng.standard_normal(signal.shape) * np.sqrt(noise_var)
    est = measurement_noise_variance(data)
    assert np.allclose(est, noise_var, rtol=0.06)
    assert np.mean(est / noise_var) == pytest.approx(1.0, abs=0.02)
    # a mean offset changes nothing; the caller's array is untouched
    copy = data.copy()
    assert np.allclose(measurement_noise_variance(data + 7.0), est)
    assert np.array_equal(data, copy)


def test_noise_free_smooth_signal_gives_almost_no_noise():
    signal = smooth_white_noise(20_000, 5.0 * np.ones(4), seed=5)
    assert np.all(measurement_noise_variance(signal) < 1e-3)


def test_white_noise_is_all_noise():
    data = np.random.default_rng(2).standard_normal((20_000, 3)) * 2.0
    assert np.allclose(measurement_noise_variance(data), 4.0, rtol=0.05)


def test_noise_estimator_rejects_bad_input():
    with pytest.raises(InputError, match="too few for the noise autocorrelation"):
        measurement_noise_variance(np.zeros((20, 3)))
    bad = np.ones((1000, 3))
    bad[5, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        measurement_noise_variance(bad)
    with pytest.raises(ParameterError, match="degree"):
        measurement_noise_variance(np.ones((1000, 3)), max_lag=3, degree=3)


def test_closed_loop_pseudo_open_loop_recovers_open_loop_modes():
    tel = simulate_telemetry(0.12, 25.0, n_frames=2000, slope_noise=1.0, loop_gain=0.4,
                             loop_delay=2, seed=7)
    pol = pseudo_open_loop_modes(tel.dm_modes, tel.residual_modes, -2)
    assert pol.shape == (1998, 14)
    assert np.allclose(pol, tel.reconstructed[2:], atol=1e-9)
    # the loop corrects: residuals are smaller than the turbulence
    assert tel.residual_modes[:, 2:].var() < 0.5 * tel.reconstructed[:, 2:].var()


def test_modal_projections_and_units():
    assert microns_to_radians(1.0) == pytest.approx(2 * np.pi / 0.5)
    slopes = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3)  # AOT (t, 2, s)
    s2m = np.ones((4, 2, 3))
    assert np.allclose(modes_from_slopes(slopes, s2m), slopes.reshape(2, 6).sum(axis=1)[:, None])
    assert modes_from_commands(np.ones((5, 7)), np.ones((3, 7))).shape == (5, 3)
    with pytest.raises(InputError, match="commands_to_modes"):
        modes_from_commands(np.ones((5, 7)), np.ones((3, 6)))
    with pytest.raises(InputError, match="same shape"):
        pseudo_open_loop_modes(np.ones((5, 3)), np.ones((6, 3)), 1)
    with pytest.raises(InputError, match="fewer than 2"):
        pseudo_open_loop_modes(np.ones((5, 3)), np.ones((5, 3)), 4)


def test_propagated_noise_pools_one_slope_noise_level():
    from dancekit.ao.noise import propagated_noise_variance

    gain = np.linspace(0.5, 3.0, 14)
    estimates = 0.2 * gain * (1 + 0.1 * np.random.default_rng(0).standard_normal(14))  # 10 % scatter per mode
    pooled = propagated_noise_variance(estimates, gain)
    assert np.allclose(pooled / gain, pooled[0] / gain[0]) and pooled[0] / gain[0] == pytest.approx(0.2, rel=0.05)
    with pytest.raises(ParameterError, match="noise gain must be"):
        propagated_noise_variance(estimates, gain[:5])
