"""Compact storage of the master template inside a dark model file (about 1 byte per pixel).

A model trained with the template (``conditioning``: input plane and/or target "above_scaled")
needs it at prediction, so the model file carries it: one file holds everything (DESIGN.md,
"Models"). As float32 the LAMOST template (4 x 1042 x 1042) would be 17 MB; here it is

* ``codes``: uint8 (n_channels, h, w), uniform quantisation of the bulk of the values between
  the [tail, 1 - tail] quantiles: value = low + code * step, step = (high - low) / 255;
* ``outlier_index`` / ``outlier_value``: the flat index (int64) and exact float32 value of every
  pixel the bulk grid cannot hold (hot pixels, hot columns, the glow corner), so no pixel is off
  by more than step / 2.

For the simulated LAMOST camera step / 2 is ~1e-3 of the template (~0.3 ADU at -5 degC), far
below the read and shot noise. The network is trained and run with the *decoded* template, so
training and prediction see the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from dancekit.errors import InputError, ParameterError

LEVELS = 255  # steps of the uint8 grid (codes 0..255)


def encode_template(template: np.ndarray, tail: float = 1e-3) -> dict:
    """Plain dict of tensors and numbers (safe for ``torch.load(weights_only=True)``) holding
    ``template`` (n_channels, h, w) [ADU/ADU] to within step / 2 (module docstring)."""
    t = np.asarray(template, dtype=np.float32)
    if t.ndim != 3 or t.size == 0 or not np.isfinite(t).all():
        raise ParameterError(f"the template must be a finite (n_channels, h, w) array, got shape {t.shape}"
                             + ("" if t.size == 0 or np.isfinite(t).all() else " with NaN/inf values"))
    if not 0 <= tail < 0.5:
        raise ParameterError(f"tail must be in [0, 0.5), got {tail}")
    low, high = (float(v) for v in np.quantile(t, [tail, 1 - tail]))
    step = max(high - low, 1e-6) / LEVELS
    codes = np.clip(np.rint((t - low) / step), 0, LEVELS).astype(np.uint8)
    decoded = low + codes.astype(np.float32) * np.float32(step)
    outliers = np.flatnonzero(np.abs(decoded - t) > 0.5 * step * (1 + 1e-4))
    return {"shape": list(t.shape), "low": low, "step": float(step), "codes": torch.from_numpy(codes),
            "outlier_index": torch.from_numpy(outliers.astype(np.int64)),
            "outlier_value": torch.from_numpy(t.reshape(-1)[outliers].copy())}


def decode_template(stored: dict) -> np.ndarray:
    """(n_channels, h, w) float32 template from ``encode_template``'s dict."""
    try:
        shape = tuple(int(v) for v in stored["shape"])
        codes = np.asarray(stored["codes"], dtype=np.uint8)
        index = np.asarray(stored["outlier_index"], dtype=np.int64)
        values = np.asarray(stored["outlier_value"], dtype=np.float32)
        low, step = float(stored["low"]), float(stored["step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the stored template is incomplete ({exc})") from None
    if codes.shape != shape or index.shape != values.shape or (index.size and not 0 <= index.min() <= index.max() < codes.size):
        raise InputError(f"the stored template is inconsistent (codes {codes.shape}, declared {shape}, "
                         f"{index.size} outliers)")
    t = (low + codes.astype(np.float32) * np.float32(step)).reshape(-1)
    t[index] = values
    return t.reshape(shape)
