"""One short-exposure frame of a star field through the layered atmosphere (the optics core of
``simulate-video``): atmosphere -> pupil fields -> time-integrated PSFs -> pixel-integrated stamps
-> scatter-added image. Memory is bounded by processing ``max_windows`` pupil fields at a time.
"""

from __future__ import annotations

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import non_negative, positive
from dancekit.optics.frozen_flow import LayerScreen
from dancekit.optics.propagation import atmospheric_pupil_fields
from dancekit.optics.psf import _detector_stamps, _fine_psf_unshifted, _oversampling, add_stamps
from dancekit.optics.psf import split_positions


def pixel_to_field_angle(positions, image_shape, pixel_scale: float) -> torch.Tensor:
    """Field angles (K, 2) (rad) of detector positions (K, 2) (x, y) px, relative to the image
    centre ((W - 1)/2, (H - 1)/2), for a pixel scale in rad/px (no distortion)."""
    pixel_scale = positive("pixel_scale", pixel_scale, "rad/px")
    height, width = (int(v) for v in image_shape)
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 2)
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)
    return (positions - centre) * pixel_scale


def substep_times(t_start: float, exposure: float, n_substeps: int) -> torch.Tensor:
    """Mid-points (s) of ``n_substeps`` equal slices of the exposure [t_start, t_start + exposure]."""
    if int(n_substeps) != n_substeps or n_substeps < 1:
        raise ParameterError(f"n_substeps = {n_substeps!r}: must be an integer >= 1")
    exposure = non_negative("exposure", exposure, "s")
    k = torch.arange(int(n_substeps), dtype=torch.float64)
    return float(t_start) + (k + 0.5) / n_substeps * exposure


def render_frame(
    layers: list[LayerScreen],
    pupil: torch.Tensor,
    positions,
    fluxes,
    field_angles,
    image_shape,
    *,
    wavelength: float,
    oversampling: int,
    t_start: float = 0.0,
    exposure: float = 0.0,
    n_substeps: int = 1,
    incident: torch.Tensor | None = None,
    mode: str = "fresnel",
    max_windows: int = 512,
) -> torch.Tensor:
    """Noise-free frame (H, W) float32: every star with its own time-integrated turbulent PSF.

    layers: frozen-flow layers on the pupil grid (empty list: the diffraction-limited truth);
    pupil: (n, n) transmission, its grid spacing chosen by :func:`dancekit.optics.psf.pupil_sampling`
    so that PSF pixels are pixel_scale / ``oversampling``; positions (K, 2) (x, y) px, fluxes (K,),
    field_angles (K, 2) rad (:func:`pixel_to_field_angle`); the frame integrates ``n_substeps``
    instantaneous PSFs over [t_start, t_start + exposure] (s). ``incident``: Tukey wave for Fresnel
    mode. Each star's flux lands in the image (exactly, in geometric mode) unless its stamp of
    n / oversampling px hangs over the edge.
    """
    ovs = _oversampling(oversampling)
    n = pupil.shape[-1]
    if pupil.shape != (n, n) or n % ovs:
        raise ParameterError(f"pupil shape {tuple(pupil.shape)}: need (n, n), n a multiple of {ovs}")
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 2)
    fluxes = torch.as_tensor(fluxes, dtype=torch.float32).reshape(-1)
    angles = torch.as_tensor(field_angles, dtype=torch.float64).reshape(-1, 2)
    if not (positions.shape[0] == fluxes.shape[0] == angles.shape[0]):
        raise ParameterError(f"{positions.shape[0]} positions, {fluxes.shape[0]} fluxes and "
                             f"{angles.shape[0]} field angles: need one of each per star")
    times = substep_times(t_start, exposure, n_substeps)
    k = times.shape[0]
    device = pupil.device
    image = torch.zeros(*(int(v) for v in image_shape), dtype=torch.float32, device=device)
    pixels, rests = split_positions(positions)
    stars_per_chunk = max(1, int(max_windows) // k)
    for start in range(0, positions.shape[0], stars_per_chunk):
        stop = min(start + stars_per_chunk, positions.shape[0])
        c = stop - start
        chunk_angles = angles[start:stop].repeat_interleave(k, dim=0)  # (c K, 2) star-major
        chunk_times = times.repeat(c)
        fields = atmospheric_pupil_fields(layers, n, chunk_angles, chunk_times, wavelength,
                                          incident=incident, mode=mode).to(device)
        psfs = _fine_psf_unshifted(fields, pupil).reshape(c, k, n, n).mean(dim=1)
        stamps = _detector_stamps(psfs, rests[start:stop].to(device), ovs)
        image = add_stamps(image, stamps * fluxes[start:stop, None, None].to(device),
                           pixels[start:stop])
    return image
