"""Layout from the config, the training loop's exact resume, crops, and the frame checks."""

import numpy as np
import pytest
import torch

from dancekit.dark.cameras import lamost_layout, layout_from_config, layout_from_mapping, layout_to_mapping, same_geometry
from dancekit.dark.inference import check_raw_frame, fit_master_dark, predict_active_dark
from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator
from dancekit.dark.trainer import DarkTrainer, DarkTrainingSettings, crop_pair
from dancekit.errors import ConfigError, InputError
from dancekit.io.config import load_config
from dancekit.io.config_schema import DarkConfig


def test_the_config_describes_the_library_lamost_layout():
    cfg = load_config("lamost", DarkConfig)
    layout = layout_from_config(cfg.detector)
    # the config counts the 2 discarded rows per frame, the library 1 per channel row: same frame
    assert same_geometry(layout, lamost_layout()) and layout.frame_shape == (2094, 2200)
    assert layout.region_shape("active") == (1042, 1042) and layout.region_shape("overscan") == (1042, 46)
    assert same_geometry(layout_from_mapping(layout_to_mapping(layout)), layout)
    with pytest.raises(ConfigError, match="discarded_rows \\(3\\) must split evenly between the 2 channel rows"):
        load_config("lamost", DarkConfig, ["detector.discarded_rows=3"])
    with pytest.raises(ConfigError, match="2 x \\(optical_black_rows \\+ active_rows\\) \\+ discarded_rows = 2096 != rows 2094"):
        load_config("lamost", DarkConfig, ["detector.discarded_rows=4"])


def test_crop_pair_cuts_the_same_window():
    target = torch.arange(40 * 50, dtype=torch.float32).reshape(1, 1, 40, 50)
    condition = torch.cat([target + 1, target * 2], 1)
    c, t = crop_pair(condition, target, 24, torch.Generator().manual_seed(3))
    assert t.shape == (1, 1, 24, 24) and c.shape == (1, 2, 24, 24)
    torch.testing.assert_close(c[:, :1], t + 1)
    torch.testing.assert_close(c[:, 1:], t * 2)
    c, t = crop_pair(condition, target, 0, torch.Generator())
    assert t.shape == (1, 1, 40, 50)


def _trainer(n_samples, epochs):
    g = DeepDarkGenerator(in_channels=2, width=4, n_blocks=1, seed=1)
    d = PatchDiscriminator(in_channels=3, width=4, seed=2)
    return DarkTrainer(g, d, DarkTrainingSettings(epochs=epochs, seed=5, crop=24, learning_rate=1e-3), n_samples)


def _sample(i):
    rng = np.random.default_rng(i)
    x = rng.normal(0, 0.3, (2, 32, 32)).astype(np.float32)
    return x, (0.5 * x[:1] + 0.1).astype(np.float32)


def test_training_stopped_mid_epoch_resumes_exactly():
    straight = _trainer(3, 2)
    assert straight.run(_sample)
    first = _trainer(3, 2)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == 4  # after step 4: in the middle of the second epoch

    assert not first.run(_sample, should_stop=stop) and first.step == 4
    second = _trainer(3, 2)
    second.load_state_dict(first.state_dict())
    assert second.run(_sample)
    for key, value in straight.generator.state_dict().items():
        assert torch.equal(value, second.generator.state_dict()[key]), key
    assert straight.history == second.history and len(straight.history) == 2


def test_l1_training_learns_an_affine_map():
    """With only the L1 term the generator must fit y = 0.5 x + 0.1: the loss falls well below its start."""
    torch.manual_seed(0)
    g = DeepDarkGenerator(in_channels=2, width=4, n_blocks=1, seed=1)
    d = PatchDiscriminator(in_channels=3, width=4, seed=2)
    settings = DarkTrainingSettings(epochs=12, seed=5, loss_bce=0, loss_mse=0, loss_l1=1, learning_rate=3e-3)
    trainer = DarkTrainer(g, d, settings, 4)
    trainer.run(_sample)
    losses = [r["g_l1"] for r in trainer.history]
    assert losses[-1] < 0.5 * losses[0]


def test_frame_checks_and_the_median_method():
    from dancekit.dark.cameras import quadrant_layout
    from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame

    layout = quadrant_layout(active=32, overscan=8)
    model = DarkCameraModel()
    pattern = camera_pattern(layout, model, 0)
    frames = np.stack([simulate_dark_frame(layout, pattern, -15, 30, s, model).raw for s in range(3)])
    master = fit_master_dark(frames, layout)
    np.testing.assert_array_equal(predict_active_dark("median", frames[0], layout, master=master), master.median)
    check_raw_frame(frames[0], layout, 65535)
    bad = frames[0].copy()
    bad[0, 5] = np.inf  # channel 0, optical-black row 0, column 5: the amplifier columns, not read
    check_raw_frame(bad, layout, 65535)
    bad[10, 9] = np.nan  # channel 0, row 10 (active), column 9: the column optical black
    with pytest.raises(InputError, match="region 'ob_columns' of channel 0 has 1 NaN/inf samples"):
        check_raw_frame(bad, layout, 65535)
    with pytest.raises(InputError, match="does not match layout"):
        check_raw_frame(frames[0][:-1], layout, 65535)
