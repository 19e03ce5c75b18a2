"""Pseudo-open-loop modal coefficients from closed-loop AO telemetry.

Morujão et al. 2023 eqs. 6-8: the turbulence seen by the sensor is the sum of the deformable-
mirror modal coefficients and the residual modes reconstructed from the slopes, paired with a
loop delay. The delay here is a signed integer number of frames ``d``:
``pol[k] = residual[k] + dm[k + d]``. Turlib hard-codes ``d = +2`` (slopes of frame k with
commands of frame k+2); the right sign depends on how the real-time computer logs commands.
The delay must come from the system (AOT ``DELAY`` is already in frames): choosing the ``d``
that minimises the pseudo-open-loop variance does not work; on synthetic closed loops with an
integrator it picks the oldest command tried in most configurations.
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import InputError, ParameterError


def _as_series(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2:
        raise InputError(f"{name} must be a (frames, modes) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN/inf values")
    return arr


def microns_to_radians(values, wavelength: float = 500e-9):
    """Convert wavefront [micron] to phase [rad] at ``wavelength`` [m] (NAOMI modal units)."""
    if not np.isfinite(wavelength) or wavelength <= 0:
        raise ParameterError(f"wavelength must be a positive length in metres, got {wavelength!r}")
    return np.asarray(values, dtype=float) * 1e-6 * 2.0 * np.pi / wavelength


_WAVEFRONT_UNITS = {"m": 1.0, "um": 1e-6, "micron": 1e-6, "nm": 1e-9}


def _unit_factor(unit: str, wavelength: float | None) -> float:
    """Radians at 500 nm per one ``unit`` of modal coefficient."""
    key = str(unit).strip().lower().replace("µ", "u")
    if key in _WAVEFRONT_UNITS:
        return _WAVEFRONT_UNITS[key] * 2.0 * np.pi / 500e-9
    if key in ("rad", "radian", "radians"):
        if wavelength is None or not np.isfinite(wavelength) or wavelength <= 0:
            raise ParameterError(
                f"modal coefficients in rad need the wavelength they are given at (a positive "
                f"length in m), got {wavelength!r}")
        return float(wavelength) / 500e-9
    raise ParameterError(
        f"unknown modal unit '{unit}': use 'rad' (phase at a wavelength) or 'm', 'um', 'nm' of wavefront")


def to_radians_at_500nm(values, unit: str, wavelength: float | None = None) -> np.ndarray:
    """Modal coefficients in ``unit`` -> phase [rad] at 500 nm, the wavelength r0 is quoted at.

    ``unit`` is 'm', 'um' or 'nm' of wavefront (optical path; NAOMI's SPARTA logs micron) or
    'rad' of phase at ``wavelength`` [m] (phase scales as 1/lambda).
    """
    return np.asarray(values, dtype=float) * _unit_factor(unit, wavelength)


def from_radians_at_500nm(values, unit: str, wavelength: float | None = None) -> np.ndarray:
    """Inverse of :func:`to_radians_at_500nm`: phase [rad at 500 nm] -> ``unit``."""
    return np.asarray(values, dtype=float) / _unit_factor(unit, wavelength)


def modes_from_commands(commands, commands_to_modes) -> np.ndarray:
    """DM modal coefficients (T, M) = commands (T, A) @ commands_to_modes (M, A)^T (eq. 6)."""
    c = _as_series("commands", commands)
    m = np.asarray(commands_to_modes, dtype=float)
    if m.ndim != 2 or m.shape[1] != c.shape[1]:
        raise InputError(f"commands_to_modes must be (modes, {c.shape[1]}), got {m.shape}")
    return c @ m.T


def modes_from_slopes(slopes, slopes_to_modes) -> np.ndarray:
    """Residual modes (T, M) from slopes (T, 2, S) or (T, 2S) and a (M, 2, S)/(M, 2S) matrix (eq. 7)."""
    s = np.asarray(slopes, dtype=float)
    r = np.asarray(slopes_to_modes, dtype=float)
    s2 = s.reshape(s.shape[0], -1) if s.ndim >= 2 else s
    r2 = r.reshape(r.shape[0], -1) if r.ndim >= 2 else r
    s2 = _as_series("slopes", s2)
    if r2.ndim != 2 or r2.shape[1] != s2.shape[1]:
        raise InputError(f"slopes_to_modes must map {s2.shape[1]} slopes, got shape {r.shape}")
    return s2 @ r2.T


def pseudo_open_loop_modes(dm_modes, residual_modes, delay: int) -> np.ndarray:
    """``pol[k] = residual[k] + dm[k + delay]`` over the frames where both exist (eq. 8).

    ``dm_modes`` and ``residual_modes`` are (T, M) in the same unit; ``delay`` is signed, in
    frames. Returns (T - |delay|, M).
    """
    dm = _as_series("dm_modes", dm_modes)
    res = _as_series("residual_modes", residual_modes)
    if dm.shape != res.shape:
        raise InputError(f"dm_modes {dm.shape} and residual_modes {res.shape} must have the same shape")
    if int(delay) != delay:
        raise ParameterError(f"delay must be an integer number of frames, got {delay!r}")
    d = int(delay)
    n = dm.shape[0]
    if abs(d) >= n - 1:
        raise InputError(f"delay of {d} frames leaves fewer than 2 of the {n} frames")
    if d >= 0:
        return res[: n - d] + dm[d:]
    return res[-d:] + dm[: n + d]

