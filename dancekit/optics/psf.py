"""PSFs from pupil fields, integrated over detector pixels, and rendered into images.

Sampling relation (Fraunhofer, Goodman 2005 eq. 4-13): the FFT of an n x n pupil field of spacing
dx (m) gives the PSF on angles spaced d_theta = lambda / (n dx) (rad). To get a PSF ``oversampling``
times finer than the detector pixel scale p (rad/px) choose dx = lambda * oversampling / (n p)
(:func:`pupil_sampling`). The grid spans n dx = lambda * oversampling / p, which must hold the
autocorrelation of the pupil, n dx >= 2 D (Nyquist-sampled PSF; also the extent of the Tukey
incident wave): :func:`minimum_oversampling`. The stamp then covers n / oversampling detector
pixels, and light scattered further wraps around (FFT periodicity): widen n to widen the stamp.

Pixel integration: the oversampled PSF is convolved with the detector pixel (a boxcar, Bialek et
al. 2024 Sect. 2.1) by multiplying its OTF with sinc(f p) sinc(g p), shifted to the star's
sub-pixel position by a phase ramp, and point-sampled at the pixel centres by folding the
spectrum (exact for the band-limited PSF; the zeros of the sinc at multiples of 1/p make the
detector sum equal the PSF flux exactly, however coarse the pixels).
"""

from __future__ import annotations

import math

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import grid_size, positive


def pupil_sampling(wavelength: float, pixel_scale: float, oversampling: int, n: int) -> float:
    """Pupil-grid spacing dx (m/px) giving PSF pixels of pixel_scale / oversampling (rad).

    dx = lambda * oversampling / (n * pixel_scale), from d_theta = lambda / (n dx).
    """
    wavelength = positive("wavelength", wavelength, "m")
    pixel_scale = positive("pixel_scale", pixel_scale, "rad/px")
    oversampling = _oversampling(oversampling)
    n = grid_size(n)
    return wavelength * oversampling / (n * pixel_scale)


def minimum_oversampling(diameter: float, wavelength: float, pixel_scale: float) -> int:
    """Smallest integer oversampling with grid extent lambda * oversampling / p >= 2 D."""
    diameter = positive("diameter", diameter, "m")
    wavelength = positive("wavelength", wavelength, "m")
    pixel_scale = positive("pixel_scale", pixel_scale, "rad/px")
    return max(1, math.ceil(2 * diameter * pixel_scale / wavelength - 1e-9))


def _oversampling(oversampling) -> int:
    if isinstance(oversampling, bool) or int(oversampling) != oversampling or oversampling < 1:
        raise ParameterError(f"oversampling = {oversampling!r}: must be an integer >= 1")
    return int(oversampling)


