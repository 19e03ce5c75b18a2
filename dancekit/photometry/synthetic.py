"""Synthetic CCD star fields with a known photometric calibration, for tests and benchmarks.

Stars from a random reference catalogue are placed through a gnomonic (TAN) WCS
(Calabretta & Greisen 2002, FITS WCS paper II) and rendered with a pixel-integrated Gaussian
or a Moffat (1969) profile. Their electron counts follow the calibration model used by
:func:`dancekit.photometry.zeropoint_fit.fit_zeropoint`:

    m_ref − m_inst = ZP − k·X + c·colour,   m_inst = −2.5 log10(N_e / t),

so a star of reference magnitude m collects N_e = t · 10^(−0.4 (m − ZP + k·X − c·colour))
electrons. The image is Poisson(stars + sky) + Normal(0, RN) electrons, divided by the gain
(ADU) and clipped at the saturation level (ADU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.special import erf

from dancekit.errors import ParameterError
from dancekit.photometry.catalogue import ARCSEC, ReferenceCatalogue, reference_catalogue
from dancekit.sky.star_fields import tan_wcs as sky_tan_wcs

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SyntheticField:
    """A rendered field and its truth.

    Attributes
    ----------
    image : (H, W) float32, ADU.
    wcs : astropy WCS (TAN) of the image (pixel origin 0 = centre of the first pixel).
    catalogue : the reference catalogue given to the calibration (magnitudes with their
        declared noise ``ref_mag_err`` added).
    x, y : true star positions, pixels (stars off the image are included).
    true_mag : noise-free reference magnitudes, mag.
    electrons : expected electrons of each star over the exposure.
    """

    image: np.ndarray
    wcs: WCS
    catalogue: ReferenceCatalogue
    x: np.ndarray
    y: np.ndarray
    true_mag: np.ndarray
    electrons: np.ndarray


def tan_wcs(shape, ra: float, dec: float, pixel_scale: float, rotation: float = 0.0) -> WCS:
    """A TAN WCS centred on the image, in the library's radians.

    Parameters
    ----------
    shape : (H, W) pixels. ra, dec : tangent point, radians. pixel_scale : radians per pixel.
    rotation : position angle of the y axis east of north, radians.

    A unit-converting front of :func:`dancekit.sky.star_fields.tan_wcs` (degrees, arcsec).
    """
    if not pixel_scale > 0:
        raise ParameterError(f"pixel_scale must be > 0 radians per pixel, got {pixel_scale!r}")
    return sky_tan_wcs(shape, float(np.degrees(ra)), float(np.degrees(dec)), float(pixel_scale / ARCSEC),
                       rotation=float(np.degrees(rotation)))


def synthetic_field(
    shape=(512, 512),
    n_stars: int = 200,
    *,
    zeropoint: float = 25.0,
    colour_term: float = 0.0,
    extinction: float = 0.0,
    airmass: float = 1.0,
    exptime: float = 10.0,
    gain: float = 2.0,
    read_noise: float = 5.0,
    sky: float = 200.0,
    saturation: float = np.inf,
    psf: str = "gaussian",
    fwhm: float = 3.0,
    moffat_beta: float = 3.0,
    mag_range=(14.0, 19.0),
    luminosity_slope: float = 0.0,
    colour_range=(-0.2, 1.8),
    ref_mag_err: float = 0.0,
    pixel_scale: float = 1.0 * ARCSEC,
    centre=(np.radians(150.0), np.radians(2.0)),
    margin: float = 0.0,
    throughput_loss=None,
    seed=None,
) -> SyntheticField:
    """Render a star field with a known zero point, colour term and extinction.

    Parameters
    ----------
    shape : (H, W) pixels. n_stars : stars in the catalogue.
    zeropoint : ZP at airmass 0, mag (for electrons per second). colour_term : c, mag/mag.
    extinction : k, mag/airmass. airmass : X. exptime : seconds.
    gain : e⁻/ADU. read_noise : e⁻ rms. sky : e⁻ per pixel over the exposure.
    saturation : ADU; pixels are clipped there.
    psf : ``"gaussian"`` (pixel-integrated) or ``"moffat"``; fwhm : pixels; moffat_beta : β.
    mag_range, colour_range : ranges of reference magnitude and colour, mag.
    luminosity_slope : s of the magnitude distribution dN/dm ∝ 10^(s·m) within ``mag_range``,
        1/mag; 0 (default) is uniform, ~0.3 is a field's star counts (few bright stars).
    ref_mag_err : 1σ Gaussian noise added to the catalogue magnitudes (and declared as their
        ``mag_err``), mag.
    pixel_scale : radians per pixel. centre : (ra, dec) of the image centre, radians.
    margin : fraction of the image size by which stars extend beyond each edge (0 = all
        inside), so that some catalogue stars fall off the image.
    throughput_loss : optional callable ``(x, y) -> (N,) mag`` of extra dimming at each
        star's pixel position (patchy cloud, flat-field residuals: m_inst grows by it).
    seed : int, SeedSequence or numpy Generator.
    """
    height, width = (int(v) for v in shape)
    if height < 8 or width < 8:
        raise ParameterError(f"shape must be at least 8 x 8 pixels, got {shape}")
    if n_stars < 1:
        raise ParameterError(f"n_stars must be >= 1, got {n_stars}")
    if psf not in ("gaussian", "moffat"):
        raise ParameterError(f"psf must be 'gaussian' or 'moffat', got {psf!r}")
    if not fwhm > 0 or (psf == "moffat" and not moffat_beta > 1):
        raise ParameterError(f"need fwhm > 0 pixels and moffat_beta > 1, got {fwhm!r}, {moffat_beta!r}")
    for name, value in (("exptime", exptime), ("gain", gain)):
        if not value > 0:
            raise ParameterError(f"{name} must be > 0, got {value!r}")
    if read_noise < 0 or sky < 0 or ref_mag_err < 0:
        raise ParameterError("read_noise, sky and ref_mag_err must be >= 0")
    rng_pos, rng_mag, rng_pix, rng_cat = (
        np.random.default_rng(s) for s in _seed_sequence(seed).spawn(4)
    )
    wcs = tan_wcs((height, width), centre[0], centre[1], pixel_scale)
    x = rng_pos.uniform(-0.5 - margin * width, width - 0.5 + margin * width, n_stars)
    y = rng_pos.uniform(-0.5 - margin * height, height - 0.5 + margin * height, n_stars)
    ra_deg, dec_deg = wcs.all_pix2world(x, y, 0)
    true_mag = _magnitudes(rng_mag, mag_range, luminosity_slope, n_stars)
    colour = rng_mag.uniform(colour_range[0], colour_range[1], n_stars)
    m_inst = true_mag - zeropoint + extinction * airmass - colour_term * colour
    if throughput_loss is not None:
        m_inst = m_inst + np.broadcast_to(np.asarray(throughput_loss(x, y), float), (n_stars,))
    electrons = exptime * 10.0 ** (-0.4 * m_inst)
    expected = np.full((height, width), float(sky))
    for xi, yi, ni in zip(x, y, electrons):
        _add_star(expected, xi, yi, ni, psf, fwhm, moffat_beta)
    counts = rng_pix.poisson(expected).astype(float) + rng_pix.normal(0.0, read_noise, expected.shape)
    image = np.minimum(counts / gain, saturation).astype(np.float32)
    noisy_mag = true_mag + rng_cat.normal(0.0, ref_mag_err, n_stars) if ref_mag_err > 0 else true_mag
    catalogue = reference_catalogue(np.radians(ra_deg), np.radians(dec_deg), noisy_mag,
                                    np.full(n_stars, float(ref_mag_err)), colour)
    return SyntheticField(image=image, wcs=wcs, catalogue=catalogue, x=x, y=y,
                          true_mag=true_mag, electrons=electrons)


def _magnitudes(rng, mag_range, slope, n):
    """``n`` magnitudes with dN/dm ∝ 10^(slope·m) on ``mag_range`` (inverse CDF; uniform at 0)."""
    low, high = float(mag_range[0]), float(mag_range[1])
    if not slope:
        return rng.uniform(low, high, n)
    floor = 10.0 ** (slope * (low - high))  # CDF ∝ 10^(slope·(m − high)) − floor: no overflow
    return high + np.log10(floor + rng.uniform(0.0, 1.0, n) * (1.0 - floor)) / slope


def _seed_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63))
    return np.random.SeedSequence(seed)


def _add_star(expected, x, y, electrons, psf, fwhm, beta):
    """Add one star's expected electrons to ``expected`` (in place, on our own array)."""
    height, width = expected.shape
    if psf == "gaussian":
        radius = int(np.ceil(6.0 * fwhm / _FWHM_PER_SIGMA)) + 1
    else:
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        radius = int(np.ceil(alpha * np.sqrt(1e-4 ** (1.0 / (1.0 - beta)) - 1.0))) + 1
    x0, x1 = max(int(np.floor(x)) - radius, 0), min(int(np.floor(x)) + radius + 2, width)
    y0, y1 = max(int(np.floor(y)) - radius, 0), min(int(np.floor(y)) + radius + 2, height)
    if x0 >= x1 or y0 >= y1:
        return
    if psf == "gaussian":
        stamp = _gaussian_stamp(x - np.arange(x0, x1), y - np.arange(y0, y1), fwhm)
    else:
        stamp = _moffat_stamp(x - np.arange(x0, x1), y - np.arange(y0, y1), alpha, beta, radius)
    expected[y0:y1, x0:x1] += electrons * stamp


