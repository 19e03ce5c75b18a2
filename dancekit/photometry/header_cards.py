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
from dancekit.photometry.zeropoint_fit import (
    ZP_FLAG_FEW_STARS, ZP_FLAG_HIGH_CHI2, ZP_FLAG_MANY_CLIPPED, ZP_FLAG_NARROW_COLOUR, ZP_FLAG_NOT_CONVERGED,
    ZeroPointResult,
)

ZP_FLAG_FAILED = 32  # no zero point could be fitted (written by ``failed_zeropoint_cards``)
ZP_FLAG_NO_APERTURE_CORRECTION = 64  # asked for, not measured: PHOTZP is for aperture magnitudes
ZP_FLAG_GAIN_UNKNOWN = 128  # gain estimated from the sky or unknown: PHOTZPER from assumed noise
# What each ZPFLAG bit means: written as COMMENT cards beside ZPFLAG and listed in `zeropoint --help`.
ZP_FLAG_MEANINGS = {
    ZP_FLAG_FEW_STARS: "fewer than 20 stars used",
    ZP_FLAG_HIGH_CHI2: "reduced chi2 above 3: PHOTZPER inflated by it",
    ZP_FLAG_MANY_CLIPPED: "more than 20% of the stars clipped",
    ZP_FLAG_NARROW_COLOUR: "colour term fitted over less than 0.3 mag of colour",
    ZP_FLAG_NOT_CONVERGED: "clipping did not converge",
    ZP_FLAG_FAILED: "calibration failed (no zero point)",
    ZP_FLAG_NO_APERTURE_CORRECTION: "no aperture correction: PHOTZP for aperture mags",
    ZP_FLAG_GAIN_UNKNOWN: "gain estimated from the sky or unknown (ZPGAINSR)",
}
_FLAG_COMMENT_PREFIX = "ZPFLAG bit "


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


def zpflag_comments() -> list[str]:
    """COMMENT lines explaining every ZPFLAG bit (each under 72 characters)."""
    return [f"{_FLAG_COMMENT_PREFIX}{bit:>3} = {meaning}" for bit, meaning in sorted(ZP_FLAG_MEANINGS.items())]


def is_zpflag_comment(text: str) -> bool:
    """True for a COMMENT line written by :func:`zpflag_comments` (to replace, not repeat, them)."""
    return str(text).startswith(_FLAG_COMMENT_PREFIX)


def aperture_correction_cards(sources, requested: bool) -> list[tuple[str, object, str]]:
    """Cards saying how aperture magnitudes became total ones (a SourceList's correction).

    requested : an aperture correction was asked for (False: ``APCORMTH = 'off'``).
    """
    method = sources.aperture_correction_method if requested else "off"
    cards = [
        ("APRADIUS", float(sources.aperture_radius), "[pixel] aperture radius (Kron: fallback)"),
        ("ZPFWHM", _or_minus_one(sources.fwhm), "[pixel] median FWHM of bright isolated stars"),
        ("APCOR", float(sources.aperture_correction), "[mag] m_total = m_aper - APCOR"),
        ("APCORERR", _or_minus_one(sources.aperture_correction_err), "[mag] error of APCOR (in PHOTZPER)"),
        ("APCORMTH", method, "APCOR from: growth curve, moffat PSF, none, off"),
        ("APCORN", int(sources.n_aperture_correction), "stars APCOR was measured on"),
    ]
    if method == "moffat":
        cards += [("APPSFFW", _or_minus_one(sources.moffat_fwhm), "[pixel] FWHM of the Moffat PSF fitted for APCOR"),
                  ("APPSFBET", _or_minus_one(sources.moffat_beta), "Moffat beta of that PSF")]
    return cards


def failed_zeropoint_cards(n_used: int = 0) -> list[tuple[str, object, str]]:
    """Cards marking an exposure whose calibration failed (ESO uses PHOTZPER = 999)."""
    return [
        ("PHOTZPER", 999.0, "[mag] 999: zero-point calibration failed"),
        ("NUMZPT", int(n_used), "stars usable for the zero-point fit"),
        ("ZPFLAG", ZP_FLAG_FAILED, "zero-point calibration failed"),
    ]


def _f(value) -> float:
    return float(value)


def _or_minus_one(value) -> float:
    value = float(value)
    return value if np.isfinite(value) else -1.0
