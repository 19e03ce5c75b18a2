"""A catalogue against the stars that were simulated: matching in a crowded field, residuals.

In a crowded field most true stars are too faint to detect, and one lies near almost every
detection: matching nearest-first would give a bright star's detection to a faint neighbour.
So true stars take detections brightest first, each the nearest one still free within the
radius, the usual rule of artificial-star tests in crowded-field photometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from dancekit.errors import ParameterError

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class TruthComparison:
    """Catalogue stars matched to true stars, and their magnitude residuals.

    Attributes
    ----------
    true_index : (N,) index of each catalogue star's true star, −1 when unmatched.
    mag_residual : (N,) catalogue − true magnitude, NaN when unmatched or without magnitude.
    n_true : true stars on the image. n_matched : catalogue stars matched.
    summary : precision, recall, and the median, std and robust std (1.4826 MAD) of the
        residuals, over all matched stars and over the unflagged ones (``clean_*``).
    """

    true_index: np.ndarray
    mag_residual: np.ndarray
    n_true: int
    n_matched: int
    summary: dict = field(default_factory=dict)


def match_brightest_first(x, y, x_true, y_true, mag_true, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of detections i and true stars j within ``radius`` pixels, one-to-one:
    true stars in order of brightness each take the nearest free detection."""
    if not radius > 0:
        raise ParameterError(f"match radius must be > 0 pixels, got {radius}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0 or np.size(x_true) == 0:
        return np.empty(0, int), np.empty(0, int)
    tree = cKDTree(np.column_stack([x, y]))
    taken = np.zeros(x.size, dtype=bool)
    pairs_i, pairs_j = [], []
    for j in np.argsort(np.asarray(mag_true, float), kind="stable"):
        candidates = [k for k in tree.query_ball_point([x_true[j], y_true[j]], radius) if not taken[k]]
        if not candidates:
            continue
        k = min(candidates, key=lambda c: (x[c] - x_true[j]) ** 2 + (y[c] - y_true[j]) ** 2)
        taken[k] = True
        pairs_i.append(k)
        pairs_j.append(int(j))
    return np.asarray(pairs_i, int), np.asarray(pairs_j, int)


def compare_to_truth(x, y, mag, flags, x_true, y_true, mag_true, shape: tuple[int, int],
                     radius: float = 2.0) -> TruthComparison:
    """Match a catalogue (pixels, magnitudes, flags) to true stars and summarise the residuals.

    True stars outside the image of ``shape`` (H, W) are left out. Residuals are catalogue −
    truth in magnitudes: their median holds any zero-point difference.
    """
    x_true, y_true, mag_true = (np.asarray(a, float) for a in (x_true, y_true, mag_true))
    height, width = shape
    on_image = (x_true >= -0.5) & (x_true < width - 0.5) & (y_true >= -0.5) & (y_true < height - 0.5)
    kept = np.flatnonzero(on_image & np.isfinite(mag_true))
    i, j = match_brightest_first(x, y, x_true[kept], y_true[kept], mag_true[kept], radius)
    n = np.size(x)
    true_index = np.full(n, -1, dtype=int)
    true_index[i] = kept[j]
    residual = np.full(n, np.nan)
    residual[i] = np.asarray(mag, float)[i] - mag_true[kept[j]]
    clean = np.asarray(flags) == 0
    summary = {"n_true": int(kept.size), "n_matched": int(i.size),
               "precision": i.size / n if n else float("nan"),
               "recall": i.size / kept.size if kept.size else float("nan"),
               **_statistics(residual, "mag_residual"), **_statistics(np.where(clean, residual, np.nan), "clean_mag_residual")}
    return TruthComparison(true_index, residual, int(kept.size), int(i.size), summary)


def _statistics(values, name: str) -> dict:
    values = values[np.isfinite(values)]
    if values.size < 2:
        return {f"{name}_n": int(values.size), f"{name}_median": float("nan"), f"{name}_std": float("nan"),
                f"{name}_robust_std": float("nan")}
    median = float(np.median(values))
    return {f"{name}_n": int(values.size), f"{name}_median": median, f"{name}_std": float(np.std(values)),
            f"{name}_robust_std": float(MAD_TO_SIGMA * np.median(np.abs(values - median)))}
