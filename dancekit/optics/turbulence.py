"""Integrated turbulence quantities: Fried parameter, seeing, per-layer r0, long-exposure FWHM,
and the analytic diffraction pattern of an annular pupil (reference for tests and for Strehl).

All quantities are SI: metres and radians. Convert arcsec at the edges only
(``1 arcsec = pi / 648000 rad``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from dancekit.errors import ParameterError
from dancekit.optics._validate import obstruction_ratio, outer_scale as _outer_scale, positive

#: Reference wavelength of r0 as usually quoted (m).
R0_REFERENCE_WAVELENGTH = 500e-9


def r0_to_seeing(r0: float, wavelength: float) -> float:
    """Seeing FWHM (rad) of Kolmogorov turbulence: 0.98 lambda / r0 (Dierickx 1992; Roddier 1981).

    r0 (m) must be the Fried parameter *at* ``wavelength`` (m).
    """
    return 0.98 * positive("wavelength", wavelength, "m") / positive("r0", r0, "m")


def seeing_to_r0(seeing: float, wavelength: float) -> float:
    """Fried parameter (m) at ``wavelength`` (m) from a seeing FWHM (rad): r0 = 0.98 lambda / seeing."""
    return 0.98 * positive("wavelength", wavelength, "m") / positive("seeing", seeing, "rad")


def r0_at_wavelength(r0_500: float, wavelength: float) -> float:
    """Fried parameter (m) at ``wavelength`` (m) from r0 at 500 nm: r0 scales as lambda^(6/5)
    (Fried 1966; Roddier 1981 eq. 3.21)."""
    r0_500 = positive("r0_500", r0_500, "m")
    wavelength = positive("wavelength", wavelength, "m")
    return r0_500 * (wavelength / R0_REFERENCE_WAVELENGTH) ** 1.2


def layer_r0(r0_total: float, cn2_fractions) -> np.ndarray:
    """Per-layer Fried parameters (m) of a layered atmosphere.

    r0 integrates Cn^2 as r0^(-5/3) = sum_i r0_i^(-5/3), so a layer carrying the fraction f_i of the
    turbulence has r0_i = r0_total f_i^(-3/5) (Roddier 1981 eq. 3.20). ``cn2_fractions`` (>= 0, at
    least one > 0) are normalised to sum to 1; a zero fraction gives r0_i = inf (a calm layer).
    """
    r0_total = positive("r0_total", r0_total, "m")
    fractions = np.asarray(cn2_fractions, dtype=float).ravel()
    if fractions.size == 0 or not np.all(np.isfinite(fractions)) or np.any(fractions < 0):
        raise ParameterError(
            f"cn2_fractions = {fractions.tolist()!r}: need one or more finite fractions >= 0"
        )
    total = fractions.sum()
    if total <= 0:
        raise ParameterError(f"cn2_fractions = {fractions.tolist()!r}: at least one must be > 0")
    fractions = fractions / total
    with np.errstate(divide="ignore"):
        return r0_total * fractions ** (-0.6)


def von_karman_fwhm(r0: float, outer_scale: float, wavelength: float) -> float:
    """Long-exposure FWHM (rad) of a star through von Karman turbulence, infinite aperture.

    Tokovinin 2002 (PASP 114, 1156) eq. 19: FWHM = 0.976 lambda / r0 sqrt(1 - 2.183 (r0/L0)^0.356),
    valid for L0/r0 > ~20 (the approximation is fitted for 10 < L0/r0 < 1e4); r0 (m) at
    ``wavelength`` (m), L0 (m, ``math.inf`` for Kolmogorov).
    """
    r0 = positive("r0", r0, "m")
    outer_scale = _outer_scale(outer_scale)
    wavelength = positive("wavelength", wavelength, "m")
    factor = 1.0 - 2.183 * (r0 / outer_scale) ** 0.356
    if factor <= 0:
        raise ParameterError(
            f"r0/L0 = {r0 / outer_scale:.3g}: Tokovinin's FWHM formula needs L0 > ~10 r0"
        )
    return 0.976 * wavelength / r0 * math.sqrt(factor)


def _airy_amplitude(x: np.ndarray, obstruction: float) -> np.ndarray:
    """2 J1(x)/x - eps^2 2 J1(eps x)/(eps x), divided by (1 - eps^2): 1 at x = 0."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    outer = np.where(x == 0, 1.0, 2 * special.j1(safe) / safe)
    if obstruction == 0:
        inner = np.zeros_like(outer)
    else:
        ex = obstruction * safe
        inner = obstruction**2 * np.where(x == 0, 1.0, 2 * special.j1(ex) / ex)
    return (outer - inner) / (1 - obstruction**2)


def airy_obstructed(theta, diameter: float, obstruction: float, wavelength: float) -> np.ndarray:
    """Diffraction PSF (per steradian, unit total flux) of an annular pupil at angles ``theta`` (rad).

    I(theta) = (A / lambda^2) [(2 J1(x)/x - eps^2 2 J1(eps x)/(eps x)) / (1 - eps^2)]^2 with
    x = pi D theta / lambda and A = pi D^2 (1 - eps^2) / 4 the collecting area (Born & Wolf 8.5;
    Mahajan 1981, JOSA 71, 75). The peak A / lambda^2 is the unit-flux peak intensity.
    """
    diameter = positive("diameter", diameter, "m")
    obstruction = obstruction_ratio(obstruction)
    wavelength = positive("wavelength", wavelength, "m")
    x = math.pi * diameter * np.abs(np.asarray(theta, dtype=float)) / wavelength
    area = math.pi * diameter**2 * (1 - obstruction**2) / 4
    return area / wavelength**2 * _airy_amplitude(x, obstruction) ** 2


def airy_obstructed_encircled_energy(
    theta, diameter: float, obstruction: float, wavelength: float
) -> np.ndarray:
    """Fraction of the flux within radius ``theta`` (rad) of the annular-pupil diffraction PSF.

    Mahajan 1981 (JOSA 71, 75) eq. 6: EE(x) = [1 - J0^2(x) - J1^2(x) + eps^2 (1 - J0^2(eps x)
    - J1^2(eps x)) - 4 eps int_0^x J1(t) J1(eps t) / t dt] / (1 - eps^2), x = pi D theta / lambda.
    """
    diameter = positive("diameter", diameter, "m")
    eps = obstruction_ratio(obstruction)
    wavelength = positive("wavelength", wavelength, "m")
    xs = math.pi * diameter * np.abs(np.atleast_1d(np.asarray(theta, dtype=float))) / wavelength
    out = np.empty_like(xs)
    for i, x in enumerate(xs):
        value = 1 - special.j0(x) ** 2 - special.j1(x) ** 2
        if eps > 0:
            value += eps**2 * (1 - special.j0(eps * x) ** 2 - special.j1(eps * x) ** 2)
            cross, _ = integrate.quad(
                lambda t: special.j1(t) * special.j1(eps * t) / t if t > 0 else 0.0,
                0.0, x, limit=400,
            )
            value -= 4 * eps * cross
        out[i] = value / (1 - eps**2)
    return out.reshape(np.shape(theta)) if np.ndim(theta) else out[0]
