"""Seeing FWHM and aperture correction from the curve of growth of bright isolated stars.

An aperture of radius r misses the PSF wings: m_aper − m_total = Δ(r) > 0, the same for every
star of an exposure (one PSF), so a zero point fitted on aperture magnitudes absorbs it. For a
Moffat (1969) star the missed fraction is (1 + r²/α²)^(1−β), ≈ 9 % at r = 1.5 FWHM with β = 3;
a zero point meant for *total* fluxes (the ``PHOTZP`` convention) must add it back. Following
the curve-of-growth method (Howell 1989; Stetson 1990, DAOGROW), Δ(r) is measured on bright,
isolated, unflagged stars as −2.5 log10(F(r) / F(R)) with R = ``outer_factor`` · r (where the
growth curve has flattened: 4 r leaves < 0.1 % of a β = 3 Moffat outside), and its median
over the stars is the correction; its error is 1.4826·MAD/√n.

The curve of growth needs many stars: its outer aperture (16× the area) also collects faint,
undetected neighbours and sky errors. On generated sparse 1024² fields (400 stars with field
star counts, Moffat β = 3.5) the median over 10–22 stars was 0.004–0.042 mag too large. With
fewer than ``GROWTH_STARS`` stars, :func:`total_flux_correction` therefore takes Δ from a
Moffat PSF fitted jointly to the detected stars within 2 r (:mod:`dancekit.photometry.psf_model`),
which stayed within 0.006 mag on the same fields; the curve of growth of ≥ 10 stars is the
fallback when that fit fails, and no correction at all the last resort (``method`` says which).

Coordinates and units follow :mod:`dancekit.photometry.extraction` (pixels, ADU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep
from scipy.spatial import cKDTree

AUTO_APERTURE_PER_FWHM = 1.5  # aperture radius / FWHM when none is given (S/N near optimum, Howell 1989)
OUTER_FACTOR = 4.0  # outer radius of the curve of growth / aperture radius
MIN_CORRECTION_STARS = 10  # fewer bright isolated stars: no correction (0, error NaN); 3-7 gave +0.03-0.09 mag outliers
MAX_CORRECTION_ERROR = 0.02  # mag: a noisier curve of growth is not applied
MAX_CORRECTION_STARS = 100  # the brightest ones are enough: the median error is ~0.001 mag
GROWTH_STARS = 30  # stars for the curve of growth to be preferred to the PSF model (see above)
MIN_PSF_STARS = 3  # fewest stars for the Moffat model (3 allow the jackknife error)
MAX_PSF_STARS = 30  # brightest stars fitted: more change Δ by < 0.001 mag and cost time
PSF_FIT_RADIUS = 2.0  # stamp radius of the Moffat fit / aperture radius
_MIN_SNR = 50.0  # a star's aperture S/N for the curve of growth
_MIN_PSF_SNR = 20.0  # a star's aperture S/N for the Moffat fit (the joint fit weighs them)
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


@dataclass(frozen=True)
class ApertureCorrection:
    """How aperture magnitudes were turned into total ones.

    delta : Δ = m_aper − m_total, mag (0 with ``method="none"``). error : its 1σ error, mag
    (NaN when none). n_stars : stars it was measured on. method : ``"growth"`` (curve of
    growth), ``"moffat"`` (joint Moffat fit) or ``"none"``. moffat_fwhm (pixels) and
    moffat_beta : the fitted PSF (NaN unless fitted).
    """

    delta: float = 0.0
    error: float = float("nan")
    n_stars: int = 0
    method: str = "none"
    moffat_fwhm: float = float("nan")
    moffat_beta: float = float("nan")


def total_flux_correction(data, mask, x, y, flux, flux_err, flags, radius: float, *,
                          sky_sigma: float, gain: float | None, fwhm: float) -> ApertureCorrection:
    """Δ = m_aper − m_total for apertures of ``radius`` pixels, by the best method available.

    The curve of growth when at least ``GROWTH_STARS`` stars qualify; otherwise the Moffat fit
    (``MIN_PSF_STARS`` or more clean stars of S/N ≥ 20 with no detection within 3 r); then the
    curve of growth of ``MIN_CORRECTION_STARS`` or more; else no correction. A method whose own
    error exceeds ``MAX_CORRECTION_ERROR`` is not used.

    Parameters
    ----------
    data : background-subtracted image, ADU. mask : bool array or None. x, y : detections,
    pixels. flux, flux_err : their aperture fluxes, ADU. flags : dancekit ``FLAG_*`` bits.
    radius : aperture radius, pixels. sky_sigma : per-pixel sky noise, ADU. gain : e⁻/ADU
    (None: sky noise only). fwhm : seeing estimate, pixels (the Moffat fit's start).
    """
    growth = aperture_correction(data, mask, x, y, flux, flux_err, flags, radius)
    growth_ok = np.isfinite(growth[1])
    if growth_ok and growth[2] >= GROWTH_STARS:
        return ApertureCorrection(growth[0], growth[1], growth[2], "growth")
    moffat = _moffat_correction(data, mask, x, y, flux, flux_err, flags, radius, sky_sigma, gain, fwhm)
    if moffat is not None:
        return moffat
    if growth_ok:
        return ApertureCorrection(growth[0], growth[1], growth[2], "growth")
    return ApertureCorrection(n_stars=growth[2])


def _moffat_correction(data, mask, x, y, flux, flux_err, flags, radius, sky_sigma, gain, fwhm):
    from dancekit.photometry.psf_model import fit_moffat, moffat_aperture_correction

    fit_radius = PSF_FIT_RADIUS * radius
    flux, flux_err = np.asarray(flux, float), np.asarray(flux_err, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, 0.0)
    good = ((np.asarray(flags) == 0) & (snr >= _MIN_PSF_SNR)
            & isolated(x, y, fit_radius + radius, data.shape, fit_radius + 1.0))
    index = np.flatnonzero(good)
    if index.size < MIN_PSF_STARS:
        return None
    index = index[np.argsort(flux[index])[::-1][:MAX_PSF_STARS]]
    guess = fwhm if np.isfinite(fwhm) else radius / AUTO_APERTURE_PER_FWHM
    fit = fit_moffat(data, mask, np.asarray(x)[index], np.asarray(y)[index], fit_radius=fit_radius,
                     sky_sigma=sky_sigma, gain=gain, fwhm_guess=guess)
    if fit is None or len(fit) < MIN_PSF_STARS:
        return None
    delta, error = moffat_aperture_correction(fit, radius)
    if not (np.isfinite(delta) and np.isfinite(error)) or error > MAX_CORRECTION_ERROR:
        return None
    return ApertureCorrection(delta, error, len(fit), "moffat", fit.fwhm, fit.beta)
