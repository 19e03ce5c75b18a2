"""Deep-Dark-Net generator / PatchGAN shapes, receptive field, conditioning, one training step."""

import numpy as np
import pytest
import torch

from dancekit.dark.baselines import optical_black_level, overscan_bias
from dancekit.dark.conditioning import (
    AduScaling, fit_adu_scaling, n_input_planes, network_inputs, network_targets, strip_planes,
)
from dancekit.dark.cameras import lamost_layout, quadrant_layout
from dancekit.dark.layout import region_stack
from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator, receptive_field
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame
from dancekit.dark.training import (
    GanLossWeights, make_optimizers, predict_dark, reconstruction_l1, train_epoch, train_step,
)
from dancekit.errors import InputError, ParameterError

torch.set_num_threads(1)


def test_generator_keeps_the_1042_px_active_size_and_stores_its_adu_affine():
    g = DeepDarkGenerator(in_channels=3, width=2, n_blocks=1, adu_offset=1100.0, adu_scale=300.0)
    with torch.no_grad():
        y = g(torch.randn(1, 3, 1042, 1042))  # 1042 is not a multiple of 4: padded and cropped
        assert y.shape == (1, 1, 1042, 1042)
        assert y.abs().max() <= 1.0
        assert g(torch.randn(2, 3, 37, 50)).shape == (2, 1, 37, 50)
        np.testing.assert_allclose(g.to_adu(torch.tensor([-1.0, 1.0])).numpy(), [800.0, 1400.0])
    # the config rebuilds the same model (checkpoint contract)
    g2 = DeepDarkGenerator(**g.config)
    g2.load_state_dict(g.state_dict())
    x = torch.randn(1, 3, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(g2.eval()(x), g.eval()(x))


def test_generator_full_width_has_paper_structure():
    g = DeepDarkGenerator(in_channels=3)  # width 64: 9 residual blocks at 256 channels
    assert len(g.body) == 9
    assert all(b.block[1].in_channels == 256 and b.block[1].kernel_size == (3, 3) for b in g.body)
    assert g.stem[1].kernel_size == (7, 7) and isinstance(g.stem[0], torch.nn.ReflectionPad2d)
    assert g.down1[0].stride == (2, 2) and g.down2[0].stride == (2, 2)


def test_patchgan_has_a_70_pixel_receptive_field():
    d = PatchDiscriminator(in_channels=4)  # pix2pix basic D: 64-128-256-512
    widths = [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]
    # analytic: 1 + 3 * (1 + 2 + 4 + 8 + 8) = 70
    assert receptive_field(d) == 70
    d.eval()
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    y = torch.zeros(1, 1, 256, 256, requires_grad=True)
    out = d(x, y)
    assert out.shape == (1, 1, 30, 30)  # pix2pix: 30 x 30 patches for a 256^2 input
    out[0, 0, 15, 15].backward()
    support = (x.grad.abs().sum((0, 1)) + y.grad.abs().sum((0, 1))) > 0
    rows, cols = np.nonzero(support.numpy())
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_bad_architecture_arguments():
    with pytest.raises(ParameterError, match="norm must be one of .* got 'layer'"):
        DeepDarkGenerator(norm="layer")
    with pytest.raises(ParameterError, match="width must be an integer >= 1, got 0"):
        PatchDiscriminator(width=0)


def test_strip_planes_carry_bias_and_optical_black_levels():
    lay = quadrant_layout(name="small", active=32, overscan=46)
    frame = simulate_dark_frame(lay, camera_pattern(lay, camera_seed=2), -5.0, 30.0, seed=3)
    planes = strip_planes(frame.raw, lay)
    assert planes.shape == (4, 3, 32, 32)
    rs, _ = lay.region_slices("active")
    # plane 0 follows the true bias of each row to within the overscan read noise
    bias_rows = frame.bias[:, rs]
    assert np.sqrt(np.mean((planes[:, 0, :, 0] - bias_rows) ** 2)) < 1.5
    # planes 1-2 minus the bias give the optical-black dark level
    bias = overscan_bias(frame.raw, lay)
    ob = optical_black_level(frame.raw, lay, bias)
    for p in (1, 2):
        np.testing.assert_allclose((planes[:, p] - bias[:, rs, None]).mean((1, 2)), ob, rtol=0.05)
    # the paper's bilinear resize gives the same typical levels (but spreads hot pixels)
    resized = strip_planes(frame.raw, lay, mode="resize")
    np.testing.assert_allclose(np.median(resized, (2, 3)), np.median(planes, (2, 3)), atol=5.0)  # dark ~290 ADU
    assert n_input_planes(lay, template=True, coordinates=True) == 6
    with pytest.raises(ParameterError, match="mode must be 'profile' or 'resize'"):
        strip_planes(frame.raw, lay, mode="nearest")
    with pytest.raises(InputError, match=r"raw frame shape .* does not match layout 'lamost'"):
        strip_planes(frame.raw, lamost_layout())


def test_adu_scaling_round_trip_and_range():
    values = np.random.default_rng(0).normal(1000, 10, 100_000)
    s = fit_adu_scaling(values)
    np.testing.assert_allclose(s.to_adu(s.to_unit(values)), values)
    units = np.abs(s.to_unit(values))
    # all but the 2e-4 tails fall inside [-0.8, 0.8] (margin 1.25), well inside tanh's range
    assert np.mean(units > 0.8 + 1e-9) <= 2.5e-4 and np.mean(units > 1.0) < 1e-4
    with pytest.raises(ParameterError, match="scale > 0"):
        AduScaling(0.0, 0.0)


@pytest.fixture(scope="module")
def tiny_problem():
    lay = quadrant_layout(name="tiny", active=24, overscan=8)
    pattern = camera_pattern(lay, camera_seed=4)
    frames = [simulate_dark_frame(lay, pattern, t, 30.0, seed=i) for i, t in enumerate((-25.0, -15.0, -5.0))]
    scaling = fit_adu_scaling(np.stack([region_stack(f.raw, lay, "active") for f in frames]))
    x = torch.from_numpy(np.concatenate([network_inputs(f.raw, lay, scaling, coordinates=True) for f in frames]))
    y = torch.from_numpy(np.concatenate([network_targets(f.raw, lay, scaling) for f in frames]))
    return lay, frames, scaling, x, y


def test_gan_training_reduces_the_reconstruction_loss(tiny_problem):
    _, _, scaling, x, y = tiny_problem
    g = DeepDarkGenerator(x.shape[1], width=4, n_blocks=1, adu_offset=scaling.offset, adu_scale=scaling.scale, seed=0)
    d = PatchDiscriminator(x.shape[1] + 1, width=4, seed=0)
    opt_g, opt_d = make_optimizers(g, d, lr=2e-3)
    before = reconstruction_l1(g, x, y)
    losses = train_step(g, d, opt_g, opt_d, x[:1], y[:1])
    assert set(losses) == {"d", "g_bce", "g_mse", "g_l1", "g"}
    assert losses["g"] == pytest.approx(losses["g_bce"] + losses["g_mse"] + 100 * losses["g_l1"], rel=1e-5)
    rng = torch.Generator().manual_seed(0)
    for _ in range(6):
        train_epoch(g, d, opt_g, opt_d, x, y, GanLossWeights(), rng=rng)
    after = reconstruction_l1(g, x, y)
    assert after < 0.5 * before


def test_predict_dark_returns_adu_and_checks_inputs(tiny_problem):
    lay, frames, scaling, x, y = tiny_problem
    g = DeepDarkGenerator(x.shape[1], width=2, n_blocks=0, adu_offset=scaling.offset, adu_scale=scaling.scale)
    pred = predict_dark(g, x[:4].numpy())
    assert pred.shape == (4, 24, 24) and pred.dtype == np.float32
    assert np.all(np.abs(pred - scaling.offset) <= scaling.scale + 1e-3)
    with pytest.raises(InputError, match=r"generator inputs must be \(N, 5, h, w\)"):
        predict_dark(g, x[:, :3])
    d = PatchDiscriminator(x.shape[1] + 1, width=2)
    opt_g, opt_d = make_optimizers(g, d)
    with pytest.raises(InputError, match="differ in batch or image size"):
        train_step(g, d, opt_g, opt_d, x[:2], y[:1])
    with pytest.raises(InputError, match="at least 24 x 24 pixels, got \\(16, 16\\)"):
        train_step(g, d, opt_g, opt_d, x[:1, :, :16, :16], y[:1, :, :16, :16])
