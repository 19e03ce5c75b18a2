"""Robust photometric zero point, colour term and extinction from matched stars.

Model (per star i):

    m_ref,i − m_inst,i = ZP − k·X_i + c·colour_i

with m_inst = −2.5 log10(electrons / second), ZP the zero point above the atmosphere
(airmass 0), k the extinction coefficient (mag per airmass) and c the colour term. k and c
are each either fixed or fitted; fitting k needs stars observed at several airmasses (a
night's exposures concatenated, one airmass per star), assuming a photometric night.

Algorithm (the consensus of LSST PhotoCalTask, ZOGY and photometrypipeline, see
``shared/notes/dark_zp.md`` §3):

1. Start from the median of the residuals and clip normalised residuals beyond
   ``clip_sigma`` times max(1, 1.4826·MAD) (median/MAD start, robust to gross outliers).
2. Iterate weighted least squares on the kept stars and re-clip on all stars until the kept
   set no longer changes.
3. Weights w = 1/σ², σ² = σ_ref² + σ_inst² + floor² (error floor added in quadrature, LSST
   ``magErrFloor``), capped at the weight of the ``weight_cap_rank``-th best star (ZOGY) so
   that no single bright star dominates.
4. Covariance by the sandwich formula (exact for capped weights), inflated by χ²_ν when
   χ²_ν > 1 (unmodelled scatter such as flat-field or catalogue systematics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import InputError, ParameterError

ZP_FLAG_FEW_STARS = 1  # fewer than 20 stars used
ZP_FLAG_HIGH_CHI2 = 2  # reduced chi-square above 3: errors inflated a lot
ZP_FLAG_MANY_CLIPPED = 4  # more than 20 % of the stars clipped
ZP_FLAG_NARROW_COLOUR = 8  # colour term fitted over a colour range below 0.3 mag
ZP_FLAG_NOT_CONVERGED = 16  # clipping did not settle within max_iter

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class ZeroPointResult:
    """Outcome of a zero-point fit.

    Attributes
    ----------
    zp, zp_err : zero point above the atmosphere (airmass 0), mag, for m_inst in e⁻/s.
    zp_scatter : robust rms of the residuals of the used stars (1.4826·MAD), mag.
    chi2_nu : reduced χ² of the used stars before error inflation.
    n_used, n_available : stars kept after clipping / stars offered to the fit.
    colour_term, colour_term_err, colour_term_fitted : c (mag/mag); error 0 when fixed.
    extinction, extinction_err, extinction_fitted : k (mag/airmass); error 0 when fixed.
    airmass : mean airmass of the used stars.
    flags : bit mask of ``ZP_FLAG_*`` (0 = clean).
    residuals : (N,) m_ref − m_inst − model for every input star, mag (clipped stars
        included, NaN for stars without finite magnitudes).
    used : (N,) bool, True for stars kept by the clipping.
    covariance : (3, 3) covariance of (ZP, k, c) after inflation, mag² (zeros for fixed ones).
    rejections : (reason, count) pairs explaining stars that never reached the fit (filled
        by the calibration pipeline; empty when the fit is called directly).
    """

    zp: float
    zp_err: float
    zp_scatter: float
    chi2_nu: float
    n_used: int
    n_available: int
    colour_term: float
    colour_term_err: float
    colour_term_fitted: bool
    extinction: float
    extinction_err: float
    extinction_fitted: bool
    airmass: float
    flags: int
    residuals: np.ndarray
    used: np.ndarray
    covariance: np.ndarray
    rejections: tuple = ()

    def zeropoint_at(self, airmass: float) -> tuple[float, float]:
        """ZP − k·X and its 1σ error (mag) at a given airmass, colour 0."""
        gradient = np.array([1.0, -airmass, 0.0])
        return (self.zp - self.extinction * airmass,
                float(np.sqrt(max(gradient @ self.covariance @ gradient, 0.0))))


def fit_zeropoint(
    m_ref,
    m_inst,
    *,
    m_ref_err=None,
    m_inst_err=None,
    colour=None,
    colour_term: float | None = None,
    airmass=1.0,
    extinction: float | None = 0.0,
    error_floor: float = 0.002,
    weight_cap_rank: int = 3,
    clip_sigma: float = 3.0,
    max_iter: int = 20,
    min_stars: int = 5,
) -> ZeroPointResult:
    """Fit m_ref − m_inst = ZP − k·X + c·colour with robust clipping.

    Parameters
    ----------
    m_ref, m_inst : (N,) reference and instrumental (−2.5 log10 e⁻/s) magnitudes, mag.
    m_ref_err, m_inst_err : (N,) 1σ errors, mag (zeros when None).
    colour : (N,) colour index, mag, or None (no colour term).
    colour_term : None fits c (when colours are given; 0 otherwise); a number fixes it.
    airmass : scalar or (N,) airmass of each star's exposure, ≥ 1.
    extinction : k in mag/airmass, fixed; None fits it (needs an airmass span ≥ 0.1).
    error_floor : mag, added in quadrature to every star's error (≥ 0).
    weight_cap_rank : weights are capped at the weight of this rank (1 = no cap).
    clip_sigma : clipping threshold in σ (> 0). max_iter : clipping iterations.
    min_stars : minimum stars after clipping (≥ number of fitted parameters + 1).

    Raises
    ------
    InputError : fewer than ``min_stars`` usable stars, before or after clipping.
    """
    m_ref = _column(m_ref, "m_ref")
    n = m_ref.size
    m_inst = _column(m_inst, "m_inst", n)
    ref_err = np.zeros(n) if m_ref_err is None else _column(m_ref_err, "m_ref_err", n)
    inst_err = np.zeros(n) if m_inst_err is None else _column(m_inst_err, "m_inst_err", n)
    x_air = np.broadcast_to(np.asarray(airmass, float), (n,)).copy() if np.ndim(airmass) == 0 \
        else _column(airmass, "airmass", n)
    colours = None if colour is None else _column(colour, "colour", n)
    if np.any(x_air[np.isfinite(x_air)] < 1.0):
        raise ParameterError(f"airmass must be >= 1, got a minimum of {np.nanmin(x_air):.3g}")
    if not error_floor >= 0:
        raise ParameterError(f"error_floor must be >= 0 mag, got {error_floor!r}")
    if not clip_sigma > 0 or max_iter < 1 or weight_cap_rank < 1:
        raise ParameterError("need clip_sigma > 0, max_iter >= 1 and weight_cap_rank >= 1")
    fit_c = colour_term is None and colours is not None
    fit_k = extinction is None
    if colours is None and colour_term not in (None, 0, 0.0):
        raise ParameterError("a fixed colour_term needs the stars' colours")
    finite_air = x_air[np.isfinite(x_air)]
    if fit_k and (finite_air.size == 0 or np.ptp(finite_air) < 0.1):
        raise ParameterError(
            "extinction can only be fitted from stars observed over an airmass span >= 0.1; "
            "fix it (extinction=k in mag/airmass) for a single exposure"
        )
    n_par = 1 + int(fit_c) + int(fit_k)
    if min_stars < n_par + 1:
        raise ParameterError(f"min_stars must be >= {n_par + 1} for {n_par} fitted parameters, got {min_stars}")
    k_fixed = 0.0 if fit_k else float(extinction)
    c_fixed = 0.0 if (fit_c or colours is None) else float(colour_term)
    offset = m_ref - m_inst + k_fixed * x_air - (c_fixed * colours if colours is not None else 0.0)
    sigma = np.sqrt(ref_err**2 + inst_err**2 + error_floor**2)
    columns = [np.ones(n)] + ([-x_air] if fit_k else []) + ([colours] if fit_c else [])
    design = np.column_stack(columns)
    finite = np.isfinite(offset) & np.isfinite(sigma) & (sigma > 0) & np.all(np.isfinite(design), axis=1)
    if finite.sum() < min_stars:
        raise InputError(
            f"only {int(finite.sum())} of {n} stars have finite magnitudes and errors; "
            f"the zero-point fit needs at least {min_stars}"
        )
    beta, cov, kept, chi2_nu, converged = _robust_linear_fit(
        offset, sigma, design, finite, clip_sigma, max_iter, weight_cap_rank)
    if kept.sum() < min_stars:
        raise InputError(
            f"only {int(kept.sum())} of {int(finite.sum())} stars survived {clip_sigma:g}-sigma "
            f"clipping; the zero-point fit needs at least {min_stars}"
        )
    return _result(beta, cov, kept, finite, offset, design, chi2_nu, converged, fit_k, fit_c,
                   k_fixed, c_fixed, x_air, colours)


def _column(values, name, n=None):
    array = np.array(values, dtype=float, copy=True)
    if array.ndim != 1 or (n is not None and array.size != n):
        expected = "a 1-D array" if n is None else f"a 1-D array of {n} values"
        raise ParameterError(f"{name} must be {expected}, got shape {array.shape}")
    return array


def _robust_linear_fit(y, sigma, design, finite, clip_sigma, max_iter, cap_rank):
    """Iteratively clipped, capped-weight least squares. Returns (beta, cov, kept, chi2_nu,
    converged)."""
    n_par = design.shape[1]
    z = np.where(finite, (y - np.median(y[finite])) / sigma, np.inf)
    kept = finite & (np.abs(z) <= clip_sigma * max(1.0, _robust_scale(z[finite])))
    if kept.sum() <= n_par:
        kept = finite.copy()
    converged = False
    for _ in range(max_iter):
        beta, cov, chi2_nu = _weighted_fit(y[kept], sigma[kept], design[kept], cap_rank)
        z = np.where(finite, (y - design @ beta) / sigma, np.inf)
        scale = max(1.0, _robust_scale(z[kept]))
        new_kept = finite & (np.abs(z) <= clip_sigma * scale)
        if new_kept.sum() <= n_par or np.array_equal(new_kept, kept):
            converged = np.array_equal(new_kept, kept)
            break
        kept = new_kept
    return beta, cov, kept, chi2_nu, converged


def _robust_scale(z):
    return _MAD_TO_SIGMA * float(np.median(np.abs(z - np.median(z)))) if z.size else 0.0


def _weighted_fit(y, sigma, design, cap_rank):
    weight = 1.0 / sigma**2
    if cap_rank > 1 and weight.size >= cap_rank:
        weight = np.minimum(weight, np.partition(weight, weight.size - cap_rank)[weight.size - cap_rank])
    normal = design.T @ (weight[:, None] * design)
    inverse = np.linalg.pinv(normal)
    beta = inverse @ (design.T @ (weight * y))
    meat = design.T @ ((weight**2 * sigma**2)[:, None] * design)
    cov = inverse @ meat @ inverse  # sandwich: exact for any fixed weights
    dof = y.size - design.shape[1]
    chi2_nu = float(np.sum(((y - design @ beta) / sigma) ** 2) / dof) if dof > 0 else np.nan
    if dof > 0 and chi2_nu > 1.0:
        cov = cov * chi2_nu
    return beta, cov, chi2_nu


def _result(beta, cov, kept, finite, offset, design, chi2_nu, converged, fit_k, fit_c, k_fixed,
            c_fixed, x_air, colours):
    index = {"zp": 0}
    if fit_k:
        index["k"] = len(index)
    if fit_c:
        index["c"] = len(index)
    full_cov = np.zeros((3, 3))
    slots = [("zp", 0), ("k", 1), ("c", 2)]
    for name_i, slot_i in slots:
        for name_j, slot_j in slots:
            if name_i in index and name_j in index:
                full_cov[slot_i, slot_j] = cov[index[name_i], index[name_j]]
    k = float(beta[index["k"]]) if fit_k else k_fixed
    c = float(beta[index["c"]]) if fit_c else c_fixed
    residuals = np.where(finite, offset - design @ beta, np.nan)
    n_used, n_available = int(kept.sum()), int(finite.sum())
    flags = 0
    if n_used < 20:
        flags |= ZP_FLAG_FEW_STARS
    if np.isfinite(chi2_nu) and chi2_nu > 3.0:
        flags |= ZP_FLAG_HIGH_CHI2
    if n_used < 0.8 * n_available:
        flags |= ZP_FLAG_MANY_CLIPPED
    if fit_c and np.ptp(colours[kept]) < 0.3:
        flags |= ZP_FLAG_NARROW_COLOUR
    if not converged:
        flags |= ZP_FLAG_NOT_CONVERGED
    used = kept.copy()
    residuals.flags.writeable = False
    used.flags.writeable = False
    full_cov.flags.writeable = False
    return ZeroPointResult(
        zp=float(beta[0]), zp_err=float(np.sqrt(full_cov[0, 0])),
        zp_scatter=_MAD_TO_SIGMA * float(np.median(np.abs(residuals[used] - np.median(residuals[used])))),
        chi2_nu=chi2_nu, n_used=n_used, n_available=n_available,
        colour_term=c, colour_term_err=float(np.sqrt(full_cov[2, 2])), colour_term_fitted=fit_c,
        extinction=k, extinction_err=float(np.sqrt(full_cov[1, 1])), extinction_fitted=fit_k,
        airmass=float(np.mean(x_air[kept])), flags=flags, residuals=residuals, used=used,
        covariance=full_cov,
    )
