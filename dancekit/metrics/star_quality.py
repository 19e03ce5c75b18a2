"""Per-star quality measures of Bialek et al. 2024 §4: D50, Strehl ratio, aperture magnitude, centroid.

Images are background-subtracted (H, W) arrays; positions are 0-based pixel coordinates
(pixel centres at integers, as sep). All functions are vectorised over stars.
"""

from __future__ import annotations

import numpy as np
import sep

from dancekit.errors import ParameterError


def _c_contiguous(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image, dtype=np.float64)


def aperture_flux(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Flux in circular apertures of ``radius`` pixels (exact pixel overlap, sep.sum_circle)."""
    if radius <= 0:
        raise ParameterError(f"aperture radius must be > 0 px, got {radius}")
    flux, _, _ = sep.sum_circle(_c_contiguous(image), np.asarray(x, float), np.asarray(y, float), radius, subpix=5)
    return flux


def aperture_magnitude(image: np.ndarray, x: np.ndarray, y: np.ndarray, diameter: float = 10.0) -> np.ndarray:
    """−2.5 log10 of the flux in a ``diameter``-pixel aperture (the paper uses 10 px); NaN where flux <= 0."""
    flux = aperture_flux(image, x, y, diameter / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def d50(image: np.ndarray, x: np.ndarray, y: np.ndarray, max_radius: float = 10.0,
        segmentation: np.ndarray | None = None, source_ids: np.ndarray | None = None) -> np.ndarray:
    """Diameter (pixels) of the circle holding 50 % of the flux within ``max_radius`` (sep.flux_radius × 2).

    This is the D50 of Bialek et al. 2024 Fig. 6 and 8 (SExtractor FLUX_RADIUS with PHOT_FLUXFRAC 0.5).
    With a ``segmentation`` map (sep.extract's) and each star's ``source_ids`` (its label in the map),
    pixels of other detected sources are left out, as SExtractor masks neighbours: without it, in a
    crowded field the neighbours' light within ``max_radius`` inflates the D50 of faint stars.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not len(x):
        return np.empty(0)
    masking = {}
    if segmentation is not None:
        masking = {"segmap": np.ascontiguousarray(segmentation, dtype=np.int32),
                   "seg_id": np.asarray(source_ids, dtype=np.int32)}
    radius, flags = sep.flux_radius(_c_contiguous(image), x, y, np.full(len(x), max_radius), 0.5, subpix=5, **masking)
    return np.where(flags & sep.APER_TRUNC, np.nan, 2 * radius)


def _boxes(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, size, size) boxes centred on the nearest pixels, and a mask of boxes fully inside."""
    height, width = image.shape
    ix, iy = np.floor(np.asarray(x) + 0.5).astype(int), np.floor(np.asarray(y) + 0.5).astype(int)
    lo = size // 2
    inside = (ix - lo >= 0) & (iy - lo >= 0) & (ix - lo + size <= width) & (iy - lo + size <= height)
    offsets = np.arange(size) - lo
    rows = np.clip(iy[:, None] + offsets, 0, height - 1)
    cols = np.clip(ix[:, None] + offsets, 0, width - 1)
    return image[rows[:, :, None], cols[:, None, :]], inside


def strehl_ratio(image: np.ndarray, truth: np.ndarray, x: np.ndarray, y: np.ndarray, x_truth: np.ndarray,
                 y_truth: np.ndarray, box: int = 10) -> np.ndarray:
    """Strehl ratio per star (Roberts et al. 2004 as used by Bialek et al. 2024 eq. 11).

    S = [I(0) / ΣI] / [P(0) / ΣP], with I(0) and P(0) the peaks of the observed and diffraction-
    limited (truth) star and the sums over ``box``×``box`` pixels centred on each. NaN for boxes
    that leave the image or hold no positive flux.
    """
    if image.shape != truth.shape:
        raise ParameterError(f"image {image.shape} and truth {truth.shape} differ in shape")
    obs, inside_obs = _boxes(image, x, y, box)
    ref, inside_ref = _boxes(truth, x_truth, y_truth, box)
    obs_sum, ref_sum = obs.sum(axis=(1, 2)), ref.sum(axis=(1, 2))
    ok = inside_obs & inside_ref & (obs_sum > 0) & (ref_sum > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (obs.max(axis=(1, 2)) / obs_sum) / (ref.max(axis=(1, 2)) / ref_sum)
    return np.where(ok, ratio, np.nan)


def centroids(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float = 3.0, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Flux-weighted centroids refined in circular windows of ``radius`` pixels (iterated)."""
    x, y = np.asarray(x, float).copy(), np.asarray(y, float).copy()
    size = 2 * int(np.ceil(radius)) + 1
    offsets = np.arange(size) - size // 2
    for _ in range(iterations):
        boxes, _ = _boxes(image, x, y, size)
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        gx = ix[:, None, None] + offsets[None, None, :]
        gy = iy[:, None, None] + offsets[None, :, None]
        weight = np.clip(boxes, 0, None) * (np.hypot(gx - x[:, None, None], gy - y[:, None, None]) <= radius)
        total = weight.sum(axis=(1, 2))
        good = total > 0
        x = np.where(good, (weight * gx).sum(axis=(1, 2)) / np.where(good, total, 1), x)
        y = np.where(good, (weight * gy).sum(axis=(1, 2)) / np.where(good, total, 1), y)
    return x, y
