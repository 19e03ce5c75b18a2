"""The training domain of a dark model, and how far a frame lies from it.

A learned dark model is only trusted on frames like those it was trained on. ``frame_conditions``
measures what describes a raw dark: the bias level (median of each channel's overscan, ADU), the
dark level (each channel's optical-black level above its bias, ADU; ``baselines``), the detector
temperature (deg C) and the exposure time (s), the last two from the header when given.
``training_domain`` keeps the [min, max] of each quantity over the training frames (the layout is
checked separately: a model runs only on the geometry it was trained on). ``domain_excursions``
says, per quantity, how far a frame lies outside that range, in units of the range's width
(at least ``FLOORS``, so that a range of one value still has a scale): 0 inside, 1 = one
training-range width beyond its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dancekit.dark.baselines import optical_black_level, overscan_bias
from dancekit.dark.layout import RawLayout, region_stack

#: quantity -> (unit, words for messages)
QUANTITIES = {
    "bias": ("ADU", "bias level"),
    "dark": ("ADU", "dark level above bias"),
    "temperature": ("deg C", "temperature"),
    "exptime": ("s", "exposure time"),
}
#: a frame further than this many range widths beyond the trained range is refused (unless overridden)
REFUSE_BEYOND = 0.5
#: smallest range width per quantity: (absolute, fraction of the largest |end|)
FLOORS = {"bias": (5.0, 0.05), "dark": (2.0, 0.05), "temperature": (2.0, 0.0), "exptime": (0.1, 0.1)}


def frame_conditions(frame: np.ndarray, layout: RawLayout, temperature: float | None = None,
                     exptime: float | None = None, bias_degree: int | None = 3) -> dict[str, list[float]]:
    """What describes one raw frame: {quantity: values} with one value per channel for 'bias'
    [ADU] and 'dark' [ADU above bias; only with optical black], and the given temperature [deg C]
    and exposure time [s] when finite."""
    frame = np.asarray(frame)
    conditions = {"bias": [float(np.median(c)) for c in region_stack(frame, layout, "overscan")]}
    if layout.has_region("ob_columns") or layout.has_region("ob_rows"):
        bias = overscan_bias(frame, layout, bias_degree)
        conditions["dark"] = [float(v) for v in optical_black_level(frame, layout, bias)]
    for name, value in (("temperature", temperature), ("exptime", exptime)):
        if value is not None and np.isfinite(value):
            conditions[name] = [float(value)]
    return conditions


def training_domain(conditions: Sequence[Mapping[str, Sequence[float]]]) -> dict:
    """{quantity: [min, max]} over the frames, for the quantities every frame has; 'frames': count."""
    if not conditions:
        return {"frames": 0}
    shared = set.intersection(*(set(c) for c in conditions)) & set(QUANTITIES)
    domain: dict = {"frames": len(conditions)}
    for name in sorted(shared):
        values = np.concatenate([np.asarray(c[name], dtype=float) for c in conditions])
        domain[name] = [float(values.min()), float(values.max())]
    return domain


@dataclass(frozen=True)
class Excursion:
    """Where a frame lies against one trained range: its values' [low, high] and the distance
    beyond the range [lo, hi] in range widths (0 inside)."""

    quantity: str
    low: float
    high: float
    lo: float
    hi: float
    distance: float

    def describe(self) -> str:
        unit, words = QUANTITIES[self.quantity]
        value = f"{self.low:.4g}" if self.low == self.high else f"{self.low:.4g}..{self.high:.4g}"
        where = "inside" if self.distance == 0 else f"{self.distance:.2f} range widths outside"
        return f"{words} {value} {unit}, trained {self.lo:.4g}..{self.hi:.4g} {unit}: {where}"

    def brief(self) -> str:
        """The same in under 64 characters (a FITS HISTORY card)."""
        unit = QUANTITIES[self.quantity][0]
        value = f"{self.low:.4g}" if self.low == self.high else f"{self.low:.4g}..{self.high:.4g}"
        where = "inside" if self.distance == 0 else f"{self.distance:.2f} widths out"
        return f"{self.quantity} {value} {unit} (trained {self.lo:.4g}..{self.hi:.4g}): {where}"


def domain_excursions(domain: Mapping, conditions: Mapping[str, Sequence[float]]) -> list[Excursion]:
    """One ``Excursion`` per quantity both the domain and the frame have, furthest first."""
    out = []
    for name in QUANTITIES:
        if name not in domain or name not in conditions or not len(conditions[name]):
            continue
        lo, hi = (float(v) for v in domain[name])
        low, high = float(np.min(conditions[name])), float(np.max(conditions[name]))
        absolute, relative = FLOORS[name]
        width = max(hi - lo, absolute, relative * max(abs(lo), abs(hi)))
        beyond = max(lo - low, high - hi, 0.0)
        out.append(Excursion(name, low, high, lo, hi, beyond / width))
    return sorted(out, key=lambda e: -e.distance)
