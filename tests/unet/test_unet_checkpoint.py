"""Recognising U-Net weights: dancekit checkpoints, DanceCam's format, foreign objects."""

import io

import pytest
import torch

from dancekit.errors import InputError
from dancekit.unet.checkpoint import checkpoint_entries, load_state_dict_any, model_from_checkpoint
from dancekit.unet.config import UNetConfig
from dancekit.unet.model import build_unet

CONFIGS = [
    UNetConfig(in_channels=7, n_stages=3, features=(4, 8, 12), strides=(1, 2, 2),
               blocks_per_stage=(2, 1, 2), decoder_convs_per_stage=(2, 1)),
    UNetConfig(in_channels=3, n_stages=4, features=(4, 6, 6, 9), strides=(1, 2, 1, 4),
               blocks_per_stage=(1, 1, 3, 1), decoder_convs_per_stage=(1, 3, 2), kernel_size=5,
               out_channels=2, conv_bias=True, norm_affine=True),
]


def outputs_equal(a, b, x):
    with torch.no_grad():
        return all(torch.equal(p, q) for p, q in zip(a(x), b(x)))


def saved_and_loaded(obj):
    """Through torch.save / torch.load(weights_only=True), as a file on disk would go."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("config", CONFIGS)
def test_dancecam_format_architecture_is_read_from_the_shapes(config):
    source = build_unet(config, seed=11)
    loaded = saved_and_loaded({"state_dict": source.state_dict(), "epoch": 3})
    inferred, state_dict = load_state_dict_any(loaded)
    assert inferred == config
    model = model_from_checkpoint(loaded)
    x = torch.randn(1, config.in_channels, 2 * config.total_stride, 3 * config.total_stride)
    assert outputs_equal(model, source, x)


def test_dancekit_checkpoint_round_trip_keeps_config_fields_not_in_the_shapes():
    config = CONFIGS[0].with_changes(deep_supervision=False, negative_slope=0.1)
    source = build_unet(config, seed=5)
    loaded = saved_and_loaded({**checkpoint_entries(source), "context": 7})
    model = model_from_checkpoint(loaded)
    assert model.config == config and model.deep_supervision is False
    assert outputs_equal(model, source, torch.randn(2, 7, 8, 12))


def test_wrapper_prefixes_and_missing_aliases_are_tolerated():
    source = build_unet(CONFIGS[0], seed=1)
    primary_only = {k: v for k, v in source.state_dict().items()
                    if ".all_modules." not in k and not k.startswith("decoder.encoder.")}
    assert len(primary_only) < len(source.state_dict())
    data_parallel = {"module._orig_mod." + k: v for k, v in primary_only.items()}
    model = model_from_checkpoint({"state_dict": data_parallel})
    assert outputs_equal(model, source, torch.randn(1, 7, 8, 8))
    bare = model_from_checkpoint(source.state_dict())  # a state_dict without the wrapper dict
    assert outputs_equal(bare, source, torch.randn(1, 7, 8, 8))


def test_disagreeing_aliases_are_rejected():
    state_dict = dict(build_unet(CONFIGS[0]).state_dict())
    key = "encoder.stem.convs.0.all_modules.0.weight"
    state_dict[key] = state_dict[key] + 1.0
    message = "corrupt U-Net state_dict: 'encoder.stem.convs.0.all_modules.0.weight' differs from its alias"
    with pytest.raises(InputError, match=message):
        load_state_dict_any({"state_dict": state_dict})


def test_foreign_and_corrupt_objects_raise_input_errors():
    with pytest.raises(InputError, match="not a U-Net checkpoint: expected a dict .* got list"):
        load_state_dict_any([1, 2])
    with pytest.raises(InputError, match=r"not a U-Net checkpoint.*found keys \['generator'\]"):
        load_state_dict_any({"generator": {"w": 1}})
    with pytest.raises(InputError, match="no 'encoder.stem.convs.0.conv.weight'"):
        load_state_dict_any({"state_dict": {"fc.weight": torch.zeros(3, 4)}})
    with pytest.raises(InputError, match="non-tensor entries"):
        load_state_dict_any({"state_dict": {"encoder.stem.convs.0.conv.weight": [1.0]}})
    with pytest.raises(InputError, match="only 2D U-Nets"):
        load_state_dict_any({"state_dict": {"encoder.stem.convs.0.conv.weight": torch.zeros(4, 2, 3, 3, 3)}})

    source = build_unet(CONFIGS[0])
    entries = checkpoint_entries(source)
    wrong_shape = dict(entries["state_dict"])
    wrong_shape["decoder.seg_layers.0.weight"] = torch.zeros(1, 5, 1, 1)
    message = r"'decoder.seg_layers.0.weight' has shape \(1, 5, 1, 1\), .* needs \(1, 8, 1, 1\)"
    with pytest.raises(InputError, match=message):
        load_state_dict_any({**entries, "state_dict": wrong_shape})
    truncated = {k: v for k, v in entries["state_dict"].items() if "encoder.stages.2.blocks.1" not in k}
    with pytest.raises(InputError, match="lacks .* weight"):
        load_state_dict_any({**entries, "state_dict": truncated})
    with pytest.raises(InputError, match=r"model_config is invalid: unknown U-Net config key\(s\) \['width'\]"):
        load_state_dict_any({**entries, "model_config": {"width": 3}})
    extra = {**entries["state_dict"], "decoder.extra_head.weight": torch.zeros(1)}
    with pytest.raises(InputError, match="does not use, e.g. \\['decoder.extra_head.weight'\\]"):
        load_state_dict_any({**entries, "state_dict": extra})
