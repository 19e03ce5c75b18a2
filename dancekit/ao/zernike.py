"""Zernike polynomials in Noll's ordering and normalisation (Noll 1976, JOSA 66, 207).

Mode ``j`` (1-based Noll index) has radial order ``n`` and signed azimuthal order ``m``: ``m > 0``
is the cosine mode (even ``j``), ``m < 0`` the sine mode (odd ``j``), ``m = 0`` rotationally
symmetric. Polynomials are unit-RMS over the unit disc (Noll normalisation), so a coefficient of
1 rad gives 1 rad RMS of phase. Coordinates are normalised pupil coordinates (radius 1).

The polynomials and their gradients are evaluated in Cartesian form,
``rho^(n-2k) cos(m theta) = (x^2+y^2)^((n-2k-|m|)/2) Re((x+iy)^|m|)``, which is a polynomial and
therefore has no singularity at the centre and extends smoothly beyond the disc.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from dancekit.errors import ParameterError


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal order ``m`` of Noll mode ``j`` (j >= 1)."""
    j = _check_noll(j)
    n = int((-1.0 + np.sqrt(8.0 * (j - 1) + 1.0)) / 2.0)
    p = j - n * (n + 1) // 2
    k = n % 2
    m = ((p + k) // 2) * 2 - k
    if m != 0 and j % 2 == 1:
        m = -m
    return n, m


def noll_orders(noll) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`noll_to_nm`: arrays ``(n, m)`` for an iterable of Noll indices."""
    pairs = [noll_to_nm(int(j)) for j in np.atleast_1d(noll)]
    n = np.array([p[0] for p in pairs], dtype=int)
    m = np.array([p[1] for p in pairs], dtype=int)
    return n, m


def n_modes_to_order(n_max: int) -> int:
    """Highest Noll index of radial order ``n_max`` (Noll 1..(n+1)(n+2)/2): 15 for n=4, 45 for n=8."""
    if int(n_max) != n_max or n_max < 0:
        raise ParameterError(f"radial order must be a non-negative integer, got {n_max!r}")
    return (int(n_max) + 1) * (int(n_max) + 2) // 2


def _check_noll(j) -> int:
    if int(j) != j or j < 1:
        raise ParameterError(f"Noll index must be an integer >= 1, got {j!r}")
    return int(j)


def _radial_terms(n: int, m: int):
    """(coefficient, power of rho^2 beyond |m|) of R_n^|m| (Noll 1976 eq. 2)."""
    ma = abs(m)
    terms = []
    for k in range((n - ma) // 2 + 1):
        c = (-1) ** k * factorial(n - k) / (
            factorial(k) * factorial((n + ma) // 2 - k) * factorial((n - ma) // 2 - k))
        terms.append((c, (n - 2 * k - ma) // 2))
    return terms


def _norm(n: int, m: int) -> float:
    return np.sqrt(n + 1.0) if m == 0 else np.sqrt(2.0 * (n + 1.0))


def zernike(j: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Noll Zernike ``Z_j(x, y)`` [rad per rad of coefficient] at normalised pupil coordinates.

    Defined (as a polynomial) everywhere; the caller applies the pupil mask.
    """
    n, m = noll_to_nm(j)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    r2 = x * x + y * y
    zm = (x + 1j * y) ** abs(m)
    angular = zm.real if m >= 0 else zm.imag
    radial = sum(c * r2 ** p for c, p in _radial_terms(n, m))
    return _norm(n, m) * radial * angular


def zernike_gradient(j: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic gradient ``(dZ_j/dx, dZ_j/dy)`` with respect to normalised pupil coordinates.

    Divide by the pupil radius [m] to get rad/m.
    """
    n, m = noll_to_nm(j)
    ma = abs(m)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    r2 = x * x + y * y
    z = x + 1j * y
    zm = z ** ma
    dzm = ma * z ** (ma - 1) if ma > 0 else np.zeros_like(z)
    # d/dx z^m = m z^(m-1); d/dy z^m = i m z^(m-1)
    if m >= 0:
        ang, dang_dx, dang_dy = zm.real, dzm.real, (1j * dzm).real
    else:
        ang, dang_dx, dang_dy = zm.imag, dzm.imag, (1j * dzm).imag
    radial = np.zeros_like(r2)
    dradial = np.zeros_like(r2)  # d radial / d(r2)
    for c, p in _radial_terms(n, m):
        radial = radial + c * r2 ** p
        if p > 0:
            dradial = dradial + c * p * r2 ** (p - 1)
    gx = dradial * 2.0 * x * ang + radial * dang_dx
    gy = dradial * 2.0 * y * ang + radial * dang_dy
    norm = _norm(n, m)
    return norm * gx, norm * gy


def pupil_grid(n_pixels: int, obstruction: float = 0.0):
    """Pixel-centre grid over [-1, 1]^2 and the annular pupil mask.

    Returns ``(x, y, mask)``; ``obstruction`` is the central obstruction diameter ratio.
    """
    if int(n_pixels) != n_pixels or n_pixels < 2:
        raise ParameterError(f"n_pixels must be an integer >= 2, got {n_pixels!r}")
    if not 0.0 <= obstruction < 1.0:
        raise ParameterError(f"obstruction must be in [0, 1), got {obstruction!r}")
    c = (np.arange(n_pixels) + 0.5) / n_pixels * 2.0 - 1.0
    x, y = np.meshgrid(c, c, indexing="xy")
    r = np.hypot(x, y)
    mask = (r <= 1.0) & (r >= obstruction)
    return x, y, mask
