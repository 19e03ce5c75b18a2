"""One short-exposure frame of a star field through the layered atmosphere (the optics core of
``simulate-video``): atmosphere -> pupil fields -> time-integrated PSFs -> pixel-integrated stamps
-> scatter-added image. Memory is bounded by processing ``max_windows`` pupil fields at a time.

The windows go through :class:`dancekit.optics.batched_psf.BatchedPSF` (the same physics as
:func:`dancekit.optics.propagation.atmospheric_pupil_fields` + :func:`dancekit.optics.psf.fine_psf`,
organised so that the FFTs dominate); the sub-steps of a star are summed before one real FFT per
star does the pixel integration and the sub-pixel shift.
"""

from __future__ import annotations

import numpy as np
import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import non_negative, positive
from dancekit.optics.batched_psf import BatchedPSF
from dancekit.optics.frozen_flow import LayerScreen
from dancekit.optics.psf import DetectorSampling, _oversampling, _psf_otf, _stamps_from_otf, split_positions
from dancekit.optics.spectrum import SpectralChannel


#: Default batch, in pupil-grid samples (windows x n^2) per batch of windows: the fastest on CPU
#: (torch 2.13, C2PU n = 128; bench_simulate_video.py). Larger Fresnel batches keep so many large
#: temporaries alive that the allocator returns memory to the system and page-faults it back.
BATCH_SAMPLES = {"geometric": 128 * 128**2, "fresnel": 32 * 128**2}


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
    max_windows: int | None = None,
) -> torch.Tensor:
    """Noise-free frame (H, W) float32 in monochromatic light: every star with its own
    time-integrated turbulent PSF.

    layers: frozen-flow layers on the pupil grid (empty list: the diffraction-limited truth);
    pupil: (n, n) transmission, its grid spacing chosen by :func:`dancekit.optics.psf.pupil_sampling`
    so that PSF pixels are pixel_scale / ``oversampling``; positions (K, 2) (x, y) px, fluxes (K,),
    field_angles (K, 2) rad (:func:`pixel_to_field_angle`); the frame integrates ``n_substeps``
    instantaneous PSFs over [t_start, t_start + exposure] (s). ``incident``: Tukey wave for Fresnel
    mode. Each star's flux lands in the image (exactly, in geometric mode) unless its stamp of
    n / oversampling px hangs over the edge. ``max_windows``: pupil fields (star x sub-step) per
    batch, which bounds the memory (~6 complex n x n arrays per window); None: the fastest on
    CPU (:data:`BATCH_SAMPLES`). Stars are taken in a spatial order (any order gives the same image
    up to float rounding). :func:`render_band_frame` does the same in a finite band.
    """
    channel = SpectralChannel(wavelength, 1.0, pupil, None, incident)
    return render_band_frame(layers, [channel], positions, fluxes, field_angles, image_shape,
                             phase_wavelength=wavelength, oversampling=oversampling, t_start=t_start,
                             exposure=exposure, n_substeps=n_substeps, mode=mode, max_windows=max_windows)


