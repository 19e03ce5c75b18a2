"""Deep-supervision MSE loss (DanceCam, Bialek et al. 2024, §2.2.1 and Fig. 3).

Each decoder stage's output is compared with the target downsampled to its resolution; the
losses are summed with weights that halve from one resolution to the next (the full
resolution weighs most) and are normalised to sum to 1. nnU-Net (``nnUNetTrainer._build_loss``)
uses the same halving but also zeroes the coarsest output's weight: ``drop_coarsest=True``.

How DanceCam downsampled its targets is not public; the reference library does not downsample
targets at all (its heads are plain 1x1 convolutions at each decoder resolution). The default
here is the block mean (``mode='area'``), which keeps the mean flux per pixel of every star;
``mode='nearest'`` takes one pixel per block, like nnU-Net's segmentation targets, and can miss
point sources entirely. The paper downsamples the Anscombe-transformed target (§2.2.2), which
is what happens when the caller passes a transformed target.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from dancekit.errors import ParameterError

_MODES = ("area", "nearest")


def deep_supervision_weights(n_outputs: int, *, drop_coarsest: bool = False) -> torch.Tensor:
    """Weights w_i proportional to 2^-i (i = 0 the full resolution), summing to 1 (float64)."""
    if not (isinstance(n_outputs, int) and n_outputs >= 1):
        raise ParameterError(f"n_outputs must be a positive integer, got {n_outputs!r}")
    if drop_coarsest and n_outputs < 2:
        raise ParameterError("drop_coarsest needs at least 2 outputs")
    weights = 0.5 ** torch.arange(n_outputs, dtype=torch.float64)
    if drop_coarsest:
        weights[-1] = 0.0
    return weights / weights.sum()


def downsample_target(target: torch.Tensor, size: tuple[int, int], *, mode: str = "area") -> torch.Tensor:
    """Target (B, C, H, W) reduced to (B, C, h, w); H / h and W / w must be integers.

    'area': mean over each (H/h) x (W/w) block; 'nearest': the block's top-left pixel.
    """
    if mode not in _MODES:
        raise ParameterError(f"downsampling mode must be one of {_MODES}, got {mode!r}")
    height, width = target.shape[-2:]
    h, w = size
    if h < 1 or w < 1 or height % h or width % w:
        raise ParameterError(
            f"output size {h} x {w} must divide the target size {height} x {width} exactly"
        )
    fy, fx = height // h, width // w
    if fy == 1 and fx == 1:
        return target
    if mode == "area":
        return F.avg_pool2d(target, kernel_size=(fy, fx), stride=(fy, fx))
    return target[..., ::fy, ::fx]


def deep_supervision_mse(outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, *,
                         weights: torch.Tensor | Sequence[float] | None = None, mode: str = "area",
                         drop_coarsest: bool = False) -> torch.Tensor:
    """Weighted sum over resolutions of mean squared errors against the downsampled target.

    Parameters
    ----------
    outputs : the network output (B, C, H, W), or the deep-supervision list ordered from the
        highest resolution to the lowest, as ``ResidualEncoderUNet`` returns it.
    target : (B, C, H, W) or (B, H, W) at the resolution of ``outputs[0]``, in the same units
        (e.g. Anscombe-transformed counts).
    weights : one per output; default ``deep_supervision_weights(len(outputs), drop_coarsest)``.
    mode : how the target is downsampled ('area' block mean, or 'nearest').

    Returns
    -------
    The scalar loss (differentiable with respect to the outputs).
    """
    outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    if not outputs:
        raise ParameterError("outputs must hold at least one tensor")
    if target.ndim == 3:
        target = target.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if target.ndim != 4 or target.shape != outputs[0].shape:
        raise ParameterError(
            f"target shape {tuple(target.shape)} must match the full-resolution output {tuple(outputs[0].shape)}"
        )
    if weights is None:
        weights = deep_supervision_weights(len(outputs), drop_coarsest=drop_coarsest)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.shape != (len(outputs),):
        raise ParameterError(f"need one weight per output ({len(outputs)}), got {tuple(weights.shape)}")
    loss = outputs[0].new_zeros(())
    for weight, output in zip(weights.tolist(), outputs):
        if weight == 0.0:
            continue
        if output.shape[:2] != target.shape[:2]:
            raise ParameterError(
                f"output shape {tuple(output.shape)} does not match the target's batch and "
                f"channels {tuple(target.shape[:2])}"
            )
        reduced = downsample_target(target, tuple(output.shape[-2:]), mode=mode)
        loss = loss + weight * F.mse_loss(output, reduced)
    return loss
