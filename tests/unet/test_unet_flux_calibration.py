"""The measured E[electrons | network output] that replaces the Anscombe inverse of a model."""

import numpy as np
import pytest
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.unet.flux_calibration import FluxCalibration, fit_flux_calibration


def algebraic(y):
    return np.clip(y, 2 * np.sqrt(3 / 8), None) ** 2 / 4 - 3 / 8


def test_the_fit_recovers_a_known_conditional_mean_and_is_monotone():
    """Truth = algebraic(y) + 2 e- + zero-mean noise: E[x | y] lies 2 e- above the algebraic inverse
    (noise small enough that the sparsest tail bin, ~30 pixels, still pins its mean to 0.1 e-)."""
    rng = np.random.default_rng(3)
    y = rng.gamma(2.0, 2.0, 200_000) + 1.2
    x = algebraic(y) + 2.0 + rng.normal(0, 0.5, y.size)
    calibration = fit_flux_calibration(y, x)
    knots_y, knots_x = np.array(calibration.y), np.array(calibration.x)
    assert np.all(np.diff(knots_y) > 0) and np.all(np.diff(knots_x) >= 0)
    np.testing.assert_allclose(knots_x - algebraic(knots_y), 2.0, atol=0.35)
    # the calibrated flux of the whole set is the true flux (the algebraic inverse misses 2 e- a pixel)
    total = calibration.to_electrons(torch.from_numpy(y)).sum().item()
    assert total == pytest.approx(x.sum(), rel=0.01)
    assert algebraic(y).sum() < 0.9 * x.sum()


def test_interpolation_between_knots_and_the_algebraic_tail_beyond_them():
    calibration = FluxCalibration((1.0, 3.0, 5.0), (0.0, 4.0, 6.0))
    y = torch.tensor([0.5, 2.0, 4.0, 5.0, 9.0], dtype=torch.float64)
    expected = [0.0, 2.0, 5.0, 6.0, 6.0 + algebraic(9.0) - algebraic(5.0)]
    np.testing.assert_allclose(calibration.to_electrons(y).numpy(), expected)
    assert FluxCalibration.from_dict(calibration.to_dict()) == calibration


def test_bad_tables_and_too_little_data_are_refused():
    with pytest.raises(ParameterError, match="y increasing and x non-decreasing"):
        FluxCalibration((1.0, 1.0), (0.0, 1.0))
    with pytest.raises(ParameterError, match=">= 2 finite"):
        FluxCalibration((1.0,), (0.0,))
    with pytest.raises(InputError, match="not a \\{'y'"):
        FluxCalibration.from_dict({"y": [1.0, 2.0]})
    with pytest.raises(InputError, match="at least 1000 finite pixels, got 10"):
        fit_flux_calibration(np.arange(10.0), np.arange(10.0))
