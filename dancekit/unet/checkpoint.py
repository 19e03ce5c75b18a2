"""Recognise U-Net weights: dancekit's own checkpoints and DanceCam's published ``.pth``.

Two formats are understood (both are what ``torch.load(path, weights_only=True)`` returns):

* dancekit: ``{'model_config': UNetConfig.to_dict(), 'state_dict': {...}, ...}``;
* DanceCam (DanceCam/dancelibpublic, weights ``1.0m.5.25fps.64frames.n40k.pth``):
  ``{'state_dict': {...}, ...}`` of dynamic-network-architectures' ``ResidualEncoderUNet``; the
  architecture is not stored, so it is read off the tensor shapes. A bare state_dict is read
  the same way.

Keys may carry the ``module.`` prefix of (Distributed)DataParallel or the ``_orig_mod.`` prefix
of ``torch.compile``. The reference library stores every weight under up to four names (see
``model.py``); a file holding only some of them is completed, and one whose copies disagree is
rejected. Anything else raises ``InputError`` saying what was expected.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from dancekit.errors import ConfigError, InputError
from dancekit.unet.config import UNetConfig
from dancekit.unet.model import ResidualEncoderUNet, build_unet

_STEM = "encoder.stem.convs.0.conv"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def load_state_dict_any(obj: Any) -> tuple[UNetConfig, dict[str, torch.Tensor]]:
    """Config and state_dict from a loaded checkpoint object (dancekit or DanceCam format).

    The returned state_dict has exactly the keys of ``build_unet(config).state_dict()`` with
    matching shapes, so it loads with ``strict=True``. For DanceCam's format ``deep_supervision``
    is True (as trained) and ``negative_slope`` the LeakyReLU default 0.01 (neither is stored).
    Raises ``InputError`` for any other object, or for weights that do not form such a U-Net.
    """
    if not isinstance(obj, dict):
        raise InputError(
            f"not a U-Net checkpoint: expected a dict with a 'state_dict' entry, got {type(obj).__name__}"
        )
    if "state_dict" in obj:
        raw = obj["state_dict"]
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raw = obj  # a bare state_dict
    else:
        raise InputError(
            "not a U-Net checkpoint: expected a dict with a 'state_dict' entry (DanceCam) or "
            f"'model_config' and 'state_dict' (dancekit), found keys {_preview(obj)}"
        )
    weights = _primary_weights(raw)
    if "model_config" in obj:
        try:
            config = UNetConfig.from_dict(obj["model_config"])
        except ConfigError as exc:
            raise InputError(f"checkpoint's model_config is invalid: {exc.message}") from None
    else:
        config = infer_config(weights)
    return config, _expand_to_model_keys(weights, config)


def model_from_checkpoint(obj: Any) -> ResidualEncoderUNet:
    """Build the U-Net described by a checkpoint object and load its weights strictly."""
    config, state_dict = load_state_dict_any(obj)
    model = build_unet(config)
    model.load_state_dict(state_dict, strict=True)
    return model


def checkpoint_entries(model: ResidualEncoderUNet) -> dict[str, Any]:
    """The model part of a dancekit checkpoint: ``{'model_config': dict, 'state_dict': dict}``
    (the training summary, context and normalisation are added by the caller)."""
    return {"model_config": model.config.to_dict(), "state_dict": model.state_dict()}


def infer_config(weights: dict[str, torch.Tensor]) -> UNetConfig:
    """Architecture of a ``ResidualEncoderUNet`` state_dict, from its tensor shapes.

    ``weights`` uses primary names (see ``_primary_name``). Not recoverable from shapes: the
    stride of stage 0 (taken as 1, as in DanceCam and nnU-Net) and the LeakyReLU slope (0.01).
    """
    stem = weights.get(f"{_STEM}.weight")
    if stem is None:
        raise InputError(
            f"not a residual-encoder U-Net state_dict: no '{_STEM}.weight' among keys {_preview(weights)}"
        )
    if stem.ndim != 4 or stem.shape[-1] != stem.shape[-2]:
        raise InputError(f"only 2D U-Nets with square kernels are supported; stem weight has shape {tuple(stem.shape)}")
    features, blocks = [], []
    while f"encoder.stages.{len(features)}.blocks.0.conv1.conv.weight" in weights:
        s = len(features)
        features.append(int(weights[f"encoder.stages.{s}.blocks.0.conv1.conv.weight"].shape[0]))
        n = 0
        while f"encoder.stages.{s}.blocks.{n}.conv1.conv.weight" in weights:
            n += 1
        blocks.append(n)
    n_stages = len(features)
    if n_stages < 2:
        raise InputError(f"U-Net state_dict has {n_stages} encoder stage(s); at least 2 are needed")
    strides, decoder_convs = [1], []
    for d in range(n_stages - 1):
        up = weights.get(f"decoder.transpconvs.{d}.weight")
        if up is None or up.ndim != 4:
            raise InputError(f"U-Net state_dict lacks 'decoder.transpconvs.{d}.weight' for {n_stages} stages")
        strides.insert(1, int(up.shape[-1]))  # decoder stage d undoes encoder stage n-1-d
        n = 0
        while f"decoder.stages.{d}.convs.{n}.conv.weight" in weights:
            n += 1
        decoder_convs.append(n)
    head = weights.get("decoder.seg_layers.0.weight")
    if head is None:
        raise InputError("U-Net state_dict lacks 'decoder.seg_layers.0.weight' (the output heads)")
    try:
        return UNetConfig(
            in_channels=int(stem.shape[1]),
            n_stages=n_stages,
            features=tuple(features),
            strides=tuple(strides),
            blocks_per_stage=tuple(blocks),
            decoder_convs_per_stage=tuple(decoder_convs),
            kernel_size=int(stem.shape[-1]),
            out_channels=int(head.shape[0]),
            deep_supervision=True,
            conv_bias=f"{_STEM}.bias" in weights,
            norm_affine="encoder.stem.convs.0.norm.weight" in weights,
        )
    except ValueError as exc:
        raise InputError(f"U-Net state_dict describes an invalid architecture: {exc}") from None


def _primary_name(key: str) -> str:
    """One name per weight: ``decoder.encoder.X`` -> ``encoder.X``,
    ``all_modules.0`` -> ``conv``, ``all_modules.1`` -> ``norm`` (the reference's aliases)."""
    if key.startswith("decoder.encoder."):
        key = key[len("decoder."):]
    key = re.sub(r"\.all_modules\.0\.", ".conv.", key)
    return re.sub(r"\.all_modules\.1\.", ".norm.", key)


def _primary_weights(raw: Any) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"'state_dict' must be a non-empty dict of tensors, got {type(raw).__name__}")
    bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"'state_dict' holds non-tensor entries, e.g. {bad[:3]}")
    stripped = True
    while stripped:  # e.g. 'module._orig_mod.' from DataParallel around torch.compile
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in raw):
                raw = {k[len(prefix):]: v for k, v in raw.items()}
                stripped = True
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = _primary_name(key)
        if name in weights:
            other = weights[name]
            if other.shape != tensor.shape or not torch.equal(other, tensor):
                raise InputError(f"corrupt U-Net state_dict: '{key}' differs from its alias '{name}'")
        else:
            weights[name] = tensor
    return weights


