"""Finite bandwidth: the wavelengths that sample a filter band, and each one's pupil-plane grid.

Polychromatic light is the incoherent sum of monochromatic images (Goodman 2005 Sect. 6.1.3):
PSF_band = sum_j w_j PSF(lambda_j), with w_j the fraction of the photons at lambda_j. Three things
change with the wavelength (Bialek et al. 2024 Sect. 2.1 simulate one wavelength; Schmidt 2010
ch. 9 for the scalings):

- the turbulence is an optical-path difference, so a screen given in radians at lambda_ref puts
  phi * lambda_ref / lambda on the wave at lambda (dispersion of air neglected);
- the PSF pixel is lambda / (n dx): every wavelength keeps the same n and takes its own pupil
  spacing dx(lambda) = lambda * oversampling / (n * pixel_scale) (:func:`pupil_sampling`), so that
  all PSFs land exactly on the same angular grid (no resampling). The pupil, the Tukey wave and
  the screens' sample points are laid out on each wavelength's grid;
- Fresnel propagation depends on lambda (its transfer function is built per wavelength).

The band is a top hat with a flat photon spectrum: equal photons per unit wavelength across
[lambda_c - d_lambda / 2, lambda_c + d_lambda / 2]. It is sampled by the midpoints of n equal
sub-bands, each weighted 1/n (the midpoint rule), so the photon-weighted mean wavelength is
lambda_c.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import positive
from dancekit.optics.psf import pupil_sampling
from dancekit.optics.pupil import annular_pupil, tukey_incident_wave


def band_wavelengths(central: float, bandwidth: float, n_wavelengths: int) -> tuple[list[float], list[float]]:
    """Wavelengths (m) and photon weights (summing to 1) sampling a top-hat band.

    central: band centre (m); bandwidth: full width (m), 0 <= bandwidth < central (a wider band
    would reach lambda <= central / 2); n_wavelengths: sub-bands (1: monochromatic at ``central``,
    whatever the bandwidth). Midpoints of equal sub-bands, equal weights (flat photon spectrum).
    """
    central = positive("wavelength", central, "m")
    bandwidth = float(bandwidth)
    if not (0.0 <= bandwidth < central):
        raise ParameterError(f"bandwidth = {bandwidth!r} m: the full width of the band must lie in "
                             f"[0, wavelength = {central:g} m)")
    if isinstance(n_wavelengths, bool) or int(n_wavelengths) != n_wavelengths or n_wavelengths < 1:
        raise ParameterError(f"n_wavelengths = {n_wavelengths!r}: must be an integer >= 1")
    n = int(n_wavelengths)
    if n == 1:
        return [central], [1.0]
    if bandwidth == 0:
        raise ParameterError(f"n_wavelengths = {n} needs a bandwidth > 0 (got 0): sampling a "
                             "monochromatic band more than once only costs time")
    low = central - bandwidth / 2
    wavelengths = [low + (j + 0.5) * bandwidth / n for j in range(n)]
    return wavelengths, [1.0 / n] * n


@dataclass(frozen=True)
class SpectralChannel:
    """One sampled wavelength of the band and the pupil-plane grid its PSF is computed on.

    wavelength (m); weight: fraction of each star's photons at this wavelength (the channels of
    a band sum to 1); pupil: (n, n) transmission on this channel's grid; sampling: its spacing
    (m/px), None for the layers' own sampling (monochromatic use); incident: (n, n) Tukey
    amplitude of the entering wave on this grid (Fresnel mode), None for 1.
    """

    wavelength: float
    weight: float
    pupil: torch.Tensor
    sampling: float | None = None
    incident: torch.Tensor | None = None


def band_channels(wavelengths, weights, n: int, pixel_scale: float, oversampling: int, diameter: float,
                  obstruction: float, *, fresnel: bool, device=None) -> list[SpectralChannel]:
    """The channels of a band on n x n grids whose PSF pixels are all pixel_scale / oversampling (rad).

    wavelengths (m) and weights as from :func:`band_wavelengths`; the grid of lambda has spacing
    lambda * oversampling / (n * pixel_scale), and spans >= 2 D only if oversampling is at least
    :func:`dancekit.optics.psf.minimum_oversampling` at the shortest wavelength.
    """
    wavelengths, weights = list(wavelengths), list(weights)
    if len(wavelengths) != len(weights) or not wavelengths:
        raise ParameterError(f"{len(wavelengths)} wavelengths and {len(weights)} weights: need one "
                             "weight per wavelength, and at least one")
    channels = []
    for wavelength, weight in zip(wavelengths, weights):
        dx = pupil_sampling(wavelength, pixel_scale, oversampling, n)
        pupil = annular_pupil(n, dx, diameter, obstruction, device=device)
        incident = tukey_incident_wave(n, dx, diameter, device=device) if fresnel else None
        channels.append(SpectralChannel(float(wavelength), float(weight), pupil, dx, incident))
    return channels
