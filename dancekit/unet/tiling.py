"""Overlapping tiles over an image of any size, and blending weights that sum to exactly 1.

Bialek et al. 2024 §4.2.1 split a 1024 x 1024 field into 256 x 256 tiles with 50 % overlap and
blend the inferred tiles with masks that are 1 in the centre and ramp linearly from 0 to 1 over
the overlaps. DanceCam's code (ProGamerGov's blended-tiling) starts a tile every
``tile * (1 - overlap)`` pixels and snaps the last tile to the image edge; so does ``tile_starts``.

The weights here are built as a partition of unity, so no normalisation is needed: along one
axis, tiles i and i+1 hand over in the part of their overlap that no third tile covers (all of
it for regular 50 % tiles; the part beyond tile i-1 for the snapped last tile), with a linear
ramp ``(p - a + 1/2) / (b - a)`` over pixels ``a <= p < b`` rising for tile i+1 and ``1 -`` that
falling for tile i. Outside the hand-overs a pixel belongs to one tile with weight 1. The 2D
weight of a tile is the product of its row and column weights, so the sum over tiles is the
product of two sums of 1. Each weight is nonzero only inside its tile.

Images smaller than a tile along an axis are padded (reflected) to one tile and cropped after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import ParameterError

#: largest overlap fraction: beyond 1/2 interior pixels lie in three tiles and the hand-over
#: regions of the scheme above may vanish
MAX_OVERLAP = 0.5


def tile_starts(length: int, tile: int, overlap: float) -> np.ndarray:
    """First pixel of each tile along an axis of ``length`` pixels (a length below ``tile``
    gives one tile at 0: the axis is padded). Tiles start every ``floor(tile * (1 - overlap))``
    pixels; the last one is snapped to ``length - tile`` so that it ends at the edge."""
    _check(length, tile, overlap)
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return np.asarray(starts, dtype=np.int64)


def axis_weights(length: int, tile: int, starts: np.ndarray) -> np.ndarray:
    """(n_tiles, tile) blending weights along one axis; at every pixel of ``max(length, tile)``
    the weights of the tiles covering it sum to 1 (see the module docstring)."""
    starts = np.asarray(starts, dtype=np.int64)
    n = len(starts)
    ends = starts + tile
    weights = np.ones((n, tile), dtype=np.float64)
    pixels = np.arange(tile)
    for i in range(n - 1):
        # hand-over from tile i to i+1: their overlap minus what tiles i-1 and i+2 cover
        a = max(starts[i + 1], ends[i - 1] if i > 0 else starts[i + 1])
        b = min(ends[i], starts[i + 2] if i + 2 < n else ends[i])
        if b < a:
            raise ParameterError(f"tiles starting at {starts.tolist()} leave no hand-over between tiles {i} and {i + 1}")
        rising = np.clip((np.arange(a, b) - a + 0.5) / (b - a), 0.0, 1.0)
        ramp_i = np.ones(tile)                       # tile i: 1 before a, falling in [a, b), 0 after
        local = pixels + starts[i]
        ramp_i[local >= b] = 0.0
        inside = (local >= a) & (local < b)
        ramp_i[inside] = 1.0 - rising
        ramp_next = np.zeros(tile)                   # tile i+1: 0 before a, rising in [a, b), 1 after
        local = pixels + starts[i + 1]
        ramp_next[local >= b] = 1.0
        inside = (local >= a) & (local < b)
        ramp_next[inside] = rising
        weights[i] *= ramp_i
        weights[i + 1] *= ramp_next
    return weights


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an (H, W) image go, and how they are blended.

    ``pad`` is (top, bottom, left, right) pixels of reflection added to an image smaller than a
    tile; tile positions refer to the padded image, of shape ``padded_shape``.
    """

    shape: tuple[int, int]
    tile: int
    overlap: float
    y_starts: np.ndarray
    x_starts: np.ndarray
    y_weights: np.ndarray
    x_weights: np.ndarray
    pad: tuple[int, int, int, int]

    @classmethod
    def for_image(cls, shape: tuple[int, int], tile: int = 256, overlap: float = 0.5) -> "TileGrid":
        """The grid for an image of ``shape`` = (H, W) pixels, ``tile`` pixels square."""
        if len(shape) != 2:
            raise ParameterError(f"image shape must be (H, W), got {tuple(shape)}")
        height, width = (int(s) for s in shape)
        for name, size in (("height", height), ("width", width)):
            if size < 1:
                raise ParameterError(f"image {name} must be >= 1 pixel, got {size}")
        _check(height, tile, overlap)
        pad_y, pad_x = max(0, tile - height), max(0, tile - width)
        pad = (pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2)
        y_starts = tile_starts(height + pad_y, tile, overlap)
        x_starts = tile_starts(width + pad_x, tile, overlap)
        return cls((height, width), int(tile), float(overlap), y_starts, x_starts,
                   axis_weights(height + pad_y, tile, y_starts), axis_weights(width + pad_x, tile, x_starts), pad)

    @property
    def padded_shape(self) -> tuple[int, int]:
        return (self.shape[0] + self.pad[0] + self.pad[1], self.shape[1] + self.pad[2] + self.pad[3])

    @property
    def n_tiles(self) -> int:
        return len(self.y_starts) * len(self.x_starts)

    def position(self, k: int) -> tuple[int, int]:
        """(y0, x0) of tile ``k`` (row-major) in the padded image."""
        row, col = divmod(int(k), len(self.x_starts))
        return int(self.y_starts[row]), int(self.x_starts[col])

    def weight(self, k: int) -> np.ndarray:
        """(tile, tile) blending weight of tile ``k``: the product of its row and column ramps."""
        row, col = divmod(int(k), len(self.x_starts))
        return self.y_weights[row][:, None] * self.x_weights[col][None, :]

    def weight_sum(self) -> np.ndarray:
        """Sum of all tiles' weights over the padded image (1 everywhere, to rounding)."""
        total = np.zeros(self.padded_shape)
        for k in range(self.n_tiles):
            y0, x0 = self.position(k)
            total[y0:y0 + self.tile, x0:x0 + self.tile] += self.weight(k)
        return total

    def pad_frames(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W) -> (..., H_pad, W_pad) by reflection (a view-free copy only when padding)."""
        if not any(self.pad):
            return frames
        top, bottom, left, right = self.pad
        widths = [(0, 0)] * (frames.ndim - 2) + [(top, bottom), (left, right)]
        return np.pad(frames, widths, mode="symmetric")

    def crop(self, image: np.ndarray) -> np.ndarray:
        """(..., H_pad, W_pad) -> (..., H, W): undo ``pad_frames``."""
        top, _, left, _ = self.pad
        return image[..., top:top + self.shape[0], left:left + self.shape[1]]

    def accumulate(self, target: np.ndarray, k: int, values: np.ndarray) -> None:
        """``target[tile k] += weight(k) * values``: blend one (tile, tile) result into the padded
        (H_pad, W_pad) accumulator ``target`` (owned by the caller, modified in place)."""
        y0, x0 = self.position(k)
        target[y0:y0 + self.tile, x0:x0 + self.tile] += self.weight(k) * values


def _check(length: int, tile: int, overlap: float) -> None:
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ParameterError(f"tile must be a positive integer number of pixels, got {tile!r}")
    if not 0.0 <= float(overlap) <= MAX_OVERLAP:
        raise ParameterError(f"tile overlap must be in [0, {MAX_OVERLAP}] (a fraction of the tile), got {overlap!r}")
    if length < 1:
        raise ParameterError(f"axis length must be >= 1 pixel, got {length}")
