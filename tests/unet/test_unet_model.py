"""The residual-encoder U-Net: shapes, parameter counts, config round trip, seeding, errors."""

import math

import pytest
import torch

from dancekit.errors import ConfigError, ParameterError
from dancekit.unet.config import UNetConfig
from dancekit.unet.model import build_unet, count_parameters

TINY = UNetConfig(in_channels=6, n_stages=4, features=(8, 16, 15, 24), strides=(1, 2, 2, 2),
                  blocks_per_stage=(2, 1, 2, 1), decoder_convs_per_stage=(2, 1, 2))


def expected_parameter_count(c: UNetConfig) -> int:
    """Count written from the architecture's description (DanceCam §2.2.1, dynamic-network-
    architectures' ResidualEncoderUNet): weights of every conv, shortcut projections, transposed
    convs and 1x1 heads (with bias); InstanceNorm without affine and bias-free convs add none."""
    k2 = c.kernel_size ** 2
    f = c.features
    n = c.in_channels * f[0] * k2                                   # stem
    c_in = f[0]
    for s in range(c.n_stages):
        for b in range(c.blocks_per_stage[s]):
            n += c_in * f[s] * k2 + f[s] * f[s] * k2                # conv1, conv2
            if c_in != f[s]:
                n += c_in * f[s]                                    # 1x1 shortcut projection
            c_in = f[s]
    for d in range(c.n_stages - 1):
        below, skip, stride = f[-1 - d], f[-2 - d], c.strides[-1 - d]
        n += below * skip * stride ** 2                             # transposed conv
        n += 2 * skip * skip * k2 + (c.decoder_convs_per_stage[d] - 1) * skip * skip * k2
        n += skip * c.out_channels + c.out_channels                 # head (with bias)
    return n


def test_paper_config_has_dancecams_28_million_parameters():
    config = UNetConfig.paper()
    assert config.total_stride == 64
    model = build_unet(config)
    n = count_parameters(model)
    assert n == expected_parameter_count(config)
    assert 28.0e6 < n < 28.4e6  # DanceCam's network: 28.19 M


def test_default_config_is_small_and_counts_match():
    model = build_unet()
    n = count_parameters(model)
    assert n == expected_parameter_count(UNetConfig())
    assert n < 500_000
    assert count_parameters(build_unet(TINY)) == expected_parameter_count(TINY)


@pytest.mark.parametrize("config, size", [
    (UNetConfig(), (3 * 16, 5 * 16)),          # odd multiples of the total stride 16
    (TINY, (7 * 8, 3 * 8)),
])
def test_deep_supervision_shapes_high_to_low(config, size):
    model = build_unet(config)
    x = torch.randn(2, config.in_channels, *size)
    outputs = model(x)
    assert isinstance(outputs, list) and len(outputs) == config.n_stages - 1
    scale = 1
    for output, stride in zip(outputs, config.strides):
        scale *= stride
        assert output.shape == (2, config.out_channels, size[0] // scale, size[1] // scale)


def test_paper_config_shapes_on_an_odd_multiple_of_64():
    model = build_unet(UNetConfig.paper(deep_supervision=False))
    with torch.no_grad():
        y = model(torch.randn(1, 64, 3 * 64, 64))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 1, 192, 64)


def test_without_deep_supervision_returns_the_full_resolution_head():
    model = build_unet(TINY)
    x = torch.randn(1, TINY.in_channels, 32, 40)
    with torch.no_grad():
        full = model(x)[0]
        model.deep_supervision = False
        single = model(x)
        model.eval()  # no running statistics: eval gives the same numbers
        single_eval = model(x)
    assert torch.equal(full, single) and torch.equal(single, single_eval)


def test_input_shape_errors_name_the_rule():
    model = build_unet(TINY)
    with pytest.raises(ParameterError, match="multiples of the total stride 8"):
        model(torch.zeros(1, TINY.in_channels, 36, 40))
    with pytest.raises(ParameterError, match=r"\(batch, 6 frames, H, W\)"):
        model(torch.zeros(1, 5, 32, 32))


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_unet(TINY, seed=3), build_unet(TINY, seed=3), build_unet(TINY, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    wa, wb, wc = (m.encoder.stem.convs[0].conv.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_he_initialisation_variance():
    model = build_unet(UNetConfig.paper(), seed=0)
    w = model.decoder.stages[0].convs[0].conv.weight  # (320, 640, 3, 3)
    fan_in = 640 * 9
    expected = 2.0 / (1 + 0.01 ** 2) / fan_in  # He et al. 2015, leaky ReLU gain
    assert w.var().item() == pytest.approx(expected, rel=0.02)


def test_shared_aliases_are_the_same_parameters():
    model = build_unet(TINY)
    block = model.encoder.stages[1].blocks[0]
    assert block.conv1.all_modules[0] is block.conv1.conv
    assert model.decoder.encoder is model.encoder
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(p for p in model.parameters()))


def test_config_dict_round_trip_and_validation():
    config = UNetConfig.paper(deep_supervision=False)
    assert UNetConfig.from_dict(config.to_dict()) == config
    assert isinstance(config.to_dict()["features"], list)
    with pytest.raises(ConfigError, match=r"unknown U-Net config key\(s\) \['depth'\]"):
        UNetConfig.from_dict({"depth": 3})
    with pytest.raises(ConfigError, match="'in_channels' must be an integer"):
        UNetConfig.from_dict({"in_channels": "64"})
    with pytest.raises(ConfigError, match="features must have 5 entries"):
        UNetConfig.from_dict({"features": [8, 16]})
    with pytest.raises(ParameterError, match="strides must have 4 entries for n_stages=4"):
        UNetConfig(n_stages=4, features=(8,) * 4, strides=(1, 2), blocks_per_stage=(1,) * 4,
                   decoder_convs_per_stage=(1,) * 3)
    with pytest.raises(ParameterError, match="kernel_size must be odd"):
        UNetConfig(kernel_size=4)
    with pytest.raises(ParameterError, match="in_channels must be a positive integer, got 0"):
        UNetConfig(in_channels=0)
    assert math.prod(UNetConfig().strides) == UNetConfig().total_stride == 16
