"""The atmosphere of one simulated video: total seeing and per-layer r0, wind and outer scale.

Bialek et al. 2024 §3.1: "In each video sequence, the Fried parameter and wind speeds for each
layer of the atmosphere are sampled from a normal distribution." Here the total seeing at 500 nm
is drawn (unless given), split over the layers by their Cn² fractions, and each layer's wind speed
and direction are drawn around the configured profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dancekit.errors import ParameterError

ARCSEC = math.pi / (180 * 3600)
REFERENCE_WAVELENGTH = 500e-9  # m: r0 and seeing are quoted at 500 nm
SEEING_LIMITS = (0.2, 5.0)  # arcsec: draws outside are redrawn
WIND_DIRECTION_SIGMA = 30.0  # degrees: spread of each layer's direction around its configured mean


@dataclass(frozen=True)
class LayerSpec:
    """A layer of the configured profile: altitude (m), Cn² fraction, wind mean/spread (m/s), direction (deg), L0 (m)."""

    altitude: float
    cn2_fraction: float
    wind_speed: float
    wind_speed_sigma: float
    wind_direction: float
    L0: float


@dataclass(frozen=True)
class LayerDraw:
    altitude: float  # m
    cn2_fraction: float
    r0: float  # m at 500 nm
    wind: tuple[float, float]  # (vx, vy) m/s in the sky frame (x = +columns, y = +rows)
    L0: float  # m


@dataclass(frozen=True)
class AtmosphereDraw:
    r0: float  # m at 500 nm, the whole atmosphere
    layers: tuple[LayerDraw, ...]

    def r0_at(self, wavelength: float) -> float:
        """Total r0 (m) at ``wavelength`` (m): r0 ∝ λ^(6/5)."""
        return self.r0 * (wavelength / REFERENCE_WAVELENGTH) ** 1.2

    def seeing_at(self, wavelength: float) -> float:
        """Kolmogorov seeing FWHM (arcsec) at ``wavelength``: 0.98 λ / r0(λ)."""
        return 0.98 * wavelength / self.r0_at(wavelength) / ARCSEC


def seeing_to_r0_500(seeing_arcsec: float) -> float:
    """r0 (m) at 500 nm of a seeing FWHM (arcsec) at 500 nm."""
    if not seeing_arcsec > 0:
        raise ParameterError(f"seeing must be > 0 arcsec, got {seeing_arcsec}", source="--seeing")
    return 0.98 * REFERENCE_WAVELENGTH / (seeing_arcsec * ARCSEC)


def draw_atmosphere(profile: list[LayerSpec], rng: np.random.Generator, seeing_median: float,
                    seeing_sigma: float, seeing: float | None = None, r0: float | None = None) -> AtmosphereDraw:
    """Draw the atmosphere of one video.

    ``seeing`` (arcsec at 500 nm) or ``r0`` (m at 500 nm) fixes the total; otherwise the seeing is
    drawn from N(seeing_median, seeing_sigma) within 0.2–5". Each layer gets r0_i = r0 f_i^(−3/5)
    (so that Σ r0_i^(−5/3) = r0^(−5/3)), a speed from N(mean, sigma) clipped at 0 and a direction
    N(mean, 30°).
    """
    if seeing is not None and r0 is not None:
        raise ParameterError("give the seeing or r0, not both", source="--r0")
    if r0 is not None and not r0 > 0:
        raise ParameterError(f"r0 must be > 0 m, got {r0}", source="--r0")
    if r0 is None:
        if seeing is None:
            seeing = -1.0
            while not SEEING_LIMITS[0] <= seeing <= SEEING_LIMITS[1]:
                seeing = rng.normal(seeing_median, seeing_sigma)
        r0 = seeing_to_r0_500(seeing)
    layers = []
    for spec in profile:
        speed = max(0.0, rng.normal(spec.wind_speed, spec.wind_speed_sigma))
        direction = math.radians(rng.normal(spec.wind_direction, WIND_DIRECTION_SIGMA))
        layers.append(LayerDraw(spec.altitude, spec.cn2_fraction, r0 * spec.cn2_fraction ** (-3 / 5),
                                (speed * math.cos(direction), speed * math.sin(direction)), spec.L0))
    return AtmosphereDraw(float(r0), tuple(layers))


def smooth_jitter(n_frames: int, rms: float, correlation_frames: float, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 2) whole-field offsets with a Gaussian temporal correlation and the given rms.

    Models the intermittent ground-layer motion seen on the real M92 data (Bialek et al. 2024 §4.3):
    all stars move together by up to a couple of arcsec.
    """
    if rms == 0 or n_frames == 0:
        return np.zeros((n_frames, 2))
    width = max(correlation_frames, 1e-3)
    half = int(np.ceil(4 * width))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    white = rng.standard_normal((n_frames + 2 * half, 2))
    smooth = np.stack([np.convolve(white[:, k], kernel, mode="valid") for k in range(2)], axis=1)
    return smooth / np.sqrt((smooth**2).mean(axis=0)).clip(1e-12) * rms / math.sqrt(2)
