"""A Moffat PSF fitted jointly to the stars of one exposure, and the aperture correction it gives.

When an exposure has too few bright isolated stars for the curve of growth
(:mod:`dancekit.photometry.aperture`), the flux an aperture of radius r misses is read off a
PSF model instead: a circular Moffat (1969) profile normalised to a total flux F over the
plane (the normalisation of photutils' ``MoffatPSF``; not imported, it costs seconds of start-up):

    f(x, y) = F (β − 1) / (π α²) · (1 + ((x − x₀)² + (y − y₀)²) / α²)^(−β),

sampled at the pixel centres, as sep's apertures sum them. One α and one β are shared by
every star of the exposure (one PSF); each star keeps its own centre and flux. The fit runs on
stamps of ``fit_radius`` pixels around the stars, in two steps:

1. each star's centre: its windowed centroid (sep.winpos, SExtractor's XWIN_IMAGE);
2. all stars together for (α, β), centres fixed and the fluxes solved linearly at each trial
   (α, β) (variable projection, Golub & Pereyra 1973): two parameters however many stars.
   A star fitting much worse than the others (χ²_ν > 4 × the median: an unresolved pair, a
   cosmic ray) is dropped and the fit repeated.

Pixel variances follow the CCD equation, σ² = σ_sky² + max(d, 0)/g (ADU²). The correction is
Δ = −2.5 log10 EE(r), EE(r) the model's share of the total flux inside the same sep aperture
(exact circle overlap, ``subpix=5``) averaged over the stars' sub-pixel positions; it is
m_aper − m_total, the sign of the curve-of-growth correction.

Units: pixels and ADU (background-subtracted image), as in :mod:`dancekit.photometry.extraction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep
from scipy.optimize import least_squares

from dancekit.errors import ParameterError

_ALPHA_RANGE = (0.3, 50.0)  # pixels
_BETA_RANGE = (1.2, 30.0)  # 1 has infinite flux; above ~30 the profile is a Gaussian
_LOG_BOUNDS = ([np.log(_ALPHA_RANGE[0]), np.log(_BETA_RANGE[0] - 1)],
               [np.log(_ALPHA_RANGE[1]), np.log(_BETA_RANGE[1] - 1)])  # (log α, log(β − 1))
_MIN_PIXELS = 12  # unmasked pixels a stamp needs
_OUTLIER_CHI2 = 4.0  # × the median star χ²_ν: beyond, the star is dropped
_MAX_ROUNDS = 3  # joint fits with outlier rejection
_START_BETA = 3.0


@dataclass(frozen=True)
class _Stamps:
    """Pixels of several star stamps, concatenated (P,), with the star each belongs to."""

    dx: np.ndarray  # pixel x − the star's first-guess x
    dy: np.ndarray
    data: np.ndarray  # ADU
    weight: np.ndarray  # 1/σ, 1/ADU
    star: np.ndarray  # 0..S−1
    x: np.ndarray  # (S,) first-guess centres, pixels
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)

    def subset(self, keep) -> "_Stamps":
        keep = np.asarray(keep, bool)
        renumber = np.cumsum(keep) - 1
        pixels = keep[self.star]
        return _Stamps(self.dx[pixels], self.dy[pixels], self.data[pixels], self.weight[pixels],
                       renumber[self.star[pixels]], self.x[keep], self.y[keep])


@dataclass(frozen=True)
class MoffatFit:
    """The joint Moffat fit of an exposure.

    alpha : α, pixels. beta : β. alpha_beta_covariance : (2, 2) covariance of (α, β) (scaled
    by χ²_ν when above 1). x, y : fitted centres of the stars used, pixels. flux : their total
    fluxes, ADU. chi2_nu : reduced χ² of the joint fit. star_chi2 : each star's reduced χ².
    """

    alpha: float
    beta: float
    alpha_beta_covariance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    chi2_nu: float
    star_chi2: np.ndarray
    stamps: _Stamps
    offsets: np.ndarray  # (S, 2) fitted centre − first guess, pixels

    @property
    def fwhm(self) -> float:
        """FWHM = 2α √(2^(1/β) − 1), pixels."""
        return float(2.0 * self.alpha * np.sqrt(2.0 ** (1.0 / self.beta) - 1.0))

    def __len__(self) -> int:
        return int(self.x.size)


def moffat_profile(dx, dy, alpha: float, beta: float) -> np.ndarray:
    """Unit-flux circular Moffat (1969) at offsets ``dx, dy`` (pixels) from its centre, 1/pixel²."""
    r2 = np.asarray(dx, float) ** 2 + np.asarray(dy, float) ** 2
    return (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)


def fit_moffat(data, mask, x, y, *, fit_radius: float, sky_sigma: float, gain: float | None,
               fwhm_guess: float) -> MoffatFit | None:
    """Joint Moffat fit to the stars at ``x, y`` (see the module docstring).

    Parameters
    ----------
    data : background-subtracted image, ADU. mask : bool array (True = bad) or None.
    x, y : first-guess centres of the stars (pixels), each at least ``fit_radius`` inside the
        image with no other star within it (the caller selects them).
    fit_radius : stamp radius, pixels. sky_sigma : per-pixel sky noise, ADU.
    gain : e⁻/ADU for the source Poisson term (None: sky noise only).
    fwhm_guess : starting FWHM, pixels.

    Returns
    -------
    MoffatFit, or None when no star has a usable stamp or the fit fails.
    """
    if not (np.isfinite(fit_radius) and fit_radius >= 2) or not (np.isfinite(sky_sigma) and sky_sigma > 0):
        raise ParameterError(f"need fit_radius >= 2 pixels and sky_sigma > 0 ADU, got {fit_radius!r}, {sky_sigma!r}")
    stamps = _cut_stamps(data, mask, np.atleast_1d(x), np.atleast_1d(y), float(fit_radius), float(sky_sigma), gain)
    if stamps is None:
        return None
    alpha0 = max(float(fwhm_guess), 1.0) / (2.0 * np.sqrt(2.0 ** (1.0 / _START_BETA) - 1.0))
    if not np.isfinite(alpha0):
        alpha0 = 2.0
    offsets = _star_offsets(data, mask, stamps, alpha0)
    good = np.all(np.isfinite(offsets), axis=1)
    start = (np.log(alpha0), np.log(_START_BETA - 1.0))
    fit = None
    for _ in range(_MAX_ROUNDS):
        if not good.any():
            return None
        stamps, offsets = stamps.subset(good), offsets[good]
        fit = _joint_fit(stamps, offsets, start)
        if fit is None:
            return None
        outlier = fit.star_chi2 > max(_OUTLIER_CHI2 * float(np.median(fit.star_chi2)), 2.0)
        if not outlier.any() or outlier.all():
            break
        good = ~outlier
        start = (np.log(fit.alpha), np.log(fit.beta - 1.0))
    return fit


def encircled_energy(alpha: float, beta: float, radius: float, x_offsets=(0.0,), y_offsets=(0.0,)) -> float:
    """Share of a unit-flux Moffat inside a sep circular aperture of ``radius`` pixels, the
    profile sampled at pixel centres, averaged over the sub-pixel positions ``x/y_offsets``."""
    half = int(np.ceil(radius)) + 2
    grid = np.arange(-half, half + 1, dtype=float)
    shares = []
    for ox, oy in zip(np.atleast_1d(x_offsets), np.atleast_1d(y_offsets)):
        image = moffat_profile(grid[None, :] - ox, grid[:, None] - oy, alpha, beta)
        inside, _, _ = sep.sum_circle(image, [half + ox], [half + oy], radius, subpix=5)
        shares.append(float(inside[0]))
    return float(np.mean(shares))


def moffat_aperture_correction(fit: MoffatFit, radius: float, jackknife_groups: int = 8) -> tuple[float, float]:
    """(Δ, σ_Δ) = m_aper − m_total of the fitted Moffat for an aperture of ``radius`` pixels, mag.

    σ_Δ is the larger of the (α, β) covariance propagated to Δ and the delete-a-group jackknife
    over the stars (``jackknife_groups`` groups, Efron & Stein 1981), which also catches a PSF
    that differs between stars more than their noise allows. With β at its upper bound the PSF
    may be steeper still: Δ is then the mean of the Moffat's and of a Gaussian of the same FWHM
    (the β → ∞ limit), half their difference entering σ_Δ.
    """
    sub_pixel = (fit.x - np.rint(fit.x), fit.y - np.rint(fit.y))

    def delta(alpha, beta):
        return -2.5 * np.log10(encircled_energy(alpha, beta, radius, *sub_pixel))

    centre = delta(fit.alpha, fit.beta)
    steps = 0.1 * np.sqrt(np.maximum(np.diag(fit.alpha_beta_covariance), 0.0)) + 1e-4
    gradient = np.array([
        (delta(fit.alpha + steps[0], fit.beta) - delta(fit.alpha - steps[0], fit.beta)) / (2 * steps[0]),
        (delta(fit.alpha, fit.beta + steps[1]) - delta(fit.alpha, fit.beta - steps[1])) / (2 * steps[1]),
    ])
    error = float(np.sqrt(max(gradient @ fit.alpha_beta_covariance @ gradient, 0.0)))
    n_groups = min(int(jackknife_groups), len(fit))
    if n_groups >= 3:
        groups = np.arange(len(fit)) % n_groups
        start = (np.log(fit.alpha), np.log(fit.beta - 1.0))
        partial = [sub for sub in (_joint_fit(fit.stamps.subset(groups != g), fit.offsets[groups != g], start)
                                   for g in range(n_groups)) if sub is not None]
        if len(partial) >= 3:
            values = np.array([delta(sub.alpha, sub.beta) for sub in partial])
            spread = np.sqrt((values.size - 1) / values.size * np.sum((values - values.mean()) ** 2))
            error = max(error, float(spread))
    if fit.beta >= _BETA_RANGE[1] - 1e-6:  # β at its bound: the PSF may be steeper still (a Gaussian)
        sigma = fit.fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        gaussian = float(-2.5 * np.log10(1.0 - np.exp(-0.5 * (radius / sigma) ** 2)))
        centre, error = 0.5 * (centre + gaussian), max(error, 0.5 * abs(centre - gaussian))
    return float(centre), error


def _cut_stamps(data, mask, x, y, radius, sky_sigma, gain) -> _Stamps | None:
    height, width = data.shape
    parts, xs, ys = [], [], []
    for xi, yi in zip(x.astype(float), y.astype(float)):
        x0, x1 = int(np.floor(xi - radius)), int(np.ceil(xi + radius)) + 1
        y0, y1 = int(np.floor(yi - radius)), int(np.ceil(yi + radius)) + 1
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            continue
        rows, cols = np.mgrid[y0:y1, x0:x1]
        dx, dy = cols - xi, rows - yi
        values = data[y0:y1, x0:x1].astype(float)
        use = (dx**2 + dy**2 <= radius**2) & np.isfinite(values)
        if mask is not None:
            use &= ~mask[y0:y1, x0:x1]
        if use.sum() < _MIN_PIXELS:
            continue
        variance = sky_sigma**2 + (np.maximum(values[use], 0.0) / gain if gain else 0.0)
        parts.append((dx[use], dy[use], values[use], 1.0 / np.sqrt(variance), np.full(use.sum(), len(xs))))
        xs.append(xi)
        ys.append(yi)
    if not parts:
        return None
    dx, dy, values, weight, star = (np.concatenate(column) for column in zip(*parts))
    return _Stamps(dx, dy, values, weight, star, np.array(xs), np.array(ys))


def _star_offsets(data, mask, stamps: _Stamps, alpha0: float) -> np.ndarray:
    """(S, 2) windowed centroid (sep.winpos, SExtractor XWIN) − first guess, pixels; NaN where
    it fails or moves by more than 2 pixels."""
    sigma = alpha0 * 2.0 * np.sqrt(2.0 ** (1.0 / _START_BETA) - 1.0) / 2.3548  # Gaussian σ of that FWHM
    x, y, flag = sep.winpos(np.ascontiguousarray(data, dtype=np.float32) if data.dtype != np.float32 else data,
                            stamps.x, stamps.y, np.full(len(stamps), sigma), mask=mask)
    offsets = np.column_stack([x - stamps.x, y - stamps.y])
    bad = (flag != 0) | ~np.all(np.isfinite(offsets), axis=1) | np.any(np.abs(offsets) > 2.0, axis=1)
    offsets[bad] = np.nan
    return offsets


def _shapes_and_fluxes(stamps: _Stamps, offsets, alpha, beta):
    """Weighted unit-flux profiles (P,) and each star's linear least-squares flux (S,)."""
    shape = moffat_profile(stamps.dx - offsets[stamps.star, 0], stamps.dy - offsets[stamps.star, 1],
                           alpha, beta) * stamps.weight
    target = stamps.data * stamps.weight
    numerator = np.bincount(stamps.star, shape * target, minlength=len(stamps))
    denominator = np.bincount(stamps.star, shape * shape, minlength=len(stamps))
    return shape, target, numerator / np.maximum(denominator, 1e-300)


