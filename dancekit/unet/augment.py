"""Training-sample augmentation: temporal window, spatial crop and the 8 rotations/flips.

A training example is a video (T, H, W) and its turbulence-free truth (H, W). A sample is a
random run of ``context`` consecutive frames, a random ``tile`` x ``tile`` crop at the same
place in frames and truth, and one of the 8 symmetries of the square (dihedral group D4:
rot90 by k = 0..3, then an optional left-right flip) applied identically to both, which keeps
the physics (a turbulent video of a rotated sky is a rotated turbulent video). Randomness comes
only from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from dancekit.errors import ParameterError


class Augmentation(NamedTuple):
    """Where a sample was cut from and how it was turned (for provenance and tests)."""

    t0: int      # first frame of the window
    y0: int      # top row of the crop [pixels]
    x0: int      # left column of the crop [pixels]
    k: int       # quarter turns, torch.rot90(x, k, dims=(-2, -1)): pixel (r, c) -> (n-1-c, r) for k=1
    flip: bool   # left-right flip after the rotation


def apply_symmetry(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Rotate the last two axes by k quarter turns (``torch.rot90``), then flip left-right."""
    out = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if flip else out


def draw_augmentation(n_frames: int, height: int, width: int, *, context: int, tile: int,
                      generator: torch.Generator) -> Augmentation:
    """Draw window start, crop corner and symmetry uniformly: t0 in [0, T - context],
    y0 in [0, H - tile], x0 in [0, W - tile], k in {0, 1, 2, 3}, flip in {False, True}."""
    if not (isinstance(context, int) and 1 <= context <= n_frames):
        raise ParameterError(f"context must be an integer in [1, {n_frames}] (the video's frames), got {context!r}")
    if not (isinstance(tile, int) and 1 <= tile <= min(height, width)):
        raise ParameterError(f"tile must be an integer in [1, {min(height, width)}] pixels, got {tile!r}")
    if not isinstance(generator, torch.Generator):
        raise ParameterError(f"generator must be a torch.Generator, got {type(generator).__name__}")

    def uniform_int(high: int) -> int:  # in [0, high)
        return int(torch.randint(high, (1,), generator=generator))

    return Augmentation(
        t0=uniform_int(n_frames - context + 1),
        y0=uniform_int(height - tile + 1),
        x0=uniform_int(width - tile + 1),
        k=uniform_int(4),
        flip=bool(uniform_int(2)),
    )


def augment_pair(video: torch.Tensor, truth: torch.Tensor, *, context: int, tile: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, Augmentation]:
    """One random training sample from a video and its truth.

    Parameters
    ----------
    video : (T, H, W) frames [counts].
    truth : (H, W) turbulence-free image on the same pixel grid [counts].
    context : frames per sample (the network's input channels).
    tile : side of the square crop [pixels].
    generator : the only source of randomness.

    Returns
    -------
    frames (context, tile, tile), target (tile, tile) (new tensors, the inputs are untouched),
    and the ``Augmentation`` that was applied.
    """
    video, truth = _as_tensor(video), _as_tensor(truth)
    if video.ndim != 3:
        raise ParameterError(f"video must be (frames, H, W), got shape {tuple(video.shape)}")
    if truth.shape != video.shape[1:]:
        raise ParameterError(
            f"truth must be (H, W) = {tuple(video.shape[1:])} like the video frames, got {tuple(truth.shape)}"
        )
    aug = draw_augmentation(*video.shape, context=context, tile=tile, generator=generator)
    frames = video[aug.t0:aug.t0 + context, aug.y0:aug.y0 + tile, aug.x0:aug.x0 + tile]
    target = truth[aug.y0:aug.y0 + tile, aug.x0:aug.x0 + tile]
    # rot90 and flip always return new memory, so the caller's tensors are never aliased
    frames = apply_symmetry(frames, aug.k, aug.flip).contiguous()
    target = apply_symmetry(target, aug.k, aug.flip).contiguous()
    return frames, target, aug


def _as_tensor(x) -> torch.Tensor:
    """Tensor view of x; big-endian numpy data (as FITS stores them) are converted first."""
    if isinstance(x, np.ndarray) and x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("="))
    return torch.as_tensor(x)
