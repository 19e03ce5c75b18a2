"""Instantaneous PSFs of many (star, time) windows at once: the fast path of ``render_frame``.

The physics is that of :func:`dancekit.optics.propagation.atmospheric_pupil_fields` followed by
:func:`dancekit.optics.psf.fine_psf` (split-step Fresnel or summed phases, then
|FFT(field * pupil)|^2, Bialek et al. 2024 Sect. 2.1); the tests compare the two paths. What
differs is only the order of the work, chosen so that the FFTs dominate the time on a CPU:

- a layer's phase is interpolated only where it can reach the image: inside the pupil for the
  layer next to it (in geometric mode, for every layer: ~15 % of the C2PU grid), inside the
  incident wave's support for the first Fresnel layer; windows that share a screen offset (a
  ground layer: every star sees the same window) are interpolated once;
- exp(i phi) as complex(cos phi, sin phi): torch's complex ``exp`` is not vectorised on CPU, and
  on CPU numpy's SIMD cos/sin are about twice as fast as torch's;
- the pupil field enters its FFT through a buffer that stays zero outside the pupil (written
  with scatter_, read with gather: faster than fancy indexing), and |F|^2 is summed over the
  sub-steps of a star in place on the spectrum's memory;
- after the last Fresnel step only the pupil's pixels are read, so that inverse FFT transforms
  only the pupil's columns along y (the same numbers as ifft2, ~30 % less work);
- the Fresnel transfer functions are built once per frame, not once per batch, and the screens'
  bounds are checked once per frame (at the first and last sub-step of every star).
"""

from __future__ import annotations

import numpy as np
import torch

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import LayerScreen, WindowSampler
from dancekit.optics.propagation import MODES, fresnel_transfer_function, max_fresnel_distance


def unit_phasor(phase: torch.Tensor) -> torch.Tensor:
    """exp(i phase) (complex64) of a real phase (rad), as complex(cos, sin)."""
    phase = phase.to(torch.float32)
    if phase.device.type == "cpu" and not phase.requires_grad:
        values = phase.numpy()
        return torch.complex(torch.from_numpy(np.cos(values)), torch.from_numpy(np.sin(values)))
    return torch.complex(torch.cos(phase), torch.sin(phase))


