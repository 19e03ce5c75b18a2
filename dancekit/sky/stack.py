"""Temporal stacking of short-exposure frames: the paper's "average stack" baseline."""

from __future__ import annotations

import numpy as np

from dancekit.errors import InputError


class RunningMean:
    """Per-pixel mean of frames added in chunks, ignoring NaN pixels (masked frames).

    Memory is two (H, W) float64 accumulators whatever the number of frames, so a cube larger
    than RAM is averaged chunk by chunk.
    """

    def __init__(self, shape: tuple[int, int]):
        self.shape = tuple(shape)
        self._sum = np.zeros(self.shape, dtype=np.float64)
        self._count = np.zeros(self.shape, dtype=np.int64)
        self.frames = 0
        self.empty_frames = 0

    def add(self, frames: np.ndarray) -> None:
        """Add a (T, H, W) chunk (or one (H, W) frame)."""
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.shape[1:] != self.shape:
            raise InputError(f"frame shape {frames.shape[1:]} differs from the first frame's {self.shape}")
        valid = np.isfinite(frames)
        self._sum += np.where(valid, frames, 0).sum(axis=0, dtype=np.float64)
        self._count += valid.sum(axis=0)
        self.frames += frames.shape[0]
        self.empty_frames += int((~valid.reshape(frames.shape[0], -1).any(axis=1)).sum())

    def result(self) -> np.ndarray:
        """The (H, W) float32 mean; pixels never valid are NaN. Raises if every pixel was NaN."""
        if not self._count.any():
            raise InputError(f"all {self.frames} frames are NaN: nothing to average")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._sum / self._count
        return np.where(self._count > 0, mean, np.nan).astype(np.float32)