def render_band_frame(
    layers: list[LayerScreen],
    channels: list[SpectralChannel],
    positions,
    fluxes,
    field_angles,
    image_shape,
    *,
    phase_wavelength: float,
    oversampling: int,
    t_start: float = 0.0,
    exposure: float = 0.0,
    n_substeps: int = 1,
    mode: str = "fresnel",
    max_windows: int | None = None,
) -> torch.Tensor:
    """Noise-free frame (H, W) float32 in polychromatic light: per star, the photon-weighted sum
    over the band's ``channels`` (:func:`dancekit.optics.spectrum.band_channels`: one pupil grid
    per wavelength, all giving PSF pixels of pixel_scale / ``oversampling``) of its
    time-integrated PSFs, each normalised to the star's flux (Goodman 2005 Sect. 6.1.3).

    The layers' phases are in radians at ``phase_wavelength`` (m); the channel at lambda sees
    them times phase_wavelength / lambda (an optical-path screen), through its own Fresnel
    propagation. Other arguments as :func:`render_frame`; ``max_windows`` bounds one channel's
    batch (the channels of a batch of stars are computed one after the other).
    """
    ovs = _oversampling(oversampling)
    if not channels:
        raise ParameterError("no spectral channels: need at least one wavelength")
    n = channels[0].pupil.shape[-1]
    for channel in channels:
        if channel.pupil.shape != (n, n) or n % ovs:
            raise ParameterError(f"pupil shape {tuple(channel.pupil.shape)}: need (n, n), the same n for "
                                 f"every wavelength, n a multiple of {ovs}")
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 2)
    fluxes = torch.as_tensor(fluxes, dtype=torch.float32).reshape(-1)
    angles = torch.as_tensor(field_angles, dtype=torch.float64).reshape(-1, 2)
    if not (positions.shape[0] == fluxes.shape[0] == angles.shape[0]):
        raise ParameterError(f"{positions.shape[0]} positions, {fluxes.shape[0]} fluxes and "
                             f"{angles.shape[0]} field angles: need one of each per star")
    times = substep_times(t_start, exposure, n_substeps)
    k = times.shape[0]
    device = channels[0].pupil.device
    height, width = (int(v) for v in image_shape)
    image = torch.zeros(height * width, dtype=torch.float32, device=device)
    pixels, rests = split_positions(positions)
    plans = [BatchedPSF(layers, c.pupil, c.wavelength, incident=c.incident, mode=mode, sampling=c.sampling,
                        phase_scale=phase_wavelength / c.wavelength) for c in channels]
    for plan in plans:
        plan.check_windows(angles.repeat(2, 1), times[[0, -1]].repeat_interleave(angles.shape[0]))
    # flux / (sub-steps x fine_psf normalisation) for the first channel; the others are added to
    # its power with their photon weight relative to it (exactly 1 channel: the monochromatic path)
    first = plans[0].norm / channels[0].weight
    relative = [c.weight / plan.norm * first for c, plan in zip(channels, plans)]
    weights = fluxes.to(device) / (k * first)
    sampling = DetectorSampling(n, ovs, device)
    s = n // ovs
    low, high = pixels - s // 2, pixels + (s - 1 - s // 2)
    inside = (low >= 0).all(dim=1) & (high[:, 0] < width) & (high[:, 1] < height)  # whole stamp on the image
    local = torch.arange(s, device=device) - s // 2

    def band_power(star_angles, star_times, group, check=True):  # sum_j relative_j |F_j|^2 over groups
        power = plans[0].power_sum(star_angles, star_times, group, check)
        for plan, factor in zip(plans[1:], relative[1:]):
            power.add_(plan.power_sum(star_angles, star_times, group, check), alpha=factor)
        return power

    shared_otf = None
    if not layers:  # no atmosphere: one PSF for every star and time
        shared_otf = _psf_otf(band_power(angles[:1], times[:1], 1)) * k
    if max_windows is None:
        max_windows = max(1, BATCH_SAMPLES[plans[0].mode] // (n * n))
    stars_per_chunk = max(1, int(max_windows) // k)
    order = _spatial_order(pixels)  # neighbours in the image share screen regions: cache reuse
    for start in range(0, positions.shape[0], stars_per_chunk):
        chunk = order[start:start + stars_per_chunk]
        c = chunk.shape[0]
        if shared_otf is None:
            chunk_angles = angles[chunk].repeat_interleave(k, dim=0)  # (c K, 2) star-major
            otf = _psf_otf(band_power(chunk_angles, times.repeat(c), k, check=False))  # (c, n, n//2+1)
        else:
            otf = shared_otf
        stamps = _stamps_from_otf(otf, rests[chunk], ovs, weights[chunk.to(device)], sampling)
        _scatter_add_stamps(image, stamps, pixels[chunk].to(device), local, height, width,
                            bool(inside[chunk].all()))
    return image.reshape(height, width)


def _spatial_order(pixels: torch.Tensor, strip: int = 16) -> torch.Tensor:
    """Indices of stars (K, 2) (x, y) px in serpentine order over strips ``strip`` px high, so
    that the stars of a batch are neighbours and their windows overlap on every screen."""
    x, y = pixels[:, 0].cpu().numpy(), pixels[:, 1].cpu().numpy()
    band = (y - y.min()) // strip
    along = np.where(band % 2 == 0, x, -x)  # serpentine: the next strip starts where this one ends
    return torch.from_numpy(np.lexsort((along, band)))


def _scatter_add_stamps(image: torch.Tensor, stamps: torch.Tensor, pixels: torch.Tensor,
                        local: torch.Tensor, height: int, width: int, inside: bool) -> None:
    """In place: add stamps (K, S, S) centred on pixels (K, 2) (x, y) into the flat image (H W,);
    local: (S,) stamp offsets -S//2.. ; inside: every stamp lies wholly on the image."""
    k, s = stamps.shape[0], stamps.shape[-1]
    ys = (pixels[:, 1, None] + local[None, :])[:, :, None]  # (K, S, 1)
    xs = (pixels[:, 0, None] + local[None, :])[:, None, :]  # (K, 1, S)
    if inside:
        image.index_add_(0, (ys * width + xs).reshape(-1), stamps.reshape(-1))
        return
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)  # (K, S, S)
    flat = (ys * width + xs).expand(k, s, s)[keep]
    image.index_add_(0, flat, stamps[keep])
