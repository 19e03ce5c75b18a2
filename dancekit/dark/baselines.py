"""Classical dark estimates, the references Deep-Dark-Net must beat.

* ``median``: per-pixel median of the training darks' active areas (Qu et al. 2024 sec. 3.2,
  "traditional method"). It ignores the temperature of the frame to correct.
* ``scaled``: bias from the frame's own overscan, dark level from its optical-black strips
  (masked photosites: same dark current as the active area, no light), and a per-pixel template
  = median over the training frames of (active - bias) / OB level. Prediction:
  ``bias(row) + level * template``. The scalar-scaled master dark of classical reductions
  (ccdproc ``subtract_dark(scale=True)`` with the exposure ratio replaced by the measured level;
  Widenhorn et al. and DRDC ADA479357 match darks by level rather than by header temperature).

All arrays in ADU; per-channel blocks in readout order (see ``layout``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.dark.layout import RawLayout, check_frame_shape, region_stack, split_channels
from dancekit.errors import InputError, ParameterError


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Root-mean-square difference [same unit as the inputs, ADU here] (Qu et al. 2024 sec. 2.5)."""
    prediction, truth = np.asarray(prediction, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if prediction.shape != truth.shape:
        raise InputError(f"prediction shape {prediction.shape} differs from truth shape {truth.shape}")
    return float(np.sqrt(np.mean((prediction - truth) ** 2)))


def overscan_bias(frame: np.ndarray, layout: RawLayout, degree: int | None = 3) -> np.ndarray:
    """Bias of every channel row [ADU], (n_channels, channel rows), readout order.

    Per-row median of the overscan columns over *all* rows of the channel (so the optical-black
    rows get a bias too), then, with ``degree``, a least-squares Legendre polynomial of that
    degree along the rows (as ccdproc ``subtract_overscan(model=Polynomial1D)``), which averages
    the read noise of the 46 samples per row down. ``degree=None`` keeps the per-row medians.
    """
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if not layout.has_region("overscan"):
        raise ParameterError(f"layout '{layout.name}' has no 'overscan' region; the bias cannot be measured")
    if degree is not None and not (isinstance(degree, (int, np.integer)) and 0 <= degree <= 20):
        raise ParameterError(f"degree must be None or an integer in [0, 20], got {degree!r}")
    _, col_seg = layout.region_segments("overscan")
    cs = layout.column_slice(col_seg)
    rows = np.median(split_channels(frame, layout)[:, :, cs], axis=2)  # (n, h)
    if degree is None:
        return rows.astype(np.float32)
    x = np.linspace(-1.0, 1.0, rows.shape[1])
    fits = [np.polynomial.legendre.Legendre.fit(x, r, degree)(x) for r in rows]
    return np.asarray(fits, dtype=np.float32)


def optical_black_level(frame: np.ndarray, layout: RawLayout, bias: np.ndarray | None = None) -> np.ndarray:
    """Dark signal of each channel's masked photosites [ADU above bias], (n_channels,).

    Median over both optical-black strips (columns and rows) of (pixel - bias of its row); the
    median resists hot pixels. ``bias`` defaults to ``overscan_bias(frame, layout)``.
    """
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if not (layout.has_region("ob_columns") or layout.has_region("ob_rows")):
        raise ParameterError(f"layout '{layout.name}' has no optical-black region ('ob_columns' / 'ob_rows')")
    if bias is None:
        bias = overscan_bias(frame, layout)
    values = []
    for name in ("ob_columns", "ob_rows"):
        if layout.has_region(name):
            rs, _ = layout.region_slices(name)
            values.append((region_stack(frame, layout, name) - bias[:, rs, None]).reshape(layout.n_channels, -1))
    return np.median(np.concatenate(values, axis=1), axis=1).astype(np.float32)


def optical_black_error(frame: np.ndarray, layout: RawLayout, bias: np.ndarray) -> np.ndarray:
    """Standard error [ADU] of ``optical_black_level`` per channel, (n_channels,): 1.2533 x the
    robust scatter (1.4826 x MAD) of the masked pixels above their bias / sqrt(number of pixels)."""
    values = []
    for name in ("ob_columns", "ob_rows"):
        if layout.has_region(name):
            rs, _ = layout.region_slices(name)
            values.append((region_stack(frame, layout, name) - bias[:, rs, None]).reshape(layout.n_channels, -1))
    above = np.concatenate(values, axis=1)
    mad = np.median(np.abs(above - np.median(above, axis=1, keepdims=True)), axis=1)
    return (1.2533 * 1.4826 * mad / np.sqrt(above.shape[1])).astype(np.float32)


def median_dark(actives: np.ndarray) -> np.ndarray:
    """Per-pixel median of a stack of active areas (N, ...) [ADU] -> (...): the 'median' baseline."""
    actives = np.asarray(actives)
    if actives.ndim < 2 or actives.shape[0] < 1:
        raise InputError(f"expected a stack (N, ...) of N >= 1 dark frames, got shape {actives.shape}")
    return np.median(actives, axis=0).astype(np.float32)


@dataclass(frozen=True)
class ScaledDark:
    """The 'scaled' baseline: template (n_channels, h, w) of dark per unit OB level [ADU/ADU]."""

    template: np.ndarray
    bias_degree: int | None = 3


def fit_scaled_dark(frames: np.ndarray, layout: RawLayout, bias_degree: int | None = 3) -> ScaledDark:
    """Fit the 'scaled' baseline from raw training darks (N, rows, columns) [ADU].

    template = median_i [(active_i - bias_i) / level_i], level_i from ``optical_black_level``.
    Raises InputError when a frame's optical-black level is not positive (no measurable dark).
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise InputError(f"expected raw training frames (N, rows, columns), got shape {frames.shape}")
    rs, _ = layout.region_slices("active")
    normalised = []
    for i, frame in enumerate(frames):
        bias = overscan_bias(frame, layout, bias_degree)
        level = optical_black_level(frame, layout, bias)
        if np.any(level <= 0):
            raise InputError(f"training frame {i} has optical-black dark level {level.tolist()} ADU <= 0; the scaled baseline needs a measurable dark")
        active = region_stack(frame, layout, "active").astype(np.float64)
        normalised.append((active - bias[:, rs, None]) / level[:, None, None])
    return ScaledDark(template=np.median(np.stack(normalised), axis=0).astype(np.float32), bias_degree=bias_degree)


def predict_scaled_dark(model: ScaledDark, frame: np.ndarray, layout: RawLayout) -> np.ndarray:
    """Predicted active areas (n_channels, h, w) [ADU, bias included] of one raw frame."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if model.template.shape != (layout.n_channels, *layout.region_shape("active")):
        raise ParameterError(f"scaled-dark template shape {model.template.shape} does not fit layout '{layout.name}'")
    rs, _ = layout.region_slices("active")
    bias = overscan_bias(frame, layout, model.bias_degree)
    level = optical_black_level(frame, layout, bias)
    return (bias[:, rs, None] + level[:, None, None] * model.template).astype(np.float32)
