"""Von Kármán covariance of Noll-normalised Zernike coefficients.

All covariances are in rad^2 of phase at the wavelength where ``r0`` is given (500 nm in
dancekit), for a full (unobstructed) disc of diameter ``D``; ``r0``, ``L0`` and ``D`` in metres.

Because the von Kármán spectrum is ``0.0229 r0^(-5/3) (f^2 + 1/L0^2)^(-11/6)``, every covariance
factorises as ``(D/r0)^(5/3) * g_ij(D/L0)``; :func:`normalised_covariance_matrix` returns (and
caches) ``g`` so that fits only rescale it.

Two independent implementations:

* closed form with generalised hypergeometric series (Takato & Yamaguchi 1995, JOSA A 12, 958;
  Conan 2000 thesis; as ported in OOMAO and Turlib ``nz_cov_coeff``), and its Kolmogorov limit
  ``L0 -> inf`` (Noll 1976 eq. 25 / Wang & Markey 1978), in :func:`zernike_covariance`;
* direct numerical integration of the spectrum against the Zernike filter functions
  ``|Q_j(f)|^2 = (n+1) 4 J_{n+1}(pi D f)^2 / (pi D f)^2`` (Noll 1976 eq. 10), in
  :func:`zernike_covariance_numerical` (slow, used by the tests).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import integrate, special

from dancekit.ao.zernike import noll_orders
from dancekit.errors import ParameterError

#: von Kármán phase PSD constant: (24/5 Gamma(6/5))^(5/6) Gamma(11/6)^2 / (2 pi^(11/3)) = 0.0229
PSD_CONSTANT = (24.0 / 5.0 * special.gamma(6.0 / 5.0)) ** (5.0 / 6.0) * special.gamma(
    11.0 / 6.0) ** 2 / (2.0 * np.pi ** (11.0 / 3.0))

_P = 11.0 / 6.0
_VK_CONSTANT = (4.0 * special.gamma(11.0 / 6.0) ** 2 / np.pi ** (14.0 / 3.0)) * (
    24.0 / 5.0 * special.gamma(6.0 / 5.0)) ** (5.0 / 6.0)
#: Kolmogorov Zernike covariance constant (Noll 1976 with the exact PSD constant): 2.24606
KOLMOGOROV_CONSTANT = special.gamma(11.0 / 6.0) ** 2 * special.gamma(14.0 / 3.0) / (
    2.0 ** (8.0 / 3.0) * np.pi) * (24.0 / 5.0 * special.gamma(6.0 / 5.0)) ** (5.0 / 6.0)


def _check_turbulence(r0, outer_scale, diameter):
    for name, v in (("r0", r0), ("telescope diameter", diameter)):
        if not np.isfinite(v) or v <= 0:
            raise ParameterError(f"{name} must be a finite positive length in metres, got {v!r}")
    if np.isnan(outer_scale) or outer_scale <= 0:
        raise ParameterError(
            f"outer scale L0 must be positive in metres (inf for Kolmogorov), got {outer_scale!r}")


def _pfq_series(upper: np.ndarray, lower: np.ndarray, z: float, rtol: float = 1e-15,
                max_terms: int = 4000) -> np.ndarray:
    """Vectorised generalised hypergeometric series sum_k prod (u)_k / prod (l)_k z^k / k!.

    ``upper`` (P, p) and ``lower`` (P, q): one series per row, all with argument ``z``.
    """
    term = np.ones(upper.shape[0])
    total = term.copy()
    for k in range(max_terms):
        term = term * np.prod(upper + k, axis=1) / np.prod(lower + k, axis=1) * z / (k + 1.0)
        total = total + term
        if np.all(np.abs(term) <= rtol * np.abs(total)) and k > 2:
            return total
    raise RuntimeError("hypergeometric series did not converge")  # pragma: no cover


def _g_von_karman(ni: np.ndarray, nj: np.ndarray, x: float) -> np.ndarray:
    """Closed-form g(D/L0) for same-m pairs with radial orders ni, nj (Takato & Yamaguchi 1995)."""
    g = special.gamma
    alpha = ni + 1.0
    beta = nj + 1.0
    s = alpha + beta
    a = np.pi * x
    z = a * a
    upper1 = np.stack([(s + 1.0) / 2.0, (s + 2.0) / 2.0, s / 2.0], axis=1)
    lower1 = np.stack([1.0 - _P + s / 2.0, 1.0 + s, 1.0 + alpha, 1.0 + beta], axis=1)
    t1 = (g(upper1[:, 0]) * g(upper1[:, 1]) * g(upper1[:, 2]) * g(_P - s / 2.0)
          / (g(1.0 + s) * g(1.0 + alpha) * g(1.0 + beta)) * a ** s * _pfq_series(upper1, lower1, z))
    upper2 = np.tile([0.5 + _P, 1.0 + _P, _P], (len(ni), 1))
    lower2 = np.stack([1.0 - s / 2.0 + _P, 1.0 + s / 2.0 + _P, 1.0 + (alpha - beta) / 2.0 + _P,
                       1.0 + (beta - alpha) / 2.0 + _P], axis=1)
    t2 = (g(s / 2.0 - _P) * g(0.5 + _P) * g(1.0 + _P) * g(_P)
          / (g(1.0 + s / 2.0 + _P) * g(1.0 + (alpha - beta) / 2.0 + _P)
             * g(1.0 + (beta - alpha) / 2.0 + _P)) * a ** (2.0 * _P) * _pfq_series(upper2, lower2, z))
    integral = (t1 + t2) / (2.0 * np.sqrt(np.pi) * g(_P))
    return _VK_CONSTANT * x ** (-11.0 / 3.0) * integral


def _g_kolmogorov(ni: np.ndarray, nj: np.ndarray) -> np.ndarray:
    """Kolmogorov limit of g (Noll 1976; Wang & Markey 1978), per (D/r0)^(5/3)."""
    g = special.gamma
    h = (ni + nj) / 2.0
    d = (ni - nj) / 2.0
    return KOLMOGOROV_CONSTANT * g(h - 5.0 / 6.0) / (
        g(h + 23.0 / 6.0) * g(d + 17.0 / 6.0) * g(-d + 17.0 / 6.0))


def _normalised_pairs(noll_i, noll_j, x: float) -> np.ndarray:
    ni, mi = noll_orders(noll_i)
    nj, mj = noll_orders(noll_j)
    out = np.zeros(len(ni))
    same = mi == mj
    if not np.any(same):
        return out
    a_n, b_n = ni[same].astype(float), nj[same].astype(float)
    sign = (-1.0) ** ((ni[same] + nj[same] - 2 * np.abs(mi[same])) // 2)
    core = _g_kolmogorov(a_n, b_n) if x == 0.0 else _g_von_karman(a_n, b_n, x)
    out[same] = sign * np.sqrt((a_n + 1.0) * (b_n + 1.0)) * core
    return out


@lru_cache(maxsize=4096)
def _cached_matrix(noll: tuple, x: float) -> np.ndarray:
    noll_arr = np.array(noll)
    ii, jj = np.triu_indices(len(noll_arr))
    vals = _normalised_pairs(noll_arr[ii], noll_arr[jj], x)
    mat = np.zeros((len(noll_arr), len(noll_arr)))
    mat[ii, jj] = vals
    mat[jj, ii] = vals
    mat.setflags(write=False)
    return mat


def normalised_covariance_matrix(noll, diameter_over_outer_scale: float) -> np.ndarray:
    """Covariance matrix of the given Noll modes for ``D/r0 = 1`` [rad^2], cached.

    ``diameter_over_outer_scale`` is ``D/L0`` (0 for Kolmogorov). Multiply by ``(D/r0)^(5/3)``.
    The returned array is read-only and shared: copy it before modifying.
    """
    noll = tuple(int(j) for j in np.atleast_1d(noll))
    x = float(diameter_over_outer_scale)
    if not np.isfinite(x) or x < 0:
        raise ParameterError(f"D/L0 must be finite and >= 0, got {x!r}")
    if min(noll) < 1 or (x == 0.0 and min(noll) < 2):
        raise ParameterError(
            f"Noll indices must be >= 1 (>= 2 for L0 = inf: piston variance is infinite), got {min(noll)}")
    return _cached_matrix(noll, x)


def zernike_covariance(noll_i, noll_j, r0: float, outer_scale: float, diameter: float) -> np.ndarray:
    """Closed-form ``<a_i a_j>`` [rad^2] for broadcast arrays of Noll indices.

    r0 [m] and the result refer to the same wavelength; ``outer_scale`` L0 [m] may be ``inf``
    (Kolmogorov). Zero unless the signed azimuthal orders are equal.
    """
    _check_turbulence(r0, outer_scale, diameter)
    bi, bj = np.broadcast_arrays(np.asarray(noll_i, dtype=int), np.asarray(noll_j, dtype=int))
    if bi.size and (min(bi.min(), bj.min()) < 1 or (np.isinf(outer_scale) and min(bi.min(), bj.min()) < 2)):
        raise ParameterError("Noll indices must be >= 1 (>= 2 for L0 = inf: piston variance is infinite)")
    x = 0.0 if np.isinf(outer_scale) else diameter / outer_scale
    vals = _normalised_pairs(bi.ravel(), bj.ravel(), x) if bi.size else np.zeros(0)
    return (diameter / r0) ** (5.0 / 3.0) * vals.reshape(bi.shape)


def zernike_covariance_matrix(noll, r0: float, outer_scale: float, diameter: float) -> np.ndarray:
    """Full covariance matrix [rad^2] of the listed Noll modes (closed form, cached in D/L0)."""
    _check_turbulence(r0, outer_scale, diameter)
    x = 0.0 if np.isinf(outer_scale) else diameter / outer_scale
    return (diameter / r0) ** (5.0 / 3.0) * normalised_covariance_matrix(noll, x)


def zernike_variance(noll, r0: float, outer_scale: float, diameter: float) -> np.ndarray:
    """Variances ``<a_j^2>`` [rad^2] of the listed Noll modes (closed form)."""
    noll = np.atleast_1d(noll)
    return zernike_covariance(noll, noll, r0, outer_scale, diameter)


def zernike_covariance_numerical(noll_i: int, noll_j: int, r0: float, outer_scale: float,
                                 diameter: float) -> float:
    """``<a_i a_j>`` [rad^2] by quadrature of the von Kármán spectrum (Noll 1976 eq. 10).

    Independent of the hypergeometric closed form; about 0.1 s per element.
    """
    _check_turbulence(r0, outer_scale, diameter)
    (ni,), (mi,) = noll_orders([noll_i])
    (nj,), (mj,) = noll_orders([noll_j])
    if mi != mj:
        return 0.0
    inv_l0_sq = 0.0 if np.isinf(outer_scale) else 1.0 / outer_scale ** 2
    sign = (-1.0) ** ((ni + nj - 2 * abs(mi)) // 2)
    pref = sign * np.sqrt((ni + 1.0) * (nj + 1.0)) * PSD_CONSTANT * r0 ** (-5.0 / 3.0)

    def integrand(u):  # u = pi D f
        f = u / (np.pi * diameter)
        filt = 4.0 * special.jv(ni + 1, u) * special.jv(nj + 1, u) / (u * u)
        return 2.0 * np.pi * f * (f * f + inv_l0_sq) ** (-11.0 / 6.0) * filt / (np.pi * diameter)

    # The integrand decays as u^(-17/3): beyond u = 4000 it contributes < 1e-15 relative.
    edges = [0.0, 1.0, 5.0, 20.0, 60.0, 200.0, 1000.0, 4000.0]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        total += integrate.quad(integrand, lo, hi, limit=2000, epsabs=0.0, epsrel=1e-11)[0]
    return float(pref * total)