def _joint_residuals(p, stamps, offsets, fixed_log_beta1=None):
    if fixed_log_beta1 is not None:
        p = np.array([p[0], fixed_log_beta1])
    p = np.clip(p, _LOG_BOUNDS[0], _LOG_BOUNDS[1])  # MINPACK has no bounds: clamp to the allowed range
    shape, target, flux = _shapes_and_fluxes(stamps, offsets, np.exp(p[0]), 1.0 + np.exp(p[1]))
    return target - flux[stamps.star] * shape


def _joint_fit(stamps: _Stamps, offsets, start) -> MoffatFit | None:
    """(α, β) shared by all ``stamps`` with their centres fixed at first guess + ``offsets``.

    A β running to its upper bound is a Gaussian-like core: β is then fixed there (zero
    variance) and α fitted alone. α or β at a lower bound: None (not a stellar PSF).
    """
    if len(stamps) == 0:
        return None
    fit = least_squares(_joint_residuals, list(start), args=(stamps, offsets), method="lm", xtol=1e-6)
    if not fit.success or not np.all(np.isfinite(fit.x)):
        return None
    fixed_beta = fit.x[1] >= _LOG_BOUNDS[1][1]
    if fixed_beta:
        fit = least_squares(_joint_residuals, [fit.x[0]], args=(stamps, offsets, _LOG_BOUNDS[1][1]), method="lm",
                            xtol=1e-6)
        if not fit.success or not np.isfinite(fit.x[0]):
            return None
        fit.x = np.array([fit.x[0], _LOG_BOUNDS[1][1]])
    if np.any(np.abs(fit.x - np.clip(fit.x, _LOG_BOUNDS[0], _LOG_BOUNDS[1])) > 1e-6):
        return None  # α or β ran into a bound: not a Moffat-like PSF
    alpha, beta = float(np.exp(fit.x[0])), 1.0 + float(np.exp(fit.x[1]))
    sizes = np.bincount(stamps.star, minlength=len(stamps))
    chi2_nu = float(np.sum(fit.fun**2) / max(int(sizes.sum()) - 2 - 3 * len(stamps), 1))
    try:  # covariance of (log α, log(β − 1)), then of (α, β) by the chain rule
        cov_log = np.zeros((2, 2))
        free = 1 if fixed_beta else 2
        cov_log[:free, :free] = np.linalg.inv(fit.jac.T @ fit.jac) * max(chi2_nu, 1.0)
    except np.linalg.LinAlgError:
        return None
    chain = np.diag([alpha, beta - 1.0])
    _, _, flux = _shapes_and_fluxes(stamps, offsets, alpha, beta)
    star_chi2 = np.bincount(stamps.star, fit.fun**2, minlength=len(stamps)) / np.maximum(sizes - 3, 1)
    return MoffatFit(alpha=alpha, beta=beta, alpha_beta_covariance=chain @ cov_log @ chain,
                     x=stamps.x + offsets[:, 0], y=stamps.y + offsets[:, 1], flux=flux, chi2_nu=chi2_nu,
                     star_chi2=star_chi2, stamps=stamps, offsets=offsets)