def _gaussian_stamp(dx, dy, fwhm):
    """Fraction of a unit Gaussian falling in each pixel (exact integral, separable)."""
    s = np.sqrt(2.0) * fwhm / _FWHM_PER_SIGMA

    def frac(d):
        return 0.5 * (erf((0.5 - d) / s) - erf((-0.5 - d) / s))

    return np.outer(frac(dy), frac(dx))


def _moffat_stamp(dx, dy, alpha, beta, radius, oversample=4):
    """Moffat profile integrated over pixels by oversampling, normalised to unit total
    flux analytically; the stamp is truncated at ``radius``, where < 1e-4 of the flux
    lies outside ((1 + R²/α²)^(1−β), Moffat 1969)."""
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    sx = (-dx[:, None] + offsets[None, :]).reshape(-1)
    sy = (-dy[:, None] + offsets[None, :]).reshape(-1)
    r2 = sy[:, None] ** 2 + sx[None, :] ** 2
    profile = (1.0 + r2 / alpha**2) ** (-beta) * (r2 <= radius**2)
    binned = profile.reshape(dy.size, oversample, dx.size, oversample).sum(axis=(1, 3))
    total_flux = np.pi * alpha**2 / (beta - 1.0) * oversample**2  # analytic ∫ in sub-pixels
    return binned / total_flux
