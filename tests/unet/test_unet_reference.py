"""Equivalence with MIC-DKFZ's dynamic-network-architectures 0.4.4, DanceCam's U-Net library.

Test-only dependency, installed without its dependencies (they pull timm and torchvision, and
through them another multi-GB torch):
    pip install --no-deps dynamic-network-architectures==0.4.4
Its ``architectures.unet`` module imports only torch and numpy (timm/einops are imported by
other modules of the package), so it imports cleanly; the tests skip when it is absent.
"""

import pytest
import torch
from torch import nn

from dancekit.unet.checkpoint import load_state_dict_any
from dancekit.unet.config import UNetConfig
from dancekit.unet.model import build_unet, count_parameters

reference_unet = pytest.importorskip("dynamic_network_architectures.architectures.unet")


def reference_model(c: UNetConfig) -> nn.Module:
    """The reference class built the way DanceCam's notebook builds it, from our config."""
    norm_kwargs = {"eps": 1e-5, "affine": True} if c.norm_affine else None
    return reference_unet.ResidualEncoderUNet(
        input_channels=c.in_channels, n_stages=c.n_stages, features_per_stage=c.features,
        conv_op=nn.Conv2d, kernel_sizes=c.kernel_size, strides=c.strides,
        n_blocks_per_stage=c.blocks_per_stage, num_classes=c.out_channels,
        n_conv_per_stage_decoder=c.decoder_convs_per_stage, conv_bias=c.conv_bias,
        norm_op=nn.InstanceNorm2d, norm_op_kwargs=norm_kwargs, dropout_op=None,
        nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": c.negative_slope},
        deep_supervision=c.deep_supervision,
    )


def randomise(model: nn.Module, seed: int) -> None:
    """Give every parameter (norm scales and biases too) distinct random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


SAME_STRUCTURE = UNetConfig(  # DanceCam's structure, smaller: odd feature count like its 125
    in_channels=8, n_stages=4, features=(8, 16, 15, 32), strides=(1, 2, 2, 2),
    blocks_per_stage=(2,) * 4, decoder_convs_per_stage=(2,) * 3)
VARIANT = UNetConfig(  # stride 1 inside, uneven depths, nnU-Net's affine norm and conv bias
    in_channels=5, n_stages=4, features=(6, 12, 12, 20), strides=(1, 2, 1, 2),
    blocks_per_stage=(1, 2, 3, 1), decoder_convs_per_stage=(1, 2, 3), conv_bias=True,
    norm_affine=True, negative_slope=0.2)


@pytest.mark.parametrize("config", [SAME_STRUCTURE, VARIANT])
def test_reference_weights_load_strictly_and_give_the_same_outputs(config):
    ref = reference_model(config)
    randomise(ref, seed=1)
    ours = build_unet(config, seed=2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, config.in_channels, 3 * config.total_stride, 5 * config.total_stride,
                    generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert len(got) == len(expected) == config.n_stages - 1
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    # and the other way round: our weights are usable by DanceCam's code
    randomise(ours, seed=4)
    ref.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-5)


def test_reference_gradients_match():
    ref = reference_model(SAME_STRUCTURE)
    ours = build_unet(SAME_STRUCTURE)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 8, 16, 24, generator=torch.Generator().manual_seed(5))
    for model in (ref, ours):
        sum(o.square().mean() for o in model(x)).backward()
    ref_grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, rtol=1e-4, atol=1e-6)


def test_paper_config_state_dict_keys_and_shapes_match_dancecams_network():
    ref = reference_model(UNetConfig.paper())
    ours = build_unet(UNetConfig.paper())
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes
    assert count_parameters(ours) == sum(p.numel() for p in ref.parameters())
    # a DanceCam-style file is recognised and its architecture read back from the shapes
    config, state_dict = load_state_dict_any({"state_dict": ref.state_dict()})
    assert config == UNetConfig.paper()
    ours.load_state_dict(state_dict, strict=True)
