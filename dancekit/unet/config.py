"""Hyper-parameters of the residual-encoder U-Net (one frozen dataclass).

The network is the 2D ``ResidualEncoderUNet`` of MIC-DKFZ's dynamic-network-architectures
(Isensee et al. 2021) as used by DanceCam (Bialek et al. 2024, MNRAS 531, 403, §2.2.1): the
``in_channels`` short-exposure frames of a video are the input channels of 2D convolutions.
``UNetConfig.paper()`` is the configuration of DanceCam's published weights; ``UNetConfig()``
is a small configuration with the same structure (2 residual blocks per stage, 2 decoder
convolutions) that trains on a 2-core CPU: 32 frames, 5 stages, features (16, 24, 32, 48, 64),
total stride 16, 422,908 parameters.

A config goes into checkpoints as a plain dict (``to_dict``) and comes back with
``from_dict``, which rejects unknown keys and wrong types, so a model file never needs pickles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dancekit.errors import ConfigError, ParameterError

_TUPLE_FIELDS = ("features", "strides", "blocks_per_stage", "decoder_convs_per_stage")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the residual-encoder U-Net.

    Attributes
    ----------
    in_channels : number of video frames the network sees at once (the context length); they
        are the input channels. DanceCam: 64 frames at 5.25 frames/s (12.2 s).
    n_stages : resolution stages of the encoder (the decoder has ``n_stages - 1``).
    features : feature channels per encoder stage (length ``n_stages``).
    strides : downsampling factor of the first convolution of each encoder stage (length
        ``n_stages``); the product is the total stride, and tile sides must be multiples of it.
    blocks_per_stage : residual basic blocks per encoder stage (length ``n_stages``).
    decoder_convs_per_stage : convolutions per decoder stage (length ``n_stages - 1``).
    kernel_size : side of the square convolution kernels [pixels].
    out_channels : output images (1: the turbulence-free image).
    deep_supervision : whether ``forward`` returns one output per decoder stage (training).
    conv_bias : whether the 3x3 convolutions and transposed convolutions carry a bias
        (DanceCam: no; redundant in front of InstanceNorm).
    norm_affine : whether InstanceNorm has a learned scale and shift (DanceCam: no).
    negative_slope : slope of LeakyReLU for negative inputs (PyTorch default 0.01).
    """

    in_channels: int = 32
    n_stages: int = 5
    features: tuple[int, ...] = (16, 24, 32, 48, 64)
    strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2, 2)
    decoder_convs_per_stage: tuple[int, ...] = (2, 2, 2, 2)
    kernel_size: int = 3
    out_channels: int = 1
    deep_supervision: bool = True
    conv_bias: bool = False
    norm_affine: bool = False
    negative_slope: float = 0.01

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        self._validate()

    @classmethod
    def paper(cls, **overrides: Any) -> "UNetConfig":
        """DanceCam's network (demo/M92.ipynb of DanceCam/dancelibpublic): 64 frames, 7 stages,
        features (32, 64, 125, 256, 320, 320, 512) (the 125 is DanceCam's, copied from the
        library's example), strides (1, 2, 2, 2, 2, 2, 2), 2 blocks per stage, 2 decoder
        convolutions per stage, InstanceNorm without affine, no convolution bias, LeakyReLU,
        deep supervision; 28.19 M parameters, total stride 64."""
        values: dict[str, Any] = dict(
            in_channels=64,
            n_stages=7,
            features=(32, 64, 125, 256, 320, 320, 512),
            strides=(1, 2, 2, 2, 2, 2, 2),
            blocks_per_stage=(2,) * 7,
            decoder_convs_per_stage=(2,) * 6,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def total_stride(self) -> int:
        """Product of the strides: tile sides must be multiples of it [pixels]."""
        total = 1
        for stride in self.strides:
            total *= stride
        return total

    def with_changes(self, **changes: Any) -> "UNetConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ints, floats, bools, lists) for a checkpoint or a FITS header."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "UNetConfig":
        """Rebuild a config from ``to_dict`` output; unknown keys and wrong types raise
        ``ConfigError`` naming the key; missing keys take the defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"U-Net config must be a mapping of field names to values, got {type(data).__name__}")
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown U-Net config key(s) {unknown}; allowed: {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = _checked_type(name, value, known[name].type)
        try:
            return cls(**values)
        except ParameterError as exc:
            raise ConfigError(f"invalid U-Net config: {exc.message}") from None

    def _validate(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")

        positive_int("in_channels", self.in_channels)
        positive_int("n_stages", self.n_stages)
        positive_int("out_channels", self.out_channels)
        positive_int("kernel_size", self.kernel_size)
        if self.kernel_size % 2 == 0:
            raise ParameterError(f"kernel_size must be odd (same padding), got {self.kernel_size}")
        expected = {
            "features": self.n_stages,
            "strides": self.n_stages,
            "blocks_per_stage": self.n_stages,
            "decoder_convs_per_stage": self.n_stages - 1,
        }
        for name, length in expected.items():
            value = getattr(self, name)
            if not isinstance(value, tuple) or len(value) != length:
                raise ParameterError(
                    f"{name} must have {length} entries for n_stages={self.n_stages}, got {value!r}"
                )
            for item in value:
                positive_int(f"each entry of {name}", item)
        if not (0.0 <= float(self.negative_slope) < 1.0):
            raise ParameterError(f"negative_slope must be in [0, 1), got {self.negative_slope!r}")


def _checked_type(name: str, value: Any, annotation: Any) -> Any:
    """Check one value from a stored dict against the field's annotation (a string here)."""
    text = str(annotation)
    if text.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"U-Net config key '{name}' must be a list of integers, got {value!r}")
        return tuple(value)
    if text == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"U-Net config key '{name}' must be true or false, got {value!r}")
        return value
    if text == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"U-Net config key '{name}' must be an integer, got {value!r}")
        return value
    if text == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"U-Net config key '{name}' must be a number, got {value!r}")
        return float(value)
    return value
