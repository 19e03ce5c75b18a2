"""Choosing where torch runs: ``auto`` takes CUDA when present, otherwise the CPU."""

from __future__ import annotations

import torch

from dancekit.errors import ParameterError


def resolve_device(name: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` (or ``cuda:N``) to a torch device, refusing CUDA that is absent."""
    name = str(getattr(name, "value", name))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError("CUDA was asked for but no GPU is available; use --device cpu or auto", source="--device")
        return torch.device(name)
    raise ParameterError(f"unknown device '{name}' (allowed: auto, cpu, cuda)", source="--device")
