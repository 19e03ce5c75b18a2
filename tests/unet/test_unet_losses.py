"""Deep-supervision MSE: weights, target downsampling, and a tiny overfit of the whole stack."""

import pytest
import torch
import torch.nn.functional as F

from dancekit.errors import ParameterError
from dancekit.unet.config import UNetConfig
from dancekit.unet.losses import deep_supervision_mse, deep_supervision_weights, downsample_target, flux_consistency
from dancekit.unet.model import build_unet
from dancekit.unet.transforms import anscombe


def test_weights_halve_per_level_and_sum_to_one():
    w = deep_supervision_weights(6)
    assert float(w.sum()) == pytest.approx(1.0)
    assert torch.allclose(w[1:] / w[:-1], torch.full((5,), 0.5, dtype=torch.float64))
    # nnU-Net's convention (nnUNetTrainer._build_loss): 1/2^i, last set to 0, normalised
    nn_unet = torch.tensor([1 / 2 ** i for i in range(6)], dtype=torch.float64)
    nn_unet[-1] = 0
    assert torch.allclose(deep_supervision_weights(6, drop_coarsest=True), nn_unet / nn_unet.sum())
    assert deep_supervision_weights(6, drop_coarsest=True)[0] == pytest.approx(0.516, abs=1e-3)


def test_loss_reduces_to_weighted_full_resolution_mse_when_coarse_outputs_are_perfect():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 32, 48, generator=g) * 10
    outputs = [target + torch.randn(target.shape, generator=g)]
    for factor in (2, 4, 8):  # perfect coarse outputs: block means of the target
        outputs.append(F.avg_pool2d(target, factor))
    loss = deep_supervision_mse(outputs, target[:, 0])  # (B, H, W) target accepted
    w0 = deep_supervision_weights(4)[0].item()
    assert loss.item() == pytest.approx(w0 * F.mse_loss(outputs[0], target).item(), rel=1e-6)
    assert w0 == pytest.approx(8 / 15)
    # a single tensor is plain MSE
    assert deep_supervision_mse(outputs[0], target).item() == pytest.approx(F.mse_loss(outputs[0], target).item())


def test_area_downsampling_keeps_flux_nearest_can_lose_a_star():
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 5, 7] = 64.0  # a point source off the block corners
    area = downsample_target(target, (4, 4))
    assert area.sum().item() * 16 == pytest.approx(64.0)  # mean per block x block area
    assert downsample_target(target, (4, 4), mode="nearest").sum().item() == 0.0


def test_loss_errors_name_the_mismatch():
    out = [torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 6, 6)]
    with pytest.raises(ParameterError, match="must divide the target size 16 x 16"):
        deep_supervision_mse(out, torch.zeros(1, 16, 16))
    with pytest.raises(ParameterError, match=r"target shape \(1, 1, 8, 8\) must match"):
        deep_supervision_mse(out[0], torch.zeros(1, 1, 8, 8))
    with pytest.raises(ParameterError, match="one of \\('area', 'nearest'\\)"):
        downsample_target(torch.zeros(1, 1, 4, 4), (2, 2), mode="bilinear")
    with pytest.raises(ParameterError, match=r"need one weight per output \(1\)"):
        deep_supervision_mse(out[0], torch.zeros(1, 1, 16, 16), weights=[0.5, 0.5])


def test_tiny_network_overfits_one_sample():
    config = UNetConfig(in_channels=4, n_stages=3, features=(8, 16, 24), strides=(1, 2, 2),
                        blocks_per_stage=(1, 1, 1), decoder_convs_per_stage=(1, 1))
    model = build_unet(config, seed=0)
    g = torch.Generator().manual_seed(1)
    frames = torch.poisson(torch.full((1, 4, 32, 32), 5.0), generator=g)
    frames[..., 10:13, 20:23] += 200.0  # a blurred "star"
    truth = torch.zeros(1, 1, 32, 32)
    truth[..., 11, 21] = 9 * 200.0  # its flux (9 pixels x 200) in one pixel
    x, y = anscombe(frames), anscombe(truth)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(200):
        optimiser.zero_grad()
        loss = deep_supervision_mse(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if loss.item() < 0.1 * losses[0]:
            break
    assert min(losses) < 0.1 * losses[0], f"loss {losses[0]:.3g} -> {min(losses):.3g} in {len(losses)} steps"


def test_flux_term_is_zero_for_the_truth_and_counts_a_deficit_in_photon_noise_units():
    truth = torch.zeros(1, 8, 8, dtype=torch.float64)
    truth[0, 1:3, 1:3] = 250.0                                   # a 1000 e- star inside one 4x4 block
    background = torch.tensor([0.3], dtype=torch.float64)        # below the 1 e- floor
    exact = anscombe(truth)[:, None]
    assert float(flux_consistency(exact, truth, background, scales=(4,))) == pytest.approx(0.0, abs=1e-9)
    dimmed = anscombe(truth * 0.9)[:, None]                      # the star loses 10 %: -100 e-
    z = 100.0 / (1000.0 + 16 * 1.0) ** 0.5                       # photon noise of the block, floor 1 e-/px
    expected = (z - 0.5) / 4                                     # Huber (delta 1) in 1 of 4 blocks
    assert float(flux_consistency(dimmed, truth, background, scales=(4,))) == pytest.approx(expected, rel=1e-6)


def test_flux_term_sees_flux_moved_to_a_neighbour_that_the_total_misses():
    truth = torch.zeros(1, 16, 16, dtype=torch.float64)
    truth[0, 4, 4], truth[0, 4, 12] = 400.0, 400.0               # two stars in neighbouring 8x8 blocks
    moved = truth.clone()
    moved[0, 4, 4], moved[0, 4, 12] = 300.0, 500.0               # 100 e- given to the neighbour
    output = anscombe(moved)[:, None]
    assert float(moved.sum()) == float(truth.sum())
    background = torch.tensor([5.0], dtype=torch.float64)
    assert float(flux_consistency(output, truth, background, scales=(16,))) == pytest.approx(0.0, abs=1e-9)
    assert float(flux_consistency(output, truth, background, scales=(8,))) > 0.5


def test_flux_term_refuses_tiles_the_blocks_do_not_divide():
    truth = torch.ones(1, 12, 12)
    with pytest.raises(ParameterError, match="flux block side 8 must divide the tile"):
        flux_consistency(anscombe(truth)[:, None], truth, torch.ones(1), scales=(8,))
