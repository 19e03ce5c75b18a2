"""Seeing FWHM and aperture correction from the curve of growth of bright isolated stars.

An aperture of radius r misses the PSF wings: m_aper − m_total = Δ(r) > 0, the same for every
star of an exposure (one PSF), so a zero point fitted on aperture magnitudes absorbs it. For a
Moffat (1969) star the missed fraction is (1 + r²/α²)^(1−β), ≈ 9 % at r = 1.5 FWHM with β = 3;
a zero point meant for *total* fluxes (the ``PHOTZP`` convention) must add it back. Following
the curve-of-growth method (Howell 1989; Stetson 1990, DAOGROW), Δ(r) is measured on bright,
isolated, unflagged stars as −2.5 log10(F(r) / F(R)) with R = ``outer_factor`` · r (where the
growth curve has flattened: 4 r leaves < 0.1 % of a β = 3 Moffat outside), and its median
over the stars is the correction; its error is 1.4826·MAD/√n.

Coordinates and units follow :mod:`dancekit.photometry.extraction` (pixels, ADU).
"""

from __future__ import annotations

import numpy as np
import sep
from scipy.spatial import cKDTree

AUTO_APERTURE_PER_FWHM = 1.5  # aperture radius / FWHM when none is given (S/N near optimum, Howell 1989)
OUTER_FACTOR = 4.0  # outer radius of the curve of growth / aperture radius
MIN_CORRECTION_STARS = 10  # fewer bright isolated stars: no correction (0, error NaN); 3-7 gave +0.03-0.09 mag outliers
MAX_CORRECTION_ERROR = 0.02  # mag: a noisier curve of growth is not applied
MAX_CORRECTION_STARS = 100  # the brightest ones are enough: the median error is ~0.001 mag
_MIN_SNR = 50.0  # a star's aperture S/N for the curve of growth
_MAD_TO_SIGMA = 1.4826


def isolated(x, y, radius: float, shape, margin: float) -> np.ndarray:
    """True for detections with no other detection within ``radius`` pixels and at least
    ``margin`` pixels inside the image of ``shape`` (H, W)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    inside = (x >= margin - 0.5) & (x <= shape[1] - 0.5 - margin) & (y >= margin - 0.5) & (y <= shape[0] - 0.5 - margin)
    if x.size < 2:
        return inside
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return inside & (distance[:, 1] >= radius)


def seeing_fwhm(data, mask, x, y, a, peak_flux, flags) -> float:
    """Median FWHM (pixels) of the brightest isolated, unflagged detections.

    Twice the half-light radius (``sep.flux_radius`` within 6 second-moment semi-axes): exact
    for a Gaussian; 0.79 × larger than the FWHM for a β = 3 Moffat (a conservative radius).
    Returns NaN when no detection qualifies.

    Parameters
    ----------
    data : background-subtracted image, ADU. mask : bool array or None.
    x, y, a : detections (pixels); peak_flux : any brightness ranking (e.g. sep's ``flux``).
    flags : sep object flags (0 = clean).
    """
    a = np.asarray(a, float)
    if a.size == 0:
        return float("nan")
    scale = max(float(np.median(a)), 0.5)
    good = (np.asarray(flags) == 0) & isolated(x, y, 12.0 * scale, data.shape, 6.0 * scale) & np.isfinite(peak_flux)
    index = np.flatnonzero(good)
    if index.size == 0:
        return float("nan")
    index = index[np.argsort(np.asarray(peak_flux)[index])[::-1][:MAX_CORRECTION_STARS]]
    rmax = np.maximum(6.0 * a[index], 3.0)
    for masked in (mask, None):  # unmasked: saturated stars only (flat tops overestimate the FWHM)
        half, flag = sep.flux_radius(data, x[index], y[index], rmax, 0.5, mask=masked, subpix=5)
        half = half[(flag & ~sep.APER_HASMASKED == 0) & np.isfinite(half) & (half > 0)]
        if half.size:
            return float(2.0 * np.median(half))
    return float("nan")


def aperture_correction(data, mask, x, y, flux, flux_err, flags, radius: float,
                        outer_factor: float = OUTER_FACTOR) -> tuple[float, float, int]:
    """Aperture correction Δ = median(m_aper − m_outer) over bright isolated stars, mag.

    Parameters
    ----------
    data : background-subtracted image, ADU. mask : bool array (masked pixels) or None.
    x, y : pixels. flux, flux_err : the photometry to correct (ADU). flags : dancekit
        ``FLAG_*`` bits (0 = clean). radius : aperture radius, pixels.
    outer_factor : outer radius of the growth curve in units of ``radius``.

    Returns
    -------
    (delta, delta_err, n_stars) : subtract ``delta`` from aperture magnitudes to get total
        magnitudes; (0, NaN, n) when fewer than ``MIN_CORRECTION_STARS`` stars qualify or the
        correction's own error exceeds ``MAX_CORRECTION_ERROR``.
    """
    outer = outer_factor * radius
    flux, flux_err = np.asarray(flux, float), np.asarray(flux_err, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, 0.0)
    good = (np.asarray(flags) == 0) & (snr >= _MIN_SNR) & isolated(x, y, outer + radius, data.shape, outer)
    index = np.flatnonzero(good)
    if index.size < MIN_CORRECTION_STARS:
        return 0.0, float("nan"), int(index.size)
    index = index[np.argsort(flux[index])[::-1][:MAX_CORRECTION_STARS]]
    total, _, flag = sep.sum_circle(data, x[index], y[index], outer, mask=mask, subpix=5)
    ok = (flag == 0) & (total > 0) & (flux[index] > 0)
    if ok.sum() < MIN_CORRECTION_STARS:
        return 0.0, float("nan"), int(ok.sum())
    delta = -2.5 * np.log10(flux[index][ok] / total[ok])
    centre = float(np.median(delta))
    error = _MAD_TO_SIGMA * float(np.median(np.abs(delta - centre))) * np.sqrt(np.pi / 2 / delta.size)
    if error > MAX_CORRECTION_ERROR:
        return 0.0, float("nan"), int(delta.size)
    return centre, error, int(delta.size)
