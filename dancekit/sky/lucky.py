"""Lucky imaging by shift-and-add: the classical alternative to a learned turbulence remover.

Select the frames in which a bright reference star is sharpest (the highest peak above the
background, Fried 1978's "lucky" short exposures; Law, Mackay & Baldwin 2006 §3 select on the
peak of the brightest speckle), shift each so that the peak lands on one pixel (integer
shift-and-add, Bates & Cady 1980), and average them. Flux per frame is kept: pixels shifted in
from outside the frame are NaN and left out of the mean. A single reference star means one shift
for the whole field: anisoplanatism limits the gain away from it, which is the method's known limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dancekit.errors import InputError, ParameterError


@dataclass(frozen=True)
class LuckyStack:
    image: np.ndarray            # (H, W) float32 mean of the selected, shifted frames
    selected: np.ndarray         # indices of the frames used, sharpest first
    shifts: np.ndarray           # (n, 2) integer (dy, dx) applied to each selected frame
    reference: tuple[int, int]   # (row, column) of the reference star's peak in the average


def lucky_stack(frames: np.ndarray, fraction: float = 0.1, search_radius: int = 10) -> LuckyStack:
    """Shift-and-add of the sharpest ``fraction`` of ``frames`` (T, H, W), registered on the
    brightest star's peak, searched within ``search_radius`` pixels of its place in the average."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise InputError(f"lucky imaging needs a (T, H, W) video, got shape {frames.shape}")
    if not 0 < fraction <= 1:
        raise ParameterError(f"fraction of frames kept must be in (0, 1], got {fraction}")
    n_keep = max(1, math.ceil(fraction * frames.shape[0]))
    background = np.nanmedian(frames.reshape(frames.shape[0], -1), axis=1)            # (T,)
    mean = np.nanmean(frames, axis=0) - float(np.median(background))
    ry, rx = _brightest_peak(mean, search_radius)
    y0, y1 = max(0, ry - search_radius), min(mean.shape[0], ry + search_radius + 1)
    x0, x1 = max(0, rx - search_radius), min(mean.shape[1], rx + search_radius + 1)
    boxes = np.nan_to_num(frames[:, y0:y1, x0:x1] - background[:, None, None], nan=-np.inf)
    flat = boxes.reshape(frames.shape[0], -1)
    peaks = flat.max(axis=1)
    order = np.argsort(-peaks, kind="stable")[:n_keep]
    py, px = np.unravel_index(flat[order].argmax(axis=1), boxes.shape[1:])
    shifts = np.stack([ry - (y0 + py), rx - (x0 + px)], axis=1)
    total = np.zeros(frames.shape[1:], np.float64)
    count = np.zeros(frames.shape[1:], np.int64)
    for index, (dy, dx) in zip(order, shifts):
        shifted = _shift(frames[index], int(dy), int(dx))
        valid = np.isfinite(shifted)
        total += np.where(valid, shifted, 0.0)
        count += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(count > 0, total / count, np.nan).astype(np.float32)
    return LuckyStack(image, order, shifts, (ry, rx))


def _brightest_peak(image: np.ndarray, margin: int) -> tuple[int, int]:
    """(row, column) of the highest 3x3-smoothed pixel at least ``margin`` from the edges."""
    smooth = ndimage.uniform_filter(np.nan_to_num(image, nan=0.0), 3)
    inner = smooth[margin:-margin or None, margin:-margin or None]
    if inner.size == 0:
        raise InputError(f"frames of {image.shape} are too small for a search radius of {margin} pixels")
    row, col = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(row) + margin, int(col) + margin


def _shift(frame: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``frame`` moved by whole pixels; pixels coming from outside are NaN."""
    out = np.full_like(frame, np.nan)
    h, w = frame.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = frame[ys, xs]
    return out