def _fine_psf_unshifted(fields: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
    """|FFT(field pupil)|^2 (B, n, n), centre at [0, 0], sum = transmitted / unperturbed energy."""
    pupil = pupil.to(fields.device)
    spectrum = torch.fft.fft2(fields * pupil)
    psf = spectrum.real.square() + spectrum.imag.square()
    n2 = fields.shape[-1] * fields.shape[-2]
    return psf / (n2 * pupil.square().sum())


def fine_psf(fields: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
    """Oversampled PSF (B, n, n) of pupil fields (B, n, n) through ``pupil`` (n, n) transmission.

    PSF = |FFT(field * pupil)|^2 (Bialek et al. 2024 eq. 8) on pixels of lambda / (n dx) rad,
    centred on pixel (n//2, n//2), normalised so that its sum is the energy transmitted by the
    pupil divided by that of the unperturbed plane wave: exactly 1 in geometric mode; it
    fluctuates around 1 with scintillation in Fresnel mode.
    """
    if fields.shape[-2:] != pupil.shape:
        raise ParameterError(f"fields {tuple(fields.shape)} and pupil {tuple(pupil.shape)} differ")
    return torch.fft.fftshift(_fine_psf_unshifted(fields, pupil), dim=(-2, -1))


def time_integrated_psf(fields: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
    """Mean PSF (B, n, n) over the sub-steps of an exposure, fields (B, K, n, n) (K sub-steps).

    The frame integrates the instantaneous PSFs while the layers move: the "motion blur" of
    Bialek et al. 2024 Sect. 3.1 (a frame every ~200 ms); centred like :func:`fine_psf`.
    """
    return fine_psf(fields, pupil).mean(dim=-3)


def detector_stamps(psfs: torch.Tensor, offsets, oversampling: int) -> torch.Tensor:
    """Pixel-integrated stamps (B, S, S), S = n / oversampling, from centred fine PSFs (B, n, n)
    (or (1, n, n) shared by all B offsets).

    offsets: (B, 2) sub-pixel shifts (dx, dy) of each star in detector pixels (any real value;
    |d| <= 0.5 keeps the star on the central pixel). The star's centre falls on stamp pixel
    (S//2 + dy, S//2 + dx); pixel values are the PSF integrated over each detector pixel, and
    sum to the fine PSF's sum.
    """
    oversampling = _oversampling(oversampling)
    n = psfs.shape[-1]
    if psfs.ndim != 3 or psfs.shape[-2] != n or n % oversampling:
        raise ParameterError(f"psfs shape {tuple(psfs.shape)}: need square (n, n) with n a "
                             f"multiple of oversampling = {oversampling}")
    offsets = torch.as_tensor(offsets, dtype=torch.float32, device=psfs.device).reshape(-1, 2)
    if psfs.shape[0] not in (1, offsets.shape[0]):
        raise ParameterError(f"{psfs.shape[0]} PSFs for {offsets.shape[0]} offsets: need 1 or one each")
    unshifted = torch.fft.ifftshift(psfs, dim=(-2, -1))
    return _detector_stamps(unshifted, offsets, oversampling)


def _pixel_transfer(n: int, oversampling: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies (cycles per fine px, FFT order) and the pixel's transfer function sinc(f p)."""
    f = torch.fft.fftfreq(n, device=device)
    return f, torch.sinc(f * oversampling)


def _psf_otf(unshifted: torch.Tensor) -> torch.Tensor:
    """Half-plane OTF (B, n, n//2 + 1) of real PSFs (B, n, n) centred on [0, 0] (real FFT)."""
    n = unshifted.shape[-1]
    return torch.fft.rfft2(unshifted.reshape(-1, n, n))


def _detector_stamps(unshifted: torch.Tensor, offsets: torch.Tensor, ovs: int,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """As detector_stamps, from PSFs (B or 1, n, n) centred on [0, 0]; offsets (B, 2) in detector
    pixels; weights: optional (B,) factors on each stamp (e.g. flux / normalisation). Returns
    (B, S, S)."""
    return _stamps_from_otf(_psf_otf(unshifted), offsets, ovs, weights)


class DetectorSampling:
    """Frequencies (cycles per fine px) and pixel transfer functions sinc(f p) of the fine grid,
    for :func:`_stamps_from_otf`: y in FFT order (n,), x in real-FFT order (n//2 + 1,)."""

    def __init__(self, n: int, oversampling: int, device=None):
        self.n, self.oversampling = n, oversampling
        self.fy, self.mtf_y = _pixel_transfer(n, oversampling, device)
        self.fx = torch.fft.rfftfreq(n, device=device)
        self.mtf_x = torch.sinc(self.fx * oversampling)


def _stamps_from_otf(otf: torch.Tensor, offsets: torch.Tensor, ovs: int,
                     weights: torch.Tensor | None = None,
                     sampling: DetectorSampling | None = None) -> torch.Tensor:
    """Stamps (B, S, S) from half-plane OTFs (B or 1, n, n//2 + 1) of centred fine PSFs.

    OTF x pixel transfer function x shift ramp, then sampled at the detector pixel centres (every
    ``ovs``-th fine pixel): folded along y onto the S detector rows and inverted there (S-point
    FFT), inverted along x by a real FFT and decimated. The result is real because the shifted,
    pixel-integrated PSF is; the Nyquist column carries nothing (the OTF vanishes beyond D/lambda,
    below the grid's Nyquist frequency when n dx >= 2 D). ``sampling``: precomputed frequencies.
    """
    n = otf.shape[-2]
    s, half = n // ovs, otf.shape[-1]
    if sampling is None:
        sampling = DetectorSampling(n, ovs, otf.device)
    shift = offsets.to(otf.device) * ovs  # fine pixels
    scale = float(ovs * ovs) if weights is None else weights.to(otf.device)[:, None] * (ovs * ovs)
    ramp_x = _phase_ramp(sampling.fx, shift[:, 0:1]).mul_(sampling.mtf_x)  # (B, n//2 + 1)
    ramp_y = _phase_ramp(sampling.fy, shift[:, 1:2]).mul_(sampling.mtf_y * scale)  # (B, n)
    folded = (otf * ramp_y[:, :, None]).reshape(-1, ovs, s, half).sum(dim=1)  # alias onto the detector rows
    folded.mul_(ramp_x[:, None, :])  # constant along y: applied after the fold, on 1/ovs of the data
    rows = torch.fft.ifft(folded, dim=-2, norm="forward").div_(n)  # x-spectra of the S sampled rows
    stamps = torch.fft.irfft(rows, n=n, dim=-1)[..., ::ovs]
    return torch.fft.fftshift(stamps, dim=(-2, -1))


def _phase_ramp(f: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """exp(-2 pi i f shift) (B, len(f)) complex64 for frequencies f (cycles/px), shifts (B, 1) px."""
    angle = (-2 * math.pi) * f[None, :] * shift
    return torch.complex(torch.cos(angle), torch.sin(angle))


def split_positions(positions) -> tuple[torch.Tensor, torch.Tensor]:
    """Detector positions (K, 2) (x, y) in pixels -> nearest pixel (long) and sub-pixel rest.

    Pixel i covers [i - 0.5, i + 0.5): position 3.0 is the centre of pixel 3.
    """
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 2)
    nearest = torch.floor(positions + 0.5)
    return nearest.long(), (positions - nearest).to(torch.float32)


def add_stamps(image: torch.Tensor, stamps: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """A new image: ``image`` (H, W) plus stamps (K, S, S) whose centre pixel (S//2, S//2) lands on
    ``pixels`` (K, 2) (x, y) integer detector pixels; the parts off the image are dropped."""
    height, width = image.shape
    k, s = stamps.shape[0], stamps.shape[-1]
    out = image.clone()
    local = torch.arange(s, device=image.device) - s // 2
    pixels = pixels.to(image.device)
    ys = pixels[:, 1, None, None] + local[None, :, None]  # (K, S, 1)
    xs = pixels[:, 0, None, None] + local[None, None, :]  # (K, 1, S)
    ys, xs = ys.expand(k, s, s), xs.expand(k, s, s)
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    flat = (ys * width + xs)[keep]
    out.view(-1).index_add_(0, flat, stamps.to(image.dtype)[keep])
    return out


def render_stars(image_shape, positions, fluxes, psfs: torch.Tensor, oversampling: int,
                 *, chunk_size: int = 256, device=None) -> torch.Tensor:
    """Image (H, W) float32 of stars with their own PSFs, scatter-added stamp by stamp.

    positions: (K, 2) (x, y) detector pixels (pixel i centred at i); fluxes: (K,) total flux of
    each star (any unit, e.g. electrons); psfs: (K, n, n) centred fine PSFs (one per star) or
    (n, n) shared by all, on pixels of pixel_scale / oversampling. Each star's flux is conserved
    exactly unless its stamp hangs over the image edge. Stars are processed ``chunk_size`` at a time.
    """
    height, width = (int(v) for v in image_shape)
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 2)
    fluxes = torch.as_tensor(fluxes, dtype=torch.float32).reshape(-1)
    if fluxes.shape[0] != positions.shape[0]:
        raise ParameterError(f"{positions.shape[0]} positions but {fluxes.shape[0]} fluxes")
    shared = psfs.ndim == 2
    if not shared and psfs.shape[0] != positions.shape[0]:
        raise ParameterError(f"{positions.shape[0]} positions but {psfs.shape[0]} PSFs")
    device = psfs.device if device is None else device
    image = torch.zeros(height, width, dtype=torch.float32, device=device)
    pixels, rests = split_positions(positions)
    for start in range(0, positions.shape[0], chunk_size):
        stop = min(start + chunk_size, positions.shape[0])
        chunk = psfs[None] if shared else psfs[start:stop]
        stamps = detector_stamps(chunk.to(device), rests[start:stop].to(device), oversampling)
        stamps = stamps * fluxes[start:stop, None, None].to(device)
        image = add_stamps(image, stamps, pixels[start:stop])
    return image
