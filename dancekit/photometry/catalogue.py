"""Reference catalogue of standard stars: positions (radians), magnitudes and colours.

A reference catalogue is a set of plain arrays (as read from Gaia, Pan-STARRS, a Landolt
table): ``ra``, ``dec`` in radians (ICRS), ``mag`` in the band being calibrated, optional
``mag_err`` (1σ, mag) and optional ``colour`` (mag, e.g. g − r) used for the colour term.
The arrays are copied and frozen, so a caller's arrays are never aliased or modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import InputError

ARCSEC = np.pi / 180.0 / 3600.0
"""One arcsecond in radians (for converting user-facing radii at the edges)."""


def _frozen(values, name: str, n: int | None) -> np.ndarray:
    array = np.array(values, dtype=float, copy=True)
    if array.ndim != 1:
        raise InputError(
            f"reference catalogue column {name!r} must be a 1-D array, got {array.ndim} dimensions"
        )
    if n is not None and array.size != n:
        raise InputError(
            f"reference catalogue column {name!r} has {array.size} rows but 'ra' has {n}; "
            "all columns must have the same length"
        )
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class ReferenceCatalogue:
    """Standard stars to calibrate against.

    Attributes
    ----------
    ra, dec : right ascension and declination, radians (ICRS), shape (N,).
    mag : reference magnitude in the calibrated band, mag, shape (N,).
    mag_err : 1σ error of ``mag``, mag, shape (N,) (zeros when the catalogue gives none).
    colour : colour index used for the colour term, mag, shape (N,), or None.
    """

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    mag_err: np.ndarray
    colour: np.ndarray | None

    def __len__(self) -> int:
        return int(self.ra.size)


def reference_catalogue(ra, dec, mag, mag_err=None, colour=None) -> ReferenceCatalogue:
    """Validate and freeze reference-catalogue arrays.

    Parameters
    ----------
    ra, dec : array-like, radians. Right ascension in [0, 2π) (wrapped), declination in
        [−π/2, π/2].
    mag : array-like, mag. Non-finite magnitudes are allowed (those stars are rejected later
        and counted as ``bad reference magnitude``).
    mag_err : array-like, mag, ≥ 0, optional (zeros when absent).
    colour : array-like, mag, optional.

    Raises
    ------
    InputError : columns of different lengths, an empty catalogue, positions out of range,
        negative magnitude errors.
    """
    ra_arr = _frozen(ra, "ra", None)
    n = ra_arr.size
    if n == 0:
        raise InputError("the reference catalogue is empty: it needs at least one star")
    dec_arr = _frozen(dec, "dec", n)
    if not (np.all(np.isfinite(ra_arr)) and np.all(np.isfinite(dec_arr))):
        raise InputError("reference catalogue positions contain NaN or inf: every star needs ra and dec")
    if np.any(np.abs(dec_arr) > np.pi / 2 + 1e-12):
        bad = dec_arr[np.argmax(np.abs(dec_arr))]
        raise InputError(
            f"reference catalogue declination {bad:.4g} rad is outside [-pi/2, pi/2]: "
            "positions must be given in radians"
        )
    ra_arr = _frozen(np.mod(ra_arr, 2 * np.pi), "ra", n)
    mag_arr = _frozen(mag, "mag", n)
    err_arr = _frozen(np.zeros(n) if mag_err is None else mag_err, "mag_err", n)
    if np.any(err_arr < 0):
        raise InputError(
            f"reference catalogue mag_err has negative values (min {np.nanmin(err_arr):.3g}); "
            "errors must be >= 0 mag"
        )
    colour_arr = None if colour is None else _frozen(colour, "colour", n)
    return ReferenceCatalogue(ra=ra_arr, dec=dec_arr, mag=mag_arr, mag_err=err_arr, colour=colour_arr)
