"""Fluxes of sources and sky, and the detector noise model (Poisson–Gaussian, Bialek et al. 2024 §2.1)."""

from __future__ import annotations

import numpy as np

from dancekit.errors import ParameterError


def mag_to_rate(mag: np.ndarray | float, zero_point: float) -> np.ndarray:
    """Photo-electron rate [e-/s] of a source of magnitude ``mag``; ``zero_point`` gives 1 e-/s."""
    return 10 ** (-0.4 * (np.asarray(mag, float) - zero_point))


def sky_rate_per_pixel(surface_brightness: float, zero_point: float, pixel_scale: float) -> float:
    """Sky background [e-/s/pixel] from its surface brightness [mag/arcsec²] and the pixel scale [arcsec]."""
    return float(mag_to_rate(surface_brightness, zero_point)) * pixel_scale**2


def read_noise_map(shape: tuple[int, int], read_noise: float, rng: np.random.Generator, spread: float = 0.3) -> np.ndarray:
    """Per-pixel read noise of an sCMOS sensor [e- rms]: log-normal around ``read_noise``.

    Each sCMOS pixel has its own amplifier, so its read noise differs from pixel to pixel with a
    long tail of noisy pixels; ``spread`` is the rms of ln(σ).
    """
    return read_noise * np.exp(rng.normal(-0.5 * spread**2, spread, shape))


def add_noise(expected: np.ndarray, rng: np.random.Generator, read_noise: float | np.ndarray, gain: float = 1.0,
              bits: int | None = None, to_adu: bool = False) -> np.ndarray:
    """A noisy realisation of an expected image in electrons (sources + sky, noise-free).

    Poisson shot noise, then Gaussian read noise (scalar or per-pixel map, e- rms). With
    ``to_adu`` the result is divided by ``gain`` [e-/ADU]; with ``bits`` it is also rounded to
    integer ADU and clipped to the ADC range [0, 2^bits − 1]. Returns float32.
    """
    if gain <= 0:
        raise ParameterError(f"gain must be > 0 e-/ADU, got {gain}")
    if np.any(np.asarray(expected) < 0):
        raise ParameterError("expected image has negative electrons; the Poisson model needs >= 0")
    electrons = rng.poisson(expected).astype(np.float64)
    electrons += rng.standard_normal(expected.shape) * read_noise
    if not (to_adu or bits):
        return electrons.astype(np.float32)
    adu = electrons / gain
    if bits:
        adu = np.clip(np.round(adu), 0, 2**bits - 1)
    return adu.astype(np.float32)
