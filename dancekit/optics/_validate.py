"""Argument checks shared by the optics modules (raise ParameterError naming the bad value)."""

from __future__ import annotations

import math

from dancekit.errors import ParameterError


def positive(name: str, value, unit: str) -> float:
    """``value`` as a float, or ParameterError unless it is finite and > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} = {value!r}: must be a number (in {unit})") from None
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} = {value!r} {unit}: must be a finite number > 0")
    return value


def non_negative(name: str, value, unit: str) -> float:
    """``value`` as a float, or ParameterError unless it is finite and >= 0."""
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ParameterError(f"{name} = {value!r} {unit}: must be a finite number >= 0")
    return value


def obstruction_ratio(obstruction) -> float:
    """The linear central obstruction, or ParameterError unless it lies in [0, 1)."""
    obstruction = float(obstruction)
    if not (0.0 <= obstruction < 1.0):
        raise ParameterError(
            f"obstruction = {obstruction!r}: the linear central obstruction must lie in [0, 1)"
        )
    return obstruction


def outer_scale(value) -> float:
    """The outer scale L0 (m), or ParameterError unless it is > 0 (inf allowed: Kolmogorov)."""
    value = float(value)
    if math.isnan(value) or value <= 0:
        raise ParameterError(
            f"L0 = {value!r} m: the outer scale must be > 0 (use math.inf for Kolmogorov)"
        )
    return value


def fried_parameter(value) -> float:
    """r0 (m), or ParameterError unless it is > 0 (inf allowed: a calm layer)."""
    value = float(value)
    if math.isnan(value) or value <= 0:
        raise ParameterError(f"r0 = {value!r} m: the Fried parameter must be > 0")
    return value


def grid_size(n) -> int:
    """A grid size, or ParameterError unless it is an integer >= 2."""
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ParameterError(f"n = {n!r}: the grid size must be an integer >= 2")
    return int(n)
