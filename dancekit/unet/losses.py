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


#: block sides [pixels] over which the flux term compares sums: a star's core, its aperture, its halo
FLUX_SCALES = (4, 8, 16)


def flux_consistency(output: torch.Tensor, truth: torch.Tensor, background: torch.Tensor, *,
                     scales: Sequence[int] = FLUX_SCALES, delta: float = 1.0) -> torch.Tensor:
    """Flux-preserving term: Huber loss of block-sum flux errors in units of their photon noise.

    The MSE on Anscombe values weighs a pixel's error by 1/sqrt(its counts), so it barely sees a
    faint star that loses a third of its flux, or flux moved from one star to its neighbour — the
    errors that ruin photometry in crowded fields. Here the output is brought back to electrons with
    the algebraic inverse (y²/4 − 3/8, exact for the noise-free target), summed over ``s × s``
    blocks at each scale and compared with the truth's sums; each difference is divided by the
    photon noise of one frame in that block, sqrt(S_true + s² max(b, 1)) with ``b`` the window's sky
    level per pixel [e-], and the Huber loss (quadratic within ``delta``, linear beyond: robust to
    the large early errors of bright stars) is averaged over blocks and scales.

    Parameters
    ----------
    output : (B, 1, H, W) full-resolution network output in Anscombe units (H, W multiples of the scales).
    truth : (B, H, W) or (B, 1, H, W) noise-free target in electrons per frame.
    background : (B,) sky level per pixel per frame removed from each window [e-].
    """
    from dancekit.unet.transforms import algebraic_inverse_anscombe

    if truth.ndim == 3:
        truth = truth.unsqueeze(1)
    if output.ndim != 4 or truth.shape != output.shape:
        raise ParameterError(f"output {tuple(output.shape)} and truth {tuple(truth.shape)} must both be (B, 1, H, W)")
    electrons = algebraic_inverse_anscombe(output)
    truth = torch.clamp(truth, min=0.0)
    floor = torch.clamp(background.to(output.dtype).reshape(-1, 1, 1, 1), min=1.0)
    total = output.new_zeros(())
    for s in scales:
        if output.shape[-1] % s or output.shape[-2] % s:
            raise ParameterError(f"flux block side {s} must divide the tile {tuple(output.shape[-2:])}")
        area = float(s * s)
        sum_out = F.avg_pool2d(electrons, s) * area
        sum_true = F.avg_pool2d(truth, s) * area
        z = (sum_out - sum_true) / torch.sqrt(sum_true + area * floor)
        total = total + F.huber_loss(z, torch.zeros_like(z), delta=delta)
    return total / len(scales)
