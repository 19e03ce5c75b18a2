"""U-Net model files: written atomically, read without ever executing what they hold.

A dancekit checkpoint is one ``torch.save``d plain dict (tensors, numbers, strings, lists,
dicts), so ``torch.load(path, weights_only=True)`` reads it:

    format          "dancekit-unet"            format_version  1
    model_config    UNetConfig.to_dict()       state_dict      the selected (best) weights
    context         frames per window          tile            training tile side [pixels]
    inverse         the Anscombe inverse to use at inference (``preprocess.INVERSES``; files
                    without it, like DanceCam's, mean "unbiased")
    normalisation   {"background", "transform", "inverse", "units"}: the pixel path (``unet.preprocess``)
    instrument      config ``instrument``      config, config_hash  the resolved video config
    training        summary: steps, epochs, samples, best epoch and metric, history, data used
    dancekit_version
    resume          (optional) latest weights, Adam, scheduler, RNG, position: ``--resume``

DanceCam's published ``.pth`` files (``{'state_dict': ...}``) read through ``read_checkpoint``
too; ``unet.checkpoint.load_state_dict_any`` makes a model of either.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from dancekit.errors import InputError
from dancekit.io.fits_out import atomic_path

FORMAT = "dancekit-unet"
FORMAT_VERSION = 1


def write_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> None:
    """Save ``checkpoint`` to ``path`` atomically (temporary file renamed into place when complete)."""
    with atomic_path(path, overwrite) as tmp:
        torch.save(checkpoint, tmp)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object stored in a model file, loaded with ``weights_only=True`` onto the CPU.

    Raises ``InputError`` for a missing, truncated or corrupt file, and for one holding Python
    objects beyond tensors and plain containers (which are refused, never executed).
    """
    name = str(path)
    if not Path(name).is_file():
        raise InputError("no such model file", source=name)
    try:
        return torch.load(name, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = " ".join(str(exc).split())[:200]
        raise InputError(f"refused: the file holds Python objects that safe loading does not allow ({first})",
                         source=name) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise InputError(f"not a readable PyTorch model file, truncated or corrupt ({first})", source=name) from None


def read_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """A dancekit checkpoint that can be resumed (it has the ``resume`` section)."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        what = "DanceCam's weight format" if isinstance(checkpoint, dict) and "state_dict" in checkpoint else "not a dancekit checkpoint"
        raise InputError(f"cannot resume from it: {what} (expected a file written by dancekit train-unet)", source=str(path))
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise InputError(f"checkpoint format version {checkpoint.get('format_version')!r} is not supported "
                         f"(this dancekit reads {FORMAT_VERSION})", source=str(path))
    if not isinstance(checkpoint.get("resume"), dict):
        raise InputError("cannot resume from it: it holds a final model without its training state", source=str(path))
    return checkpoint


def without_training_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The deployable part of a checkpoint (drops ``resume``: Adam moments and the latest weights)."""
    return {k: v for k, v in checkpoint.items() if k != "resume"}
