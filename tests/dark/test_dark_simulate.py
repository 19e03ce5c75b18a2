"""Dark-frame simulator against the paper's dark-current law and CCD noise statistics."""

import dataclasses

import numpy as np
import pytest

from dancekit.dark.baselines import optical_black_level, overscan_bias
from dancekit.dark.cameras import lamost_layout, quadrant_layout
from dancekit.dark.layout import region_stack
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, dark_current_electrons, simulate_dark_frame
from dancekit.errors import ParameterError

SMALL = quadrant_layout(name="small", active=128, overscan=46)
STEADY = DarkCameraModel(temperature_jitter=0.0)


def _dark_above_bias_e(frame, layout, model):
    """Mean active-area signal above the true bias of each row, in e-."""
    rs, _ = layout.region_slices("active")
    active = region_stack(frame.raw, layout, "active") - frame.bias[:, rs, None]
    return float(active.mean()) * model.gain


def test_dark_current_doubles_every_6_4_degrees():
    model = dataclasses.replace(STEADY, glow=0.0)  # glow is not thermal
    pattern = camera_pattern(SMALL, model, camera_seed=1)
    levels = [_dark_above_bias_e(simulate_dark_frame(SMALL, pattern, t, 30.0, seed=i, model=model), SMALL, model)
              for i, t in enumerate((-21.4, -15.0, -8.6))]
    assert levels[1] / levels[0] == pytest.approx(2.0, rel=0.02)
    assert levels[2] / levels[1] == pytest.approx(2.0, rel=0.02)


def test_240_electrons_in_30_s_at_minus_15_on_the_full_lamost_frame():
    lay = lamost_layout()
    pattern = camera_pattern(lay, STEADY, camera_seed=3)
    frame = simulate_dark_frame(lay, pattern, -15.0, 30.0, seed=4, model=STEADY)
    assert frame.raw.shape == (2094, 2200)
    assert frame.raw.min() >= 0 and frame.raw.max() <= 65535 and np.all(frame.raw == np.rint(frame.raw))
    # mean over the pattern (rings, hot pixels, glow) ~ the paper's 240 e- (sec. 2.1)
    assert _dark_above_bias_e(frame, lay, STEADY) == pytest.approx(240.0, rel=0.03)


def test_dark_is_linear_in_exposure_and_formula_matches_paper_points():
    assert dark_current_electrons(-15.0, 30.0) == pytest.approx(240.0)
    assert dark_current_electrons(-15.0 + 6.4, 60.0) == pytest.approx(960.0)
    with pytest.raises(ParameterError, match="exposure must be >= 0 s, got -1"):
        dark_current_electrons(-15.0, -1.0)


def test_overscan_is_bias_plus_read_noise():
    pattern = camera_pattern(SMALL, STEADY, camera_seed=5)
    frame = simulate_dark_frame(SMALL, pattern, -5.0, 30.0, seed=6, model=STEADY)
    rs, _ = SMALL.region_slices("overscan")
    residual = region_stack(frame.raw, SMALL, "overscan") - frame.bias[:, rs, None]
    n = residual.size
    expected_std = np.hypot(STEADY.read_noise / STEADY.gain, np.sqrt(1 / 12))  # + ADU rounding
    assert abs(residual.mean()) < 4 * expected_std / np.sqrt(n)
    assert residual.std() == pytest.approx(expected_std, rel=4 / np.sqrt(2 * n) + 0.005)
    # no dark current in the overscan even when the active area is hot
    assert abs(residual.mean()) * STEADY.gain < 0.01 * frame.dark_electrons


def test_optical_black_tracks_the_dark_level():
    pattern = camera_pattern(SMALL, STEADY, camera_seed=7)
    ratios, levels = [], []
    for i, t in enumerate((-25.0, -15.0, -5.0)):
        frame = simulate_dark_frame(SMALL, pattern, t, 30.0, seed=10 + i, model=STEADY)
        ob = optical_black_level(frame.raw, SMALL, overscan_bias(frame.raw, SMALL)).mean() * STEADY.gain
        levels.append(ob)
        ratios.append(ob / _dark_above_bias_e(frame, SMALL, STEADY))
    assert np.ptp(ratios) < 0.03  # the same fraction of the active dark at every temperature
    assert all(0.9 < r < 1.1 for r in ratios)
    assert levels[2] / levels[0] == pytest.approx(2 ** (20 / 6.4), rel=0.05)


def test_temperature_jitter_is_uniform_within_one_degree():
    tiny = quadrant_layout(name="tiny", active=8, overscan=4)
    pattern = camera_pattern(tiny, camera_seed=0)
    temps = np.array([simulate_dark_frame(tiny, pattern, -15.0, 30.0, seed=s).temperature for s in range(400)])
    assert temps.min() >= -16.0 and temps.max() <= -14.0
    assert temps.std() == pytest.approx(2 / np.sqrt(12), rel=0.12)


def test_camera_pattern_is_fixed_per_camera_and_frames_vary_per_seed():
    a, b = camera_pattern(SMALL, camera_seed=11), camera_pattern(SMALL, camera_seed=11)
    c = camera_pattern(SMALL, camera_seed=12)
    np.testing.assert_array_equal(a.relative_dark, b.relative_dark)
    assert np.corrcoef(a.relative_dark.ravel(), c.relative_dark.ravel())[0, 1] < 0.5
    f1 = simulate_dark_frame(SMALL, a, -5.0, 30.0, seed=1, model=STEADY)
    f2 = simulate_dark_frame(SMALL, a, -5.0, 30.0, seed=2, model=STEADY)
    assert not np.array_equal(f1.raw, f2.raw)
    # the fixed pattern shows in both frames: their bias-free actives correlate strongly
    d1, d2 = (region_stack(f.raw, SMALL, "active") - f.bias[:, 4:132, None] for f in (f1, f2))
    assert np.corrcoef(d1.ravel(), d2.ravel())[0, 1] > 0.5
    # the pattern has hot pixels at the configured fraction (factor >= 5 above the mean rate)
    assert np.mean(a.relative_dark > 4) == pytest.approx(2e-4, abs=1.5e-4)


def test_uint16_output_and_errors():
    pattern = camera_pattern(SMALL, camera_seed=0)
    frame = simulate_dark_frame(SMALL, pattern, -15.0, 30.0, seed=0, dtype="uint16")
    assert frame.raw.dtype == np.uint16 and frame.expected.dtype == np.float32
    with pytest.raises(ParameterError, match="dtype must be 'float32' or 'uint16', got 'int8'"):
        simulate_dark_frame(SMALL, pattern, -15.0, 30.0, seed=0, dtype="int8")
    with pytest.raises(ParameterError, match="temperature must be .* got nan"):
        simulate_dark_frame(SMALL, pattern, float("nan"), 30.0, seed=0)
    with pytest.raises(ParameterError, match="camera pattern shape .* does not fit layout 'lamost'"):
        simulate_dark_frame(lamost_layout(), pattern, -15.0, 30.0, seed=0)
    with pytest.raises(ParameterError, match="gain must be > 0, got 0"):
        DarkCameraModel(gain=0.0)
