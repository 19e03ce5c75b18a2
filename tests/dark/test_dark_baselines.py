"""Classical baselines: overscan bias, optical-black level, median and scaled darks."""

import numpy as np
import pytest

from dancekit.dark.baselines import (
    fit_scaled_dark, median_dark, optical_black_level, overscan_bias, predict_scaled_dark, rmse,
)
from dancekit.dark.cameras import quadrant_layout, single_amplifier_layout
from dancekit.dark.layout import region_stack
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame
from dancekit.errors import InputError, ParameterError

LAYOUT = quadrant_layout(name="small", active=64, overscan=46)
MODEL = DarkCameraModel()


@pytest.fixture(scope="module")
def camera():
    pattern = camera_pattern(LAYOUT, MODEL, camera_seed=21)
    train = [simulate_dark_frame(LAYOUT, pattern, -15.0, 30.0, seed=100 + i, model=MODEL) for i in range(15)]
    return pattern, train


def test_overscan_bias_recovers_the_drifting_bias(camera):
    _, train = camera
    frame = train[0]
    fitted = overscan_bias(frame.raw, LAYOUT, degree=3)
    per_row = overscan_bias(frame.raw, LAYOUT, degree=None)
    err_fit, err_rows = rmse(fitted, frame.bias), rmse(per_row, frame.bias)
    # per-row median of 46 samples: ~1.25 * 5.2 / sqrt(46) ~ 1 ADU; the smooth fit averages it down
    assert 0.6 < err_rows < 1.4
    assert err_fit < 0.4 * err_rows


def test_scaled_beats_median_away_from_the_training_temperature(camera):
    pattern, train = camera
    median = median_dark(np.stack([region_stack(f.raw, LAYOUT, "active") for f in train]))
    scaled = fit_scaled_dark(np.stack([f.raw for f in train]), LAYOUT)
    for i, t in enumerate((-25.0, -5.0)):
        frame = simulate_dark_frame(LAYOUT, pattern, t, 30.0, seed=500 + i, model=MODEL)
        truth = region_stack(frame.expected, LAYOUT, "active")
        r_median, r_scaled = rmse(median, truth), rmse(predict_scaled_dark(scaled, frame.raw, LAYOUT), truth)
        # the median dark is off by the whole dark-level change (~70 and ~200 ADU here)
        assert r_scaled < 0.25 * r_median
    # at the training temperature the two are comparable (both a few ADU)
    frame = simulate_dark_frame(LAYOUT, pattern, -15.0, 30.0, seed=600, model=MODEL)
    truth = region_stack(frame.expected, LAYOUT, "active")
    assert rmse(predict_scaled_dark(scaled, frame.raw, LAYOUT), truth) < 15
    assert rmse(median, truth) < 20


def test_optical_black_level_scales_with_temperature(camera):
    pattern, _ = camera
    model = DarkCameraModel(temperature_jitter=0.0)
    cold, warm = (simulate_dark_frame(LAYOUT, pattern, t, 30.0, seed=7, model=model) for t in (-15.0, -8.6))
    ratio = optical_black_level(warm.raw, LAYOUT) / optical_black_level(cold.raw, LAYOUT)
    np.testing.assert_allclose(ratio, 2.0, rtol=0.04)


def test_errors_are_named():
    with pytest.raises(InputError, match=r"prediction shape \(2, 2\) differs from truth shape \(3, 2\)"):
        rmse(np.zeros((2, 2)), np.zeros((3, 2)))
    single = single_amplifier_layout((20, 30), "[1:5,1:20]", "[9:30,1:20]")
    with pytest.raises(ParameterError, match="no optical-black region"):
        optical_black_level(np.zeros((20, 30)), single)
    with pytest.raises(ParameterError, match="degree must be None or an integer in \\[0, 20\\], got -1"):
        overscan_bias(np.zeros(LAYOUT.frame_shape), LAYOUT, degree=-1)
    flat = np.full((2, *LAYOUT.frame_shape), 1000.0)  # no dark at all
    with pytest.raises(InputError, match="optical-black dark level .* <= 0"):
        fit_scaled_dark(flat, LAYOUT)
