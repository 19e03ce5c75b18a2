"""Seeing from the Fried parameter (Fried 1965; Morujão et al. 2023 eqs. 23-24).

``seeing = SEEING_CONSTANT * lambda / r0(lambda)`` [rad], with ``r0`` scaled to ``lambda`` as
``lambda^(6/5)`` and to zenith as ``r0_zenith = r0 * X^(3/5)`` for airmass ``X``.
``SEEING_CONSTANT`` = 0.9759 is the FWHM of the Kolmogorov long-exposure PSF in lambda/r0
(Dierickx 1992; Turlib uses it; aotools rounds it to 0.98).
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import ParameterError

SEEING_CONSTANT = 0.9759
ARCSEC_PER_RADIAN = 180.0 / np.pi * 3600.0
REFERENCE_WAVELENGTH = 500e-9  # m, where dancekit quotes r0 and seeing


def r0_at_zenith(r0, airmass: float = 1.0):
    """Zenith r0 [m] from a line-of-sight r0 [m] at ``airmass`` X >= 1: r0 * X^(3/5)."""
    r0 = np.asarray(r0, dtype=float)
    if not np.isfinite(airmass) or airmass < 1.0:
        raise ParameterError(f"airmass must be a finite number >= 1, got {airmass!r}")
    if np.any(~np.isfinite(r0)) or np.any(r0 <= 0):
        raise ParameterError(f"r0 must be finite and positive in metres, got {r0!r}")
    return r0 * airmass ** 0.6


def seeing_from_r0(r0, r0_err=None, airmass: float = 1.0, wavelength: float = REFERENCE_WAVELENGTH):
    """Zenith seeing [arcsec] at ``wavelength`` from a line-of-sight r0 [m] given at 500 nm.

    Returns ``(seeing, seeing_err)``; ``seeing_err = seeing * r0_err / r0`` (eq. 24; ``nan``
    when ``r0_err`` is None). Airmass and wavelength are taken as exact.
    """
    if not np.isfinite(wavelength) or wavelength <= 0:
        raise ParameterError(f"wavelength must be a positive length in metres, got {wavelength!r}")
    r0_zen = r0_at_zenith(r0, airmass) * (wavelength / REFERENCE_WAVELENGTH) ** 1.2
    seeing = SEEING_CONSTANT * wavelength / r0_zen * ARCSEC_PER_RADIAN
    if r0_err is None:
        err = np.full_like(seeing, np.nan)
    else:
        r0_err = np.asarray(r0_err, dtype=float)
        if np.any(r0_err < 0):
            raise ParameterError(f"r0 uncertainty must be >= 0 m, got {r0_err!r}")
        err = seeing * r0_err / np.asarray(r0, dtype=float)
    if seeing.ndim == 0:
        return float(seeing), float(err)
    return seeing, err


def r0_from_seeing(seeing, wavelength: float = REFERENCE_WAVELENGTH):
    """r0 [m] at ``wavelength`` from a FWHM seeing [arcsec] at that wavelength (inverse of eq. 23)."""
    seeing = np.asarray(seeing, dtype=float)
    return SEEING_CONSTANT * wavelength / (seeing / ARCSEC_PER_RADIAN)


def site_monitor_at_500nm(seeing: float, r0: float, wavelength: float | None = None) -> tuple[float, float]:
    """A site monitor's zenith (seeing [arcsec], r0 [m]) brought to 500 nm; NaN stays NaN.

    AOT gives both at the monitor's reference ``wavelength`` [m] (None: taken as 500 nm); r0 scales
    as lambda^(6/5) and the seeing as lambda^(-1/5). The one missing is derived from the other.
    """
    lam = REFERENCE_WAVELENGTH if wavelength is None else float(wavelength)
    if not (np.isfinite(lam) and lam > 0):
        raise ParameterError(f"monitor wavelength must be a positive length in metres, got {wavelength!r}")
    seeing_500 = float(seeing) * (lam / REFERENCE_WAVELENGTH) ** 0.2
    r0_500 = float(r0) * (REFERENCE_WAVELENGTH / lam) ** 1.2
    if not np.isfinite(r0_500) and np.isfinite(seeing_500) and seeing_500 > 0:
        r0_500 = float(r0_from_seeing(seeing_500))
    if not np.isfinite(seeing_500) and np.isfinite(r0_500) and r0_500 > 0:
        seeing_500 = float(seeing_from_r0(r0_500)[0])
    return seeing_500, r0_500


def effective_outer_scale(layers_l0, weights=None) -> float:
    """One L0 [m] for several layers: (sum w_l L0_l^(1/3) / sum w_l)^3 (Borgnino 1990, the outer
    scale that sets the angle-of-arrival variance); ``weights`` the Cn2 fractions (None: equal).
    NaN for no layers."""
    l0 = np.asarray(layers_l0, dtype=float).ravel()
    w = np.ones_like(l0) if weights is None or np.size(weights) != l0.size else np.asarray(weights, dtype=float).ravel()
    ok = np.isfinite(l0) & (l0 > 0) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    return float((np.sum(w[ok] * l0[ok] ** (1.0 / 3.0)) / np.sum(w[ok])) ** 3)