def _expand_to_model_keys(weights: dict[str, torch.Tensor], config: UNetConfig) -> dict[str, torch.Tensor]:
    """Map primary names onto every key of the model built from ``config``, checking shapes."""
    with torch.device("meta"):  # shapes only, no memory
        expected = ResidualEncoderUNet(config).state_dict()
    out: dict[str, torch.Tensor] = {}
    missing, used = [], set()
    for key, ref in expected.items():
        name = _primary_name(key)
        tensor = weights.get(name)
        if tensor is None:
            missing.append(key)
            continue
        if tuple(tensor.shape) != tuple(ref.shape):
            raise InputError(
                f"U-Net weight '{name}' has shape {tuple(tensor.shape)}, the architecture needs {tuple(ref.shape)}"
            )
        out[key] = tensor
        used.add(name)
    if missing:
        raise InputError(f"U-Net state_dict lacks {len(missing)} weight(s) of the architecture, e.g. {missing[:3]}")
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise InputError(
            f"U-Net state_dict has {len(unexpected)} weight(s) the architecture does not use, e.g. {unexpected[:3]}"
        )
    return out


def _preview(mapping: dict, n: int = 5) -> str:
    keys = [str(k) for k in list(mapping)[:n]]
    return str(keys) + (" ..." if len(mapping) > n else "")
