"""A turbulent short-exposure video of a star field and its turbulence-free truth.

Bialek et al. 2024 §2.1 and §3.1: multi-layer von Kármán screens moving with the wind, split-step
Fresnel propagation (or phases summed, ``geometric``), one PSF per star (anisoplanatism: a star at
field angle θ sees layer h shifted by hθ), each frame integrating the turbulence over its exposure,
the PSF integrated over pixels; in a finite band the PSFs of several wavelengths are summed
(:mod:`dancekit.optics.spectrum`). The truth is the same optics, band and pixels with no atmosphere.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import LayerScreen, make_layer_screen
from dancekit.optics.imaging import pixel_to_field_angle, render_band_frame
from dancekit.optics.psf import minimum_oversampling, pupil_sampling
from dancekit.optics.spectrum import SpectralChannel, band_channels, band_wavelengths
from dancekit.sky.atmosphere_draw import ARCSEC, AtmosphereDraw

STAMP_FWHMS = 6.0  # stamp side in units of the seeing FWHM: holds the halo of the long exposure
PHASE_SAMPLES_PER_R0 = 3.0  # pupil-grid samples across r0 at the observing wavelength


@dataclass(frozen=True)
class VideoOptics:
    """Telescope, camera and timing of a simulated video (SI units; pixel_scale in rad/pixel)."""

    aperture: float  # m
    obstruction: float  # linear fraction
    wavelength: float  # m, centre of the band
    pixel_scale: float  # rad/pixel
    exposure: float  # s per frame
    frame_interval: float  # s between frame starts (1 / frame rate)
    substeps: int  # turbulence sub-steps integrated within one exposure
    propagation: str = "fresnel"  # or "geometric"
    oversampling: int = 4  # PSF samples per pixel (raised to the Nyquist minimum if lower)
    bandwidth: float = 0.0  # m, full width of a top-hat band (flat photon spectrum)
    n_wavelengths: int = 1  # wavelengths sampling the band (1: monochromatic at ``wavelength``)

    def band(self) -> tuple[list[float], list[float]]:
        """Wavelengths (m) and photon weights simulated (:func:`band_wavelengths`)."""
        return band_wavelengths(self.wavelength, self.bandwidth, self.n_wavelengths)


@dataclass(frozen=True)
class PupilGrid:
    n: int  # pupil grid side (samples), the same at every wavelength
    sampling: float  # m/sample at ``wavelength``: the screens' sampling
    oversampling: int  # PSF samples per detector pixel
    stamp: int  # detector pixels per side of a star's PSF stamp
    wavelength: float  # m, the shortest simulated wavelength, where the grid is finest

    def sampling_at(self, wavelength: float) -> float:
        """Grid spacing (m/sample) at ``wavelength`` (m): PSF pixels stay pixel_scale / oversampling."""
        return self.sampling if wavelength == self.wavelength else self.sampling * wavelength / self.wavelength


def pupil_grid(optics: VideoOptics, r0_at_wavelength: float) -> PupilGrid:
    """Grid on which pupil fields are computed, from the optics and the seeing (r0 (m) at the
    central wavelength).

    The PSF pixel is λ / (n dx) = pixel_scale / oversampling, so the grid extent n dx is fixed by the
    oversampling (at least 2D, so the Tukey wave and |FT|² are not aliased); n is then set by the
    stamp, STAMP_FWHMS seeing FWHMs wide, and by at least PHASE_SAMPLES_PER_R0 samples across r0,
    rounded up to an FFT-friendly size (:func:`_fast_fft_size`). In a band, every wavelength keeps
    n and scales dx ∝ λ, so all three conditions are imposed at the shortest one (smallest extent,
    widest seeing, fewest samples per r0 since r0/dx ∝ λ^0.2).
    """
    wavelength = min(optics.band()[0])
    r0 = r0_at_wavelength * (wavelength / optics.wavelength) ** 1.2
    ovs = max(int(optics.oversampling), minimum_oversampling(optics.aperture, wavelength, optics.pixel_scale))
    extent = wavelength * ovs / optics.pixel_scale
    fwhm_pixels = 0.98 * wavelength / r0 / optics.pixel_scale
    stamp = max(16, math.ceil(STAMP_FWHMS * fwhm_pixels), math.ceil(extent * PHASE_SAMPLES_PER_R0 / r0 / ovs))
    stamp += stamp % 2
    while not _fast_fft_size(stamp * ovs):  # e.g. 104 = 8 x 13 -> 112: faster although larger
        stamp += 2
    n = stamp * ovs
    return PupilGrid(n, pupil_sampling(wavelength, optics.pixel_scale, ovs, n), ovs, stamp, wavelength)


def optical_channels(optics: VideoOptics, grid: PupilGrid, *, fresnel: bool, device=None) -> list[SpectralChannel]:
    """Pupil (and Tukey wave when ``fresnel``) of every simulated wavelength on its own grid."""
    wavelengths, weights = optics.band()
    return band_channels(wavelengths, weights, grid.n, optics.pixel_scale, grid.oversampling, optics.aperture,
                         optics.obstruction, fresnel=fresnel, device=device)


def window_size(grid: PupilGrid, optics: VideoOptics) -> int:
    """Screen samples spanned by the widest pupil window (the longest wavelength's grid)."""
    ratio = max(optics.band()[0]) / grid.wavelength
    return grid.n if ratio == 1 else 2 * math.ceil(ratio * grid.n / 2) + 2


def _fast_fft_size(n: int) -> bool:
    """n = 2^a 3^b 5^c 7^d: sizes that the FFT does at full speed (pocketfft/cuFFT radices).
    Measured on CPU (torch 2.13, one thread, per point): 104 = 8 x 13 and 136 = 8 x 17 cost
    1.3x and 1.8x what 112 and 128 do."""
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def build_layers(atmosphere: AtmosphereDraw, grid: PupilGrid, wavelength: float, duration: float,
                 field_angles: torch.Tensor, generator: torch.Generator, device, window: int | None = None) -> list[LayerScreen]:
    """One frozen-flow screen per layer (phase in rad at ``wavelength``, sampled at grid.sampling),
    large enough that no star's window of ``window`` samples (default grid.n) leaves it during ``duration``."""
    scale = (wavelength / 500e-9) ** 1.2  # r0 at the observing wavelength
    return [
        make_layer_screen(window or grid.n, grid.sampling, layer.altitude, layer.wind, duration, field_angles,
                          layer.r0 * scale, layer.L0, generator=generator, device=device)
        for layer in atmosphere.layers
    ]


def screen_pixels(atmosphere: AtmosphereDraw, grid: PupilGrid, duration: float, field_radius: float,
                  window: int | None = None) -> list[int]:
    """Samples of each layer's screen for a video: for the memory estimate made before any work."""
    sizes = []
    for layer in atmosphere.layers:
        speed = math.hypot(*layer.wind)
        width = (window or grid.n) + 2 * layer.altitude * field_radius / grid.sampling + 8
        length = width + speed * duration / grid.sampling
        sizes.append(int(width * length))
    return sizes


def simulate_frames(positions: np.ndarray, fluxes: np.ndarray, shape: tuple[int, int], n_frames: int,
                    optics: VideoOptics, atmosphere: AtmosphereDraw, generator: torch.Generator, *,
                    jitter: np.ndarray | None = None, r0_modulation: np.ndarray | None = None,
                    device=None, on_frame: Callable[[int], None] | None = None) -> tuple[np.ndarray, PupilGrid]:
    """Noise-free frames (T, H, W) float32 in the units of ``fluxes`` (per frame), and the grid used.

    positions: (K, 2) (x, y) 0-based pixels; fluxes: (K,) per frame; jitter: (T, 2) whole-field
    offsets in pixels (ground-layer motion); r0_modulation: (T,) factors on r0 per frame
    (intermittency; the phase scales as r0^(−5/6)).
    """
    if n_frames < 1:
        raise ParameterError(f"the number of frames must be >= 1, got {n_frames}", source="--frames")
    positions = np.asarray(positions, float).reshape(-1, 2)
    grid = pupil_grid(optics, atmosphere.r0_at(optics.wavelength))
    channels = optical_channels(optics, grid, fresnel=optics.propagation == "fresnel", device=device)
    angles = pixel_to_field_angle(positions, shape, optics.pixel_scale)
    duration = (n_frames - 1) * optics.frame_interval + optics.exposure
    layers = build_layers(atmosphere, grid, optics.wavelength, duration, angles, generator, device,
                          window_size(grid, optics))
    cube = np.empty((n_frames, *shape), dtype=np.float32)
    for t in range(n_frames):
        frame_layers = layers
        if r0_modulation is not None and r0_modulation[t] != 1:
            factor = float(r0_modulation[t]) ** (-5 / 6)
            frame_layers = [dataclasses.replace(layer, phase=layer.phase * factor) for layer in layers]
        shifted = positions + (jitter[t] if jitter is not None else 0.0)
        frame = render_band_frame(frame_layers, channels, shifted, fluxes, angles, shape,
                                  phase_wavelength=optics.wavelength, oversampling=grid.oversampling,
                                  t_start=t * optics.frame_interval, exposure=optics.exposure,
                                  n_substeps=optics.substeps, mode=optics.propagation)
        cube[t] = frame.cpu().numpy()
        if on_frame:
            on_frame(t)
    return cube, grid


def simulate_truth(positions: np.ndarray, fluxes: np.ndarray, shape: tuple[int, int], optics: VideoOptics,
                   grid: PupilGrid, device=None) -> np.ndarray:
    """The diffraction-limited, noise-free image (H, W): same pupil, band, sampling and pixels, no
    atmosphere (in a band: the photon-weighted sum of the wavelengths' diffraction patterns)."""
    positions = np.asarray(positions, float).reshape(-1, 2)
    channels = optical_channels(optics, grid, fresnel=False, device=device)
    angles = pixel_to_field_angle(positions, shape, optics.pixel_scale)
    image = render_band_frame([], channels, positions, fluxes, angles, shape, phase_wavelength=optics.wavelength,
                              oversampling=grid.oversampling, mode="geometric")
    return image.cpu().numpy()


def r0_modulation(n_frames: int, relative_rms: float, correlation_frames: float, rng: np.random.Generator) -> np.ndarray | None:
    """Per-frame factors on r0 (log-normal, temporally correlated) for intermittent turbulence; None when off."""
    if relative_rms == 0:
        return None
    from dancekit.sky.atmosphere_draw import smooth_jitter

    log_factor = smooth_jitter(n_frames, relative_rms * math.sqrt(2), correlation_frames, rng)[:, 0]
    return np.exp(log_factor - 0.5 * relative_rms**2)


def pixel_scale_rad(arcsec: float) -> float:
    return arcsec * ARCSEC
