"""The master template inside a model: compact storage, the 'above_scaled' target, the zero head."""

import numpy as np
import pytest
import torch

from dancekit.dark.baselines import fit_scaled_dark, predict_scaled_dark, rmse
from dancekit.dark.cameras import quadrant_layout
from dancekit.dark.conditioning import (
    fit_adu_scaling, n_input_planes, network_inputs, reference_adu, target_adu, uses_template,
)
from dancekit.dark.inference import gan_dark
from dancekit.dark.layout import region_stack
from dancekit.dark.networks import DeepDarkGenerator
from dancekit.dark.simulate import camera_pattern, simulate_dark_frame
from dancekit.dark.template_codec import decode_template, encode_template
from dancekit.dark.trainer import DarkTrainingSettings
from dancekit.errors import InputError, ParameterError

LAYOUT = quadrant_layout(name="small", active=40, overscan=16)


@pytest.fixture(scope="module")
def camera():
    pattern = camera_pattern(LAYOUT, camera_seed=5)
    frames = [simulate_dark_frame(LAYOUT, pattern, t, 30.0, seed=i) for i, t in enumerate((-25, -15, -10, -5) * 2)]
    scaled = fit_scaled_dark(np.stack([f.raw for f in frames[:6]]), LAYOUT)
    return frames, scaled


def test_template_codec_holds_every_pixel_to_half_a_step(camera):
    _, scaled = camera
    t = scaled.template
    stored = encode_template(t)
    back = decode_template(stored)
    assert back.shape == t.shape and back.dtype == np.float32
    # hot pixels (5-50x) lie far outside the uint8 grid: kept exactly as outliers
    assert t.max() > 4 and np.abs(back - t).max() <= 0.5 * stored["step"] * (1 + 1e-3)
    assert stored["codes"].dtype == torch.uint8 and 0 < stored["outlier_index"].numel() < 0.05 * t.size
    with pytest.raises(ParameterError, match="finite .* with NaN/inf"):
        encode_template(np.full((1, 4, 4), np.nan))
    bad = dict(stored, outlier_index=stored["outlier_index"] + t.size)
    with pytest.raises(InputError, match="stored template is inconsistent"):
        decode_template(bad)


def test_above_scaled_target_is_the_residual_of_the_scaled_baseline(camera):
    frames, scaled = camera
    raw = frames[7].raw
    reference = reference_adu(raw, LAYOUT, "above_scaled", scaled.template)
    np.testing.assert_array_equal(reference, predict_scaled_dark(scaled, raw, LAYOUT))
    residual = target_adu(raw, LAYOUT, "above_scaled", scaled.template)
    active = region_stack(raw, LAYOUT, "active")
    np.testing.assert_allclose(residual + reference, active, atol=1e-3)
    # at -5 C the dark is ~300 ADU: the residual is read + shot noise (~10 ADU) and the glow mismatch
    assert np.median(np.abs(residual)) < 15 < np.median(np.abs(target_adu(raw, LAYOUT, "above_overscan")))
    assert reference_adu(raw, LAYOUT, "absolute") is None
    assert uses_template({"target": "above_scaled"}) and uses_template({"template": True, "target": "absolute"})
    assert not uses_template({"target": "above_overscan", "template": False})
    with pytest.raises(ParameterError, match="above_scaled' needs the master template"):
        target_adu(raw, LAYOUT, "above_scaled")


def test_untrained_generator_on_the_scaled_residual_predicts_the_scaled_baseline(camera):
    """Zero head: tanh(0) = 0 -> the ADU offset, so an untrained model gives scaled + offset."""
    frames, scaled = camera
    raw = frames[6].raw
    scaling = fit_adu_scaling(target_adu(raw, LAYOUT, "above_scaled", scaled.template), tail=1e-3)
    planes = n_input_planes(LAYOUT, template=True, coordinates=True)
    x = network_inputs(raw, LAYOUT, scaling, template=scaled.template, coordinates=True)
    assert x.shape == (4, planes, 40, 40) and planes == 6
    np.testing.assert_allclose(x[:, 3], scaled.template - 1.0)  # the template plane, dimensionless
    g = DeepDarkGenerator(planes, width=4, n_blocks=1, adu_offset=scaling.offset, adu_scale=scaling.scale, seed=1)
    pred = gan_dark(g, raw, LAYOUT, coordinates=True, target="above_scaled", template=scaled.template, template_plane=True)
    expected = predict_scaled_dark(scaled, raw, LAYOUT) + np.float32(scaling.offset)
    np.testing.assert_allclose(pred, expected, atol=1e-3)
    assert rmse(pred, region_stack(raw, LAYOUT, "active")) < 20
    with pytest.raises(ParameterError, match="takes the master template as an input plane"):
        gan_dark(g, raw, LAYOUT, coordinates=True, target="above_scaled", template_plane=True)


def test_learning_rate_decays_linearly_to_zero_over_the_last_share():
    s = DarkTrainingSettings(epochs=1, seed=0, lr_decay=0.5)
    factors = [s.lr_factor(step, 10) for step in range(10)]
    assert factors[:5] == [1.0] * 5 and factors[5:] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    assert DarkTrainingSettings(epochs=1, seed=0).lr_factor(9, 10) == 1.0
    with pytest.raises(ParameterError, match=r"lr_decay must be in \[0, 1\], got 1.5"):
        DarkTrainingSettings(epochs=1, seed=0, lr_decay=1.5)


def test_channels_predicted_concurrently_equal_one_at_a_time():
    from dancekit.dark.training import predict_dark

    g = DeepDarkGenerator(3, width=4, n_blocks=1, adu_offset=100.0, adu_scale=50.0, seed=2)
    torch.nn.init.normal_(g.head[1].weight, 0.0, 0.1, generator=torch.Generator().manual_seed(0))  # a non-constant output
    x = np.random.default_rng(0).normal(size=(4, 3, 40, 36)).astype(np.float32)
    threads = torch.get_num_threads()
    one_by_one = predict_dark(g, x, workers=1)
    together = predict_dark(g, x, workers=2)
    assert torch.get_num_threads() == threads and one_by_one.std() > 0.1
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)
    with pytest.raises(ParameterError, match="workers must be None or an integer >= 1, got 0"):
        predict_dark(g, x, workers=0)
