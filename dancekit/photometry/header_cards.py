"""FITS header cards that record a zero-point fit (the lead's io layer writes them).

Conventions (see ``shared/notes/dark_zp.md`` §3):

* ``PHOTZP``/``PHOTZPER`` — ESO Phase 3: mag = −2.5 log10(flux in the image's ADU) + PHOTZP,
  for this exposure (its exposure time, gain and airmass), colour 0.
* ``MAGZPT``/``MAGZRR`` — CASU/UKIDSS: mag = MAGZPT − 2.5 log10(ADU / EXPTIME)
  − EXTINCT·(AIRMASS − 1), i.e. the zero point of ADU/s at airmass 1.
* ``NUMZPT`` (stars used, CASU) and ``NUMZPTAV`` (stars offered to the fit), ``ZPSTD``,
  ``ZPCHI2``, colour term ``ZPCOLOR`` (± ``ZPCOLERR``, fitted or fixed ``ZPCOLFIT``), extinction
  ``EXTINCT`` (± ``EXTINERR``, ``EXTINFIT``), airmass ``ZPAIRMAS`` and the fit flags ``ZPFLAG``.

From the fitted model m_ref − m_inst = ZP − k·X + c·colour with m_inst = −2.5 log10(F g / t):
PHOTZP = ZP − k·X − 2.5 log10(g / t) and MAGZPT = ZP − k − 2.5 log10(g).
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import ParameterError
from dancekit.photometry.zeropoint_fit import ZeroPointResult

ZP_FLAG_FAILED = 32  # no zero point could be fitted (written by ``failed_zeropoint_cards``)


def zeropoint_header_cards(result: ZeroPointResult, *, gain: float, exptime: float,
                           airmass: float | None = None) -> list[tuple[str, object, str]]:
    """Header cards (key, value, comment) for a fitted zero point.

    Parameters
    ----------
    result : the fit. gain : e⁻/ADU of the image. exptime : seconds.
    airmass : airmass of the image (default: ``result.airmass``, the mean of the used stars).
    """
    if not (np.isfinite(gain) and gain > 0) or not (np.isfinite(exptime) and exptime > 0):
        raise ParameterError(f"gain (e-/ADU) and exptime (s) must be > 0, got {gain!r}, {exptime!r}")
    x = result.airmass if airmass is None else float(airmass)
    if not (np.isfinite(x) and x >= 1.0):
        raise ParameterError(f"airmass must be >= 1, got {airmass!r}")
    zp_here, err_here = result.zeropoint_at(x)
    zp_one, err_one = result.zeropoint_at(1.0)
    photzp = zp_here - 2.5 * np.log10(gain / exptime)
    magzpt = zp_one - 2.5 * np.log10(gain)
    return [
        ("PHOTZP", _f(photzp), "[mag] mag=-2.5log10(ADU)+PHOTZP, colour 0"),
        ("PHOTZPER", _f(err_here), "[mag] 1-sigma error of PHOTZP"),
        ("MAGZPT", _f(magzpt), "[mag] m=MAGZPT-2.5lg(ADU/s)-EXTINCT(X-1)"),
        ("MAGZRR", _f(err_one), "[mag] 1-sigma error of MAGZPT"),
        ("NUMZPT", int(result.n_used), "stars used in the zero-point fit"),
        ("NUMZPTAV", int(result.n_available), "stars available before clipping"),
        ("ZPSTD", _f(result.zp_scatter), "[mag] robust rms of star residuals"),
        ("ZPCHI2", _f(result.chi2_nu), "reduced chi2 before error inflation"),
        ("ZPCOLOR", _f(result.colour_term), "[mag/mag] colour term c: +c*colour"),
        ("ZPCOLERR", _f(result.colour_term_err), "[mag/mag] error of ZPCOLOR (0 if fixed)"),
        ("ZPCOLFIT", bool(result.colour_term_fitted), "colour term fitted (T) or fixed (F)"),
        ("EXTINCT", _f(result.extinction), "[mag/airmass] extinction k: -k*X"),
        ("EXTINERR", _f(result.extinction_err), "[mag/airmass] error of EXTINCT (0 if fixed)"),
        ("EXTINFIT", bool(result.extinction_fitted), "extinction fitted (T) or fixed (F)"),
        ("ZPAIRMAS", _f(x), "airmass used for PHOTZP"),
        ("ZPFLAG", int(result.flags), "zero-point fit flags (0 = clean)"),
    ]


def failed_zeropoint_cards(n_used: int = 0) -> list[tuple[str, object, str]]:
    """Cards marking an exposure whose calibration failed (ESO uses PHOTZPER = 999)."""
    return [
        ("PHOTZPER", 999.0, "[mag] 999: zero-point calibration failed"),
        ("NUMZPT", int(n_used), "stars usable for the zero-point fit"),
        ("ZPFLAG", ZP_FLAG_FAILED, "zero-point calibration failed"),
    ]


def _f(value) -> float:
    return float(value)
