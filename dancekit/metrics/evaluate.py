"""An image against its turbulence-free truth: the metrics of Bialek et al. 2024 §4 in one call.

Used by ``dancekit evaluate`` and by train-unet's model selection, so both judge alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dancekit.errors import InputError
from dancekit.metrics.detection import background_subtracted, detect_stars, match_one_to_one, precision_recall
from dancekit.metrics.star_quality import aperture_magnitude, centroids, d50, strehl_ratio


@dataclass(frozen=True)
class Evaluation:
    """Summary numbers and the per-star table of matched stars (truth order).

    Magnitudes are instrumental (−2.5 log10 flux in a 10-px aperture, in the image's units) plus
    ``zero_point``; D50 and centroid residuals in pixels.
    """

    n_true: int
    n_detected: int
    n_matched: int
    precision: float
    recall: float
    mean_d50: float
    mean_d50_truth: float
    mean_strehl: float
    mag_residual_std: float
    mag_residual_mean: float
    centroid_residual_std: float
    stars: dict[str, np.ndarray] = field(repr=False)
    by_magnitude: dict[str, np.ndarray] = field(repr=False)
    # every source found on the image (x, y, matched) and every true star (x, y): for the image panels
    detections: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    true_positions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, float]:
        tables = ("stars", "by_magnitude", "detections", "true_positions")
        return {k: v for k, v in self.__dict__.items() if k not in tables}


def noise_level(image: np.ndarray) -> float:
    """The background rms of ``image`` (sep), with a floor for noise-free images [image units]."""
    data, rms = background_subtracted(image)
    return rms if rms > 0 else max(1e-12, 1e-3 * float(np.nanmax(data)))


def evaluate_image(image: np.ndarray, truth: np.ndarray, threshold: float = 5.0, match_radius: float = 2.0,
                   aperture_diameter: float = 10.0, zero_point: float = 0.0,
                   magnitude_bins: np.ndarray | None = None, truth_level: float | None = None) -> Evaluation:
    """Detect stars on ``image`` at ``threshold`` × its noise rms and on ``truth`` at ``truth_level``
    (truth units per pixel; default the image's own level), match them within ``match_radius`` px,
    and measure precision, recall, D50, Strehl, magnitude and centroid residuals of the matched
    stars (binned by truth magnitude). Images compared with each other need one ``truth_level``,
    so that their recall counts the same true stars."""
    if image.shape != truth.shape:
        raise InputError(f"image shape {image.shape} differs from the truth's {truth.shape}")
    data, rms = background_subtracted(image)
    reference, _ = background_subtracted(truth)
    level = threshold * (rms if rms > 0 else max(1e-12, 1e-3 * float(np.nanmax(reference))))
    true_stars = detect_stars(reference, level if truth_level is None else truth_level)
    found = detect_stars(data, level)
    i, j = match_one_to_one(found.x, found.y, true_stars.x, true_stars.y, match_radius)
    precision, recall = precision_recall(len(i), len(found), len(true_stars))
    xt, yt = centroids(reference, true_stars.x[j], true_stars.y[j])
    xi, yi = centroids(data, found.x[i], found.y[i])
    mag_true = aperture_magnitude(reference, xt, yt, aperture_diameter) + zero_point
    mag_image = aperture_magnitude(data, xi, yi, aperture_diameter) + zero_point
    x_all, y_all = centroids(reference, true_stars.x, true_stars.y)
    mag_all_true = aperture_magnitude(reference, x_all, y_all, aperture_diameter) + zero_point
    stars = {
        "x_true": xt, "y_true": yt, "x": xi, "y": yi, "mag_true": mag_true,
        "mag_residual": mag_image - mag_true,
        "centroid_residual": np.hypot(xi - xt, yi - yt),
        "x_residual": xi - xt,
        "d50": d50(data, xi, yi, segmentation=found.segmentation, source_ids=i + 1),
        "d50_true": d50(reference, xt, yt, segmentation=true_stars.segmentation, source_ids=j + 1),
        "strehl": strehl_ratio(data, reference, xi, yi, xt, yt),
        "truth_index": j,
    }
    stars["d50_residual"] = stars["d50"] - stars["d50_true"]
    return Evaluation(
        n_true=len(true_stars), n_detected=len(found), n_matched=len(i), precision=precision, recall=recall,
        mean_d50=_nanmean(stars["d50"]), mean_d50_truth=_nanmean(stars["d50_true"]),
        mean_strehl=_nanmean(stars["strehl"]),
        mag_residual_std=_nanstd(stars["mag_residual"]), mag_residual_mean=_nanmean(stars["mag_residual"]),
        centroid_residual_std=_nanstd(stars["centroid_residual"]),
        stars=stars, by_magnitude=_binned(stars, magnitude_bins, mag_all_true),
        detections={"x": found.x, "y": found.y, "matched": np.isin(np.arange(len(found)), i)},
        true_positions={"x": true_stars.x, "y": true_stars.y},
    )


def mean_abs_magnitude_error(image: np.ndarray, truth: np.ndarray, threshold: float = 5.0) -> float:
    """Mean |Δmag| of matched stars: the model-selection criterion of Bialek et al. 2024 §3.1."""
    return _nanmean(np.abs(evaluate_image(image, truth, threshold).stars["mag_residual"]))


def _binned(stars: dict[str, np.ndarray], bins: np.ndarray | None,
            mag_all_true: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per truth-magnitude bin: matched stars ``n`` and the mean / std of each residual (the paper's
    Fig. 5: Δmag, ΔD50 = D50 − D50 of the truth, Δx; and Fig. 8: D50, Strehl); with the
    magnitudes of all truth stars, also ``n_true`` and ``recall`` (completeness, the paper's Fig. 7)."""
    mag = stars["mag_true"]
    if bins is None:
        source = mag if mag_all_true is None else mag_all_true
        finite = source[np.isfinite(source)]
        bins = np.arange(np.floor(finite.min()), np.ceil(finite.max()) + 1) if len(finite) else np.arange(2.0)
    bins = np.asarray(bins, float)
    index = np.digitize(mag, bins) - 1
    table = {"mag_low": bins[:-1], "mag_high": bins[1:]}
    table["n"] = np.array([np.sum(index == b) for b in range(len(bins) - 1)])
    if mag_all_true is not None:
        index_true = np.digitize(mag_all_true, bins) - 1
        table["n_true"] = np.array([np.sum(index_true == b) for b in range(len(bins) - 1)])
        with np.errstate(invalid="ignore", divide="ignore"):
            table["recall"] = np.where(table["n_true"] > 0, table["n"] / np.maximum(table["n_true"], 1), np.nan)
    for key in ("mag_residual", "centroid_residual", "x_residual", "d50", "d50_residual", "strehl"):
        values = [stars[key][index == b] for b in range(len(bins) - 1)]
        table[f"{key}_mean"] = np.array([_nanmean(v) for v in values])
        table[f"{key}_std"] = np.array([_nanstd(v) for v in values])
    return table


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _nanstd(values: np.ndarray) -> float:
    values = np.asarray(values, float)
    return float(np.nanstd(values)) if np.isfinite(values).sum() > 1 else float("nan")


def threshold_sweep(image: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, match_radius: float = 2.0,
                    truth_level: float | None = None) -> dict[str, np.ndarray]:
    """Precision and recall against detection threshold (× noise rms): the paper's Fig. 11 curves.

    The truth list is fixed (detected at ``truth_level``, default the lowest threshold × the
    image's rms); only the image's detection varies.
    """
    data, rms = background_subtracted(image)
    reference, _ = background_subtracted(truth)
    thresholds = np.sort(np.asarray(thresholds, float))
    noise = rms if rms > 0 else 1e-3 * float(np.nanmax(reference))
    true_stars = detect_stars(reference, thresholds[0] * noise if truth_level is None else truth_level)
    precision, recall = [], []
    for level in thresholds:
        found = detect_stars(data, level * noise)
        i, _ = match_one_to_one(found.x, found.y, true_stars.x, true_stars.y, match_radius)
        p, r = precision_recall(len(i), len(found), len(true_stars))
        precision.append(p)
        recall.append(r)
    precision, recall = np.array(precision), np.array(recall)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"threshold": thresholds, "precision": precision, "recall": recall, "f1": np.nan_to_num(f1)}


def best_operating_point(sweep: dict[str, np.ndarray]) -> dict[str, float]:
    """The sweep point with the highest F1 = 2PR / (P + R): the paper tunes SExtractor's threshold
    per image "to maximize both the precision and recovery rate" (§4.2.1)."""
    k = int(np.argmax(sweep["f1"]))
    return {key: float(sweep[key][k]) for key in ("threshold", "precision", "recall", "f1")}


def recall_at_precision(sweep: dict[str, np.ndarray], precision: float) -> float:
    """The highest recall of the sweep among thresholds whose precision is at least ``precision``
    (the paper compares stacks "at approximately equal precision", Table 1 note); NaN if none."""
    ok = np.nan_to_num(sweep["precision"], nan=0.0) >= precision
    return float(np.max(sweep["recall"][ok])) if ok.any() else float("nan")


def common_star_summary(evaluations: list[Evaluation]) -> list[dict[str, float]]:
    """Means over the true stars matched in *every* evaluation (same truth list required): an image
    that recovers more, fainter stars is otherwise judged on a harder set than one that recovers few.

    Per evaluation: ``common_n`` and ``common_mean_d50``, ``common_mean_strehl``,
    ``common_mag_residual_std``, ``common_centroid_residual_std``.
    """
    if len({e.n_true for e in evaluations}) > 1:
        raise InputError("a common star set needs the same truth list for every image (one truth_level)")
    shared = set(evaluations[0].stars["truth_index"].tolist()) if evaluations else set()
    for e in evaluations[1:]:
        shared &= set(e.stars["truth_index"].tolist())
    summaries = []
    for e in evaluations:
        keep = np.isin(e.stars["truth_index"], list(shared))
        summaries.append({
            "common_n": int(keep.sum()),
            "common_mean_d50": _nanmean(e.stars["d50"][keep]),
            "common_mean_strehl": _nanmean(e.stars["strehl"][keep]),
            "common_mag_residual_std": _nanstd(e.stars["mag_residual"][keep]),
            "common_centroid_residual_std": _nanstd(e.stars["centroid_residual"][keep]),
        })
    return summaries
