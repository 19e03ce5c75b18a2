"""Propagation of a star's wave through the layered atmosphere down to the pupil.

Split-step method (Bialek et al. 2024 Sect. 2.1; Schmidt 2010 ch. 9): the Tukey-apodised plane
wave from the star enters at the highest layer; each layer multiplies the field by exp(i phi_i),
then the field travels by Fresnel (angular-spectrum) propagation to the next layer below, and
finally to the telescope at height 0. The ``geometric`` mode sums the phases and keeps amplitude 1
(the near-field limit: no scintillation), as GalSim's summed ``PhaseScreenList`` does.
"""

from __future__ import annotations

import math

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import grid_size, non_negative, positive
from dancekit.optics.frozen_flow import LayerScreen, layer_phase

MODES = ("fresnel", "geometric")


def fresnel_transfer_function(n: int, distance: float, wavelength: float, sampling: float,
                              device=None) -> torch.Tensor:
    """Angular-spectrum Fresnel transfer function H(f) = exp(-i pi lambda z (fx^2 + fy^2)), (n, n).

    In FFT order (zero frequency at [0, 0]); the constant exp(i k z) is dropped. Schmidt 2010
    eq. 6.52 / Bialek et al. 2024 eq. 5. distance z (m), wavelength (m), sampling (m/px).
    """
    f = torch.fft.fftfreq(n, d=sampling, dtype=torch.float64, device=device)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    return torch.exp(-1j * math.pi * wavelength * distance * f2).to(torch.complex64)


def max_fresnel_distance(n: int, wavelength: float, sampling: float) -> float:
    """Longest distance (m) whose transfer-function chirp is Nyquist sampled: n sampling^2 / lambda
    (Voelz & Roggemann 2009, Appl. Opt. 48, 6132)."""
    return n * sampling**2 / wavelength


def fresnel_propagate(field: torch.Tensor, distance: float, wavelength: float,
                      sampling: float) -> torch.Tensor:
    """Propagate complex ``field`` (..., n, n) by ``distance`` (m) in the Fresnel approximation.

    Angular-spectrum form: IFFT[FFT[field] H], H from :func:`fresnel_transfer_function`; exact
    energy conservation (|H| = 1), identity for z = 0, periodic boundaries (hence the Tukey wave).
    Raises if z exceeds :func:`max_fresnel_distance` (the chirp would alias).
    """
    n = grid_size(field.shape[-1])
    if field.shape[-2] != n:
        raise ParameterError(f"field shape {tuple(field.shape)}: the last two axes must be square")
    distance = non_negative("distance", distance, "m")
    wavelength = positive("wavelength", wavelength, "m")
    sampling = positive("sampling", sampling, "m/px")
    z_max = max_fresnel_distance(n, wavelength, sampling)
    if distance > z_max:
        raise ParameterError(
            f"distance = {distance:g} m exceeds n dx^2 / lambda = {z_max:g} m: the transfer "
            "function aliases; use a finer or larger grid"
        )
    return _fresnel_propagate(field.to(torch.complex64), distance, wavelength, sampling)


def _fresnel_propagate(field, distance, wavelength, sampling):
    if distance == 0:
        return field
    H = fresnel_transfer_function(field.shape[-1], distance, wavelength, sampling, field.device)
    return torch.fft.ifft2(torch.fft.fft2(field) * H)


def split_step(phases: torch.Tensor, heights, wavelength: float, sampling: float,
               incident: torch.Tensor | None = None, mode: str = "fresnel") -> torch.Tensor:
    """Field at the pupil (B, n, n) complex64 from per-layer phases (L, B, n, n) (rad).

    heights (L,) in metres above the telescope, any order (propagation starts at the highest);
    incident: real amplitude (n, n) of the entering wave, e.g. the Tukey window of
    :func:`dancekit.optics.pupil.tukey_incident_wave` (None: 1 everywhere). ``mode="geometric"``
    returns exp(i sum_i phi_i) (amplitude 1, incident ignored: no diffraction between layers).
    """
    if mode not in MODES:
        raise ParameterError(f"mode = {mode!r}: choose one of {', '.join(MODES)}")
    heights = [non_negative("height", h, "m") for h in torch.as_tensor(heights).reshape(-1).tolist()]
    if phases.ndim != 4 or phases.shape[0] != len(heights):
        raise ParameterError(
            f"phases shape {tuple(phases.shape)}: need (layers={len(heights)}, batch, n, n)"
        )
    wavelength = positive("wavelength", wavelength, "m")
    sampling = positive("sampling", sampling, "m/px")
    n = phases.shape[-1]
    if heights and mode == "fresnel":
        steps = max(heights)
        if steps > max_fresnel_distance(n, wavelength, sampling):
            raise ParameterError(
                f"layer height {steps:g} m exceeds n dx^2 / lambda = "
                f"{max_fresnel_distance(n, wavelength, sampling):g} m: use a finer or larger grid"
            )
    return _split_step(phases, heights, wavelength, sampling, incident, mode)


def _split_step(phases, heights, wavelength, sampling, incident, mode):
    if mode == "geometric" or not heights:
        return torch.exp(1j * phases.sum(dim=0).to(torch.float32))
    order = sorted(range(len(heights)), key=lambda i: -heights[i])
    field = None
    for rank, i in enumerate(order):
        screen = torch.exp(1j * phases[i].to(torch.float32))
        if field is None:
            field = screen if incident is None else screen * incident.to(screen.device)
        else:
            field = field * screen
        below = heights[order[rank + 1]] if rank + 1 < len(order) else 0.0
        field = _fresnel_propagate(field, heights[i] - below, wavelength, sampling)
    return field


def atmospheric_pupil_fields(layers: list[LayerScreen], n: int, angles, times, wavelength: float,
                             incident: torch.Tensor | None = None,
                             mode: str = "fresnel") -> torch.Tensor:
    """Complex field at the pupil (B, n, n) of stars at ``angles`` (B, 2) (rad) at ``times`` (B,) (s).

    Each layer is seen displaced by h theta - v t (:func:`dancekit.optics.frozen_flow.layer_phase`);
    the pupil mask is applied by the PSF step. With no layers the field is the incident wave
    (1 in geometric mode). All layers must share the pupil-grid ``sampling``.
    """
    n = grid_size(n)
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1, 2)
    if not layers:
        base = torch.ones(n, n) if (incident is None or mode == "geometric") else incident
        return base.to(torch.complex64).expand(angles.shape[0], n, n).clone()
    sampling = layers[0].sampling
    if any(abs(layer.sampling - sampling) > 1e-12 * sampling for layer in layers):
        raise ParameterError("layers have different samplings: all must use the pupil grid's")
    phases = torch.stack([layer_phase(layer, n, angles, times) for layer in layers])
    return split_step(phases, [layer.height for layer in layers], wavelength, sampling,
                      incident, mode)