def weighted_phasor(phase: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """weights exp(i phase) (complex64) of a real phase (rad) (B, P) and real weights (P,) (an
    amplitude, a pupil transmission). On CPU the products land straight in the interleaved
    (re, im) memory of the result: no complex assembly, no complex-by-real multiply."""
    phase = phase.to(torch.float32)
    weights = weights.to(torch.float32)
    if phase.device.type == "cpu" and not (phase.requires_grad or weights.requires_grad):
        values, scale = phase.numpy(), weights.numpy()
        out = torch.empty((*phase.shape, 2), dtype=torch.float32)
        pair = out.numpy()
        np.multiply(np.cos(values), scale, out=pair[..., 0])
        np.multiply(np.sin(values), scale, out=pair[..., 1])
        return torch.view_as_complex(out)
    return torch.complex(torch.cos(phase) * weights, torch.sin(phase) * weights)


class BatchedPSF:
    """Unnormalised instantaneous PSFs |FFT(field * pupil)|^2 of batches of windows.

    layers: frozen-flow layers (any order; empty: no atmosphere); pupil: (n, n) transmission;
    wavelength (m); incident: real (n, n) amplitude of the entering wave (Fresnel mode; None: 1);
    mode: "fresnel" or "geometric" (as :func:`split_step`). ``sampling``: the pupil grid's spacing
    (m/px), None for the layers' own; ``phase_scale``: factor on the layers' phases (lambda_ref /
    lambda when they are in radians at lambda_ref; :mod:`dancekit.optics.spectrum`). ``norm`` is
    n^2 sum(pupil^2): dividing by it gives :func:`fine_psf`'s normalisation.
    """

    def __init__(self, layers: list[LayerScreen], pupil: torch.Tensor, wavelength: float,
                 incident: torch.Tensor | None = None, mode: str = "fresnel", *,
                 sampling: float | None = None, phase_scale: float = 1.0):
        if mode not in MODES:
            raise ParameterError(f"mode = {mode!r}: choose one of {', '.join(MODES)}")
        n = pupil.shape[-1]
        self.n, self.device = n, pupil.device
        self.phase_scale = float(phase_scale)
        flat = pupil.reshape(-1).to(torch.float32)
        self.pixels = torch.nonzero(flat > 0).squeeze(1)  # (P,) row-major flat indices
        self.pupil_values = flat[self.pixels]
        # columns of the grid that hold the pupil, and its pixels as flat indices into them:
        # after the last propagation only these columns are transformed back (_pupil_columns)
        columns = self.pixels % n
        self.column_range = (int(columns.min()), int(columns.max()) + 1) if len(columns) else (0, n)
        width = self.column_range[1] - self.column_range[0]
        self.pixels_in_columns = (self.pixels // n) * width + (columns - self.column_range[0])
        self.norm = float(n * n * flat.double().square().sum())
        self._buffers: dict = {}
        self.layers = sorted(layers, key=lambda layer: -layer.height)  # propagation order
        if layers:
            screen = layers[0].sampling
            if any(abs(layer.sampling - screen) > 1e-12 * screen for layer in layers):
                raise ParameterError("layers have different samplings: all screens must share one")
        self.sampling = None if not layers else (layers[0].sampling if sampling is None else float(sampling))
        self.mode = mode if self.layers else "geometric"
        if self.mode == "geometric":
            self.samplers = [self._sampler(layer, self.pixels) for layer in self.layers]
            if not self.layers and mode == "fresnel" and incident is not None:
                self.pupil_values = self.pupil_values * incident.reshape(-1).to(flat)[self.pixels]
            return
        self._setup_fresnel(wavelength, incident)

    def _sampler(self, layer: LayerScreen, pixels: torch.Tensor | None) -> WindowSampler:
        return WindowSampler(layer, self.n, pixels, spacing=self.sampling, phase_scale=self.phase_scale)

    def _setup_fresnel(self, wavelength, incident):
        n, sampling = self.n, self.sampling
        heights = [layer.height for layer in self.layers]
        z_max = max_fresnel_distance(n, wavelength, sampling)
        if heights[0] > z_max:
            raise ParameterError(f"layer height {heights[0]:g} m exceeds n dx^2 / lambda = "
                                 f"{z_max:g} m: use a finer or larger grid")
        self.distances = [h - below for h, below in zip(heights, heights[1:] + [0.0])]
        self.transfer = [fresnel_transfer_function(n, z, wavelength, sampling, self.device)
                         if z > 0 else None for z in self.distances]
        self.incident = None if incident is None else incident.reshape(-1).to(self.device, torch.float32)
        self.support = None  # where the first layer's phase matters: where the incident wave is
        if self.incident is not None:
            self.support = torch.nonzero(self.incident > 0).squeeze(1)
            self.incident_support = self.incident[self.support]
            self.incident_pupil = self.incident[self.pixels]
        self.at_pupil = self.distances[-1] == 0  # the last layer lies on the pupil
        self.samplers = []
        for i, layer in enumerate(self.layers):
            if i == len(self.layers) - 1 and self.at_pupil:
                where = self.pixels
            elif i == 0:
                where = self.support
            else:
                where = None
            self.samplers.append(self._sampler(layer, where))

    def check_windows(self, angles: torch.Tensor, times: torch.Tensor) -> None:
        """Raise unless every window (angles (B, 2), times (B,)) stays inside every screen; the
        windows move linearly in time, so checking the first and last times covers a frame."""
        for sampler in self.samplers:
            sampler.check_inside(angles, times)

    def _buffer(self, name: str, shape) -> torch.Tensor:
        """A zeroed complex buffer kept for the plan's life: only positions that every use
        rewrites are ever written, so the others stay zero."""
        key = (name, *shape)
        if key not in self._buffers:
            self._buffers[key] = torch.zeros(shape, dtype=torch.complex64, device=self.device)
        return self._buffers[key]

    def power_sum(self, angles: torch.Tensor, times: torch.Tensor, k: int,
                  check: bool = True) -> torch.Tensor:
        """Sum over groups of ``k`` consecutive windows of |FFT(field * pupil)|^2, (B / k, n, n),
        centre at [0, 0]; angles (B, 2) (rad) and times (B,) (s), float64."""
        n = self.n
        parts = torch.view_as_real(self.spectra(angles, times, check)).reshape(-1, k, n * n * 2)
        total = parts[:, 0].square()
        for j in range(1, k):  # sum the sub-steps first: a quarter of the memory traffic
            total.addcmul_(parts[:, j], parts[:, j])
        total = total.reshape(-1, n, n, 2)
        return total[..., 0] + total[..., 1]  # |F|^2 = re^2 + im^2

    def spectra(self, angles: torch.Tensor, times: torch.Tensor, check: bool = True) -> torch.Tensor:
        """FFT(field * pupil), (B, n, n) complex64, of windows at angles (B, 2), times (B,)."""
        if self.mode == "geometric":
            return self._pupil_spectrum(self._geometric_values(angles, times, check))
        return self._pupil_spectrum(self._fresnel_values(angles, times, check))

    def _geometric_values(self, angles, times, check):
        if not self.samplers:
            return self.pupil_values.to(torch.complex64).expand(angles.shape[0], -1)
        phase = None
        for sampler in self.samplers:
            samples, inverse = sampler.distinct(angles, times, check)
            samples = samples if inverse is None else samples[inverse]
            phase = samples if phase is None else phase.add_(samples)
        return weighted_phasor(phase, self.pupil_values)

    def _fresnel_values(self, angles, times, check):
        """Field times pupil at the pupil pixels, (B, P): split-step from the highest layer."""
        b, n = angles.shape[0], self.n
        last = len(self.samplers) - 1
        field = None  # (B, n, n), or None while it is still the incident wave
        final_step = last - 1 if self.at_pupil else last  # the propagation that reaches the pupil
        for i, sampler in enumerate(self.samplers):
            samples, inverse = sampler.distinct(angles, times, check)
            if i == last and self.at_pupil:  # only the pupil pixels matter
                phasor = weighted_phasor(samples, self.pupil_values)
                phasor = phasor if inverse is None else phasor[inverse]
                if field is None:
                    before = self.incident_pupil if self.incident is not None else 1.0
                else:
                    before = self._at_pupil_pixels(field)
                return phasor * before
            if field is None:
                if self.support is None:
                    field = unit_phasor(samples if inverse is None else samples[inverse]).reshape(b, n, n)
                else:
                    entry = self._buffer("entry", (b, n * n))
                    phasor = weighted_phasor(samples, self.incident_support)
                    entry.scatter_(1, self.support.expand(b, -1), phasor if inverse is None else phasor[inverse])
                    field = entry.reshape(b, n, n)
                    if self.transfer[i] is None:
                        field = field.clone()  # the next layer multiplies in place
            else:
                field.mul_(unit_phasor(samples if inverse is None else samples[inverse]).reshape(b, n, n))
            if self.transfer[i] is not None:
                spectrum = torch.fft.fft2(field).mul_(self.transfer[i])
                field = self._pupil_columns(spectrum) if i == final_step else torch.fft.ifft2(spectrum)
        return self._at_pupil_pixels(field) * self.pupil_values

    def _pupil_columns(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The inverse 2-D FFT of spectra (B, n, n) on the pupil's columns only, (B, n, w): the
        rows are inverted in full, then only the w columns that the pupil reaches (the same
        numbers as ifft2, ~30 % less work on the C2PU grid)."""
        start, stop = self.column_range
        rows = torch.fft.ifft(spectrum, dim=-1)
        return torch.fft.ifft(rows[..., start:stop], dim=-2)

    def _at_pupil_pixels(self, field: torch.Tensor) -> torch.Tensor:
        """Values (B, P) at the pupil pixels of fields (B, n, n), or (B, n, w) from :meth:`_pupil_columns`."""
        b = field.shape[0]
        index = self.pixels if field.shape[-1] == self.n else self.pixels_in_columns
        return torch.gather(field.reshape(b, -1), 1, index.expand(b, -1))

    def _pupil_spectrum(self, values: torch.Tensor) -> torch.Tensor:
        """2-D FFT of fields (B, n, n) that are zero outside the pupil, given there as (B, P);
        scatter_ into a buffer whose other pixels are never written (faster than fancy indexing)."""
        b, n = values.shape[0], self.n
        field = self._buffer("pupil", (b, n * n))
        field.scatter_(1, self.pixels.expand(b, -1), values)
        return torch.fft.fft2(field.reshape(b, n, n))
