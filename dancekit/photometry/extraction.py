"""Background, source extraction and aperture photometry with sep (SExtractor's core).

Coordinates follow sep: pixel (0, 0) is the *centre* of the first pixel, x along columns,
y along rows (pass ``origin=0`` to astropy's WCS). Fluxes are in image units (ADU) summed in
the aperture. The noise follows the CCD equation (Merline & Howell 1995, Howell 2006
eq. 4.4): σ²_pix = sky/g + (RN/g)² in ADU² with the local sky of the background model, and
σ²_F = A·σ²_pix + F/g for an aperture of A pixels. Detection thresholds use σ_pix at the
global sky level (a scalar: sep runs ~2× faster than with a per-pixel map).

Quality flags (bit mask in ``SourceList.flags``):

* ``FLAG_SATURATED`` — a pixel at or above the saturation level lies in the aperture;
* ``FLAG_EDGE`` — the aperture or the detection is truncated by the image edge;
* ``FLAG_BLENDED`` — sep deblended the object from a common parent (SExtractor flag 2);
* ``FLAG_CROWDED`` — another detection lies within ``isolation_radius`` pixels;
* ``FLAG_BAD_FLUX`` — non-positive or non-finite aperture flux (no magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep
from scipy.spatial import cKDTree

from dancekit.errors import InputError, ParameterError
from dancekit.metrics.detection import within_mesh_range
from dancekit.photometry.aperture import AUTO_APERTURE_PER_FWHM, ApertureCorrection, seeing_fwhm, total_flux_correction

FLAG_SATURATED = 1
FLAG_EDGE = 2
FLAG_BLENDED = 4
FLAG_CROWDED = 8
FLAG_BAD_FLUX = 16

FLAG_NAMES = {
    FLAG_SATURATED: "saturated",
    FLAG_EDGE: "at the image edge",
    FLAG_BLENDED: "blended",
    FLAG_CROWDED: "crowded",
    FLAG_BAD_FLUX: "non-positive flux",
}

_KRON_MIN_RADIUS = 1.75  # pixels (in units of sqrt(a b)); sep docs / SExtractor MAG_AUTO fallback
_KRON_FACTOR = 2.5  # SExtractor PHOT_AUTOPARAMS k (Kron 1980; Bertin & Arnouts 1996)


@dataclass(frozen=True)
class SourceList:
    """Detected sources and their aperture photometry (arrays of shape (N,)).

    Attributes
    ----------
    x, y : centroid, pixels (0 = centre of the first pixel).
    flux, flux_err : aperture flux and its 1σ error, image units (ADU).
    flags : int bit mask of ``FLAG_*``.
    a, b, theta : second-moment semi-axes (pixels) and position angle (radians).
    background_rms : global per-pixel noise used for detection, ADU (CCD equation at the
        global sky level, or sep's global rms with ``noise_model="measured"``).
    aperture_radius : circular aperture radius used, pixels (chosen from the seeing when
        none was given). fwhm : median FWHM of bright isolated stars, pixels (NaN if unmeasured).
    correction : :class:`~dancekit.photometry.aperture.ApertureCorrection`, how aperture
        magnitudes become total ones (``flux`` is *not* corrected); its fields are also read as
        ``aperture_correction`` (Δ = m_aper − m_total, mag, 0 when not measured),
        ``aperture_correction_err`` (mag, NaN), ``n_aperture_correction`` (stars),
        ``aperture_correction_method`` ("growth", "moffat", "none"), ``moffat_fwhm`` (pixels)
        and ``moffat_beta``.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    flags: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    background_rms: float
    aperture_radius: float = float("nan")
    fwhm: float = float("nan")
    correction: ApertureCorrection = ApertureCorrection()

    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def aperture_correction(self) -> float:
        return self.correction.delta

    @property
    def aperture_correction_err(self) -> float:
        return self.correction.error

    @property
    def n_aperture_correction(self) -> int:
        return self.correction.n_stars

    @property
    def aperture_correction_method(self) -> str:
        return self.correction.method

    @property
    def moffat_fwhm(self) -> float:
        return self.correction.moffat_fwhm

    @property
    def moffat_beta(self) -> float:
        return self.correction.moffat_beta


def instrumental_magnitude(flux, flux_err, *, gain: float, exptime: float):
    """Instrumental magnitude of an electron rate, m_inst = −2.5 log10(F g / t), and its error.

    Parameters
    ----------
    flux, flux_err : ADU (arrays). gain : e⁻/ADU. exptime : seconds.

    Returns
    -------
    (mag, mag_err) : mag; NaN where the flux is not positive. The error is the first-order
        propagation 2.5/ln(10) · σ_F / F.
    """
    if not (gain > 0 and np.isfinite(gain)):
        raise ParameterError(f"gain must be a positive finite number of e-/ADU, got {gain!r}")
    if not (exptime > 0 and np.isfinite(exptime)):
        raise ParameterError(f"exptime must be a positive finite number of seconds, got {exptime!r}")
    flux = np.asarray(flux, dtype=float)
    flux_err = np.asarray(flux_err, dtype=float)
    good = np.isfinite(flux) & (flux > 0)
    safe = np.where(good, flux, 1.0)
    mag = np.where(good, -2.5 * np.log10(safe * gain / exptime), np.nan)
    mag_err = np.where(good, 2.5 / np.log(10.0) * flux_err / safe, np.nan)
    return mag, mag_err


def extract_sources(
    image,
    *,
    gain: float | None,
    read_noise: float | None,
    aperture_radius: float | None,
    saturation: float = np.inf,
    photometry: str = "circle",
    detect_threshold: float = 5.0,
    min_area: int = 5,
    background_box: int = 64,
    background_filter: int = 3,
    isolation_radius: float | None = None,
    noise_model: str = "ccd",
    mean_sky: bool = True,
    aperture_correction: bool = False,
) -> SourceList:
    """Subtract the background, detect sources and measure their aperture fluxes.

    Parameters
    ----------
    image : 2-D array, ADU, bias-subtracted (the sky level enters the CCD noise model).
        NaN/inf pixels are masked. The caller's array is not modified.
    gain : e⁻/ADU, > 0. May be None only with ``noise_model="measured"`` (then no source
        Poisson term is added: use it for images in arbitrary units).
    read_noise : e⁻ rms per pixel, ≥ 0; None only with ``noise_model="measured"``.
    aperture_radius : circular aperture radius, pixels (also the Kron fallback radius); None
        chooses ``AUTO_APERTURE_PER_FWHM`` × the seeing FWHM measured on bright isolated stars.
    saturation : ADU; pixels ≥ this are saturated (default: none).
    photometry : ``"circle"`` (fixed radius) or ``"kron"`` (adaptive elliptical aperture of
        2.5 Kron radii, Kron 1980 / SExtractor MAG_AUTO, circular fallback for small ones).
    detect_threshold : detection threshold in units of the per-pixel σ.
    min_area : minimum connected pixels above threshold.
    background_box, background_filter : sep background mesh size and median filter, pixels.
    isolation_radius : pixels; a detection with a neighbour closer than this is
        ``FLAG_CROWDED``. Default 2 × aperture radius.
    noise_model : ``"ccd"`` (σ² = sky/g + (RN/g)², from the background model, gain and read
        noise) or ``"measured"`` (sep's background rms map).
    mean_sky : correct sep's mode-based background to the clipped mean sky away from sources
        (unbiased aperture fluxes on Poisson sky, see ``_sky_mean_offset``).
    aperture_correction : measure Δ = m_aper − m_total on the curve of growth of bright
        isolated stars, or from a Moffat PSF fitted to the stars when they are too few
        (:func:`dancekit.photometry.aperture.total_flux_correction`).

    Returns
    -------
    SourceList
    """
    data, bad = _checked_image(image)
    _check_noise_parameters(gain, read_noise, noise_model)
    if aperture_radius is not None and not (np.isfinite(aperture_radius) and aperture_radius > 0):
        raise ParameterError(f"aperture_radius must be a positive number of pixels (or None), got {aperture_radius!r}")
    if photometry not in ("circle", "kron"):
        raise ParameterError(f"photometry must be 'circle' or 'kron', got {photometry!r}")
    if not detect_threshold > 0:
        raise ParameterError(f"detect_threshold must be > 0 sigma, got {detect_threshold!r}")
    if isolation_radius is not None and isolation_radius < 0:
        raise ParameterError(f"isolation_radius must be >= 0 pixels, got {isolation_radius!r}")
    return _extract_sources(
        data, bad, gain, read_noise, None if aperture_radius is None else float(aperture_radius),
        float(saturation), photometry, float(detect_threshold), int(min_area), int(background_box),
        int(background_filter), None if isolation_radius is None else float(isolation_radius),
        noise_model, bool(mean_sky), bool(aperture_correction),
    )


def _checked_image(image):
    data = np.asarray(image)
    if data.ndim != 2:
        raise InputError(f"the image must be 2-D, got shape {data.shape}")
    if min(data.shape) < 8:
        raise InputError(f"the image is too small for source extraction: shape {data.shape}")
    data = np.array(data, dtype=np.float32, order="C", copy=True)  # never touch the caller's array
    bad = ~np.isfinite(data)
    if bad.all():
        raise InputError("the image has no finite pixel (all NaN/inf)")
    if bad.any():
        data[bad] = 0.0
        return data, bad
    return data, None


def _check_noise_parameters(gain, read_noise, noise_model):
    if noise_model not in ("ccd", "measured"):
        raise ParameterError(f"noise_model must be 'ccd' or 'measured', got {noise_model!r}")
    if gain is not None and not (np.isfinite(gain) and gain > 0):
        raise ParameterError(f"gain must be a positive finite number of e-/ADU, got {gain!r}")
    if read_noise is not None and not (np.isfinite(read_noise) and read_noise >= 0):
        raise ParameterError(f"read_noise must be a finite number of electrons >= 0, got {read_noise!r}")
    if noise_model == "ccd" and (gain is None or read_noise is None):
        raise ParameterError(
            "noise_model='ccd' needs both gain (e-/ADU) and read_noise (e-); "
            "use noise_model='measured' when they are unknown"
        )


def _extract_sources(data, bad, gain, read_noise, radius, saturation, photometry, threshold,
                     min_area, box, filt, isolation_radius, noise_model, mean_sky,
                     correct_aperture=False) -> SourceList:
    bkg = sep.Background(data, mask=bad, bw=box, bh=box, fw=filt, fh=filt)
    sky = within_mesh_range(bkg.back(), box)
    if noise_model == "ccd":  # per-pixel variance from the CCD equation, ADU²
        noise_map = np.maximum(sky, 0.0) / gain + np.float32((read_noise / gain) ** 2)
        global_sigma = np.sqrt(max(bkg.globalback, 0.0) / gain + (read_noise / gain) ** 2)
    else:
        noise_map = within_mesh_range(bkg.rms(), box) ** 2
        global_sigma = bkg.globalrms
    saturated = (data >= saturation) if np.isfinite(saturation) else None
    data -= sky
    del sky
    mask = _combine_masks(bad, saturated)
    objects = _detect(data, threshold, max(global_sigma, 1e-12), bad, min_area)
    x = objects["x"].astype(float)
    y = objects["y"].astype(float)
    a = objects["a"].astype(float)
    b = objects["b"].astype(float)
    theta = objects["theta"].astype(float)
    flags = np.zeros(x.size, dtype=np.int32)
    fwhm = seeing_fwhm(data, mask, x, y, a, objects["flux"], objects["flag"])
    if radius is None:
        if not np.isfinite(fwhm):
            raise InputError("no isolated star to measure the seeing on; give an aperture radius")
        radius = max(AUTO_APERTURE_PER_FWHM * fwhm, 1.0)
    if isolation_radius is None:
        isolation_radius = 2.0 * radius
    if mean_sky:
        data -= np.float32(_sky_mean_offset(data, mask, x, y, 2.0 * radius))
    if x.size == 0:
        empty = np.zeros(0)
        return SourceList(empty, empty, empty, empty, flags, empty, empty, empty, float(global_sigma),
                          aperture_radius=radius, fwhm=fwhm)
    flux, area, aper_flags = _aperture_fluxes(data, mask, x, y, a, b, theta, radius, photometry)
    # CCD equation (Howell 2006 eq. 4.4) in ADU²: A·σ²_pix(local sky) + F/g
    rows = np.clip(np.rint(y).astype(int), 0, data.shape[0] - 1)
    cols = np.clip(np.rint(x).astype(int), 0, data.shape[1] - 1)
    variance = area * noise_map[rows, cols]
    if gain is not None:
        variance = variance + np.maximum(flux, 0.0) / gain
    flux_err = np.sqrt(variance)
    flags[(aper_flags & sep.APER_HASMASKED) != 0] |= FLAG_SATURATED
    flags[((aper_flags & sep.APER_TRUNC) != 0) | ((objects["flag"] & sep.OBJ_TRUNC) != 0)] |= FLAG_EDGE
    flags[(objects["flag"] & sep.OBJ_MERGED) != 0] |= FLAG_BLENDED
    flags[_has_close_neighbour(x, y, isolation_radius)] |= FLAG_CROWDED
    flags[~(np.isfinite(flux) & (flux > 0))] |= FLAG_BAD_FLUX
    if bad is not None:  # a NaN pixel in the aperture is not a saturation; keep it as edge-like
        nan_in = _aperture_touches(bad, x, y, radius)
        flags[nan_in] |= FLAG_EDGE
        flags[nan_in & ~_aperture_touches(saturated, x, y, radius)] &= ~FLAG_SATURATED
    correction = (total_flux_correction(data, mask, x, y, flux, flux_err, flags, radius,
                                        sky_sigma=max(float(global_sigma), 1e-12), gain=gain, fwhm=fwhm)
                  if correct_aperture else ApertureCorrection())
    return SourceList(x=x, y=y, flux=flux, flux_err=flux_err, flags=flags, a=a, b=b, theta=theta,
                      background_rms=float(global_sigma), aperture_radius=radius, fwhm=fwhm,
                      correction=correction)


def _detect(data, threshold, sigma, bad, min_area):
    """sep.extract at ``threshold`` × the global σ; the pixel stack (default 300 000) and the
    deblending sub-object limit are raised only when a crowded frame overflows them."""
    if sep.get_sub_object_limit() < 4096:
        sep.set_sub_object_limit(4096)
    for attempt in range(3):
        try:
            return sep.extract(data, threshold, err=sigma, mask=bad, minarea=min_area,
                               deblend_cont=0.005)
        except Exception as exc:  # sep raises plain Exception on buffer overflows
            if "pixel buffer full" not in str(exc) or attempt == 2:
                raise InputError(
                    f"source extraction failed ({exc}); raise detect_threshold or min_area"
                ) from exc
            sep.set_extract_pixstack(max(4 * sep.get_extract_pixstack(), data.size // 4))


def _sky_mean_offset(data, mask, x, y, radius, max_pixels=1_000_000, clip=3.0):
    """Clipped mean of the background-subtracted sky away from sources, ADU.

    sep's background is a mode estimate (2.5 median − 1.5 mean, Bertin & Arnouts 1996), robust
    but biased low for Poisson-skewed sky: for Poisson counts mean − mode ≈ 1/3 to 1/2 e⁻
    whatever the level, i.e. a bias of ~100 e⁻ in a 250-pixel aperture. Aperture photometry
    needs the *mean* sky under the star, so this offset (a 3σ-clipped mean of the pixels
    outside ``radius`` of every detection, on a sub-grid of at most ``max_pixels``) is removed.
    """
    source_mask = np.zeros(data.shape, dtype=bool)
    if x.size:
        ones = np.ones(x.size)
        sep.mask_ellipse(source_mask, x, y, ones, ones, np.zeros(x.size), r=radius)
    if mask is not None:
        source_mask |= mask
    step = max(1, int(np.sqrt(data.size / max_pixels)))
    sky = data[::step, ::step][~source_mask[::step, ::step]].astype(float)
    if sky.size < 100:
        return 0.0
    keep = np.ones(sky.size, dtype=bool)
    for _ in range(10):
        centre = np.mean(sky[keep])
        scale = np.std(sky[keep])
        new_keep = np.abs(sky - centre) <= clip * scale
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return float(np.mean(sky[keep]))


def _combine_masks(bad, saturated):
    if bad is None:
        return saturated
    if saturated is None:
        return bad
    return bad | saturated


def _aperture_fluxes(data, mask, x, y, a, b, theta, radius, photometry):
    """Aperture sums (ADU), aperture areas (pixels) and sep aperture flags."""
    if photometry == "circle":
        flux, _, flag = sep.sum_circle(data, x, y, radius, mask=mask, subpix=5)
        return flux, np.full(x.size, np.pi * radius**2), flag
    kron, kron_flag = sep.kron_radius(data, x, y, a, b, theta, 6.0, mask=mask)
    kron = np.where(np.isfinite(kron) & (kron > 0), kron, 0.0)
    flux, _, flag = sep.sum_ellipse(data, x, y, a, b, theta, _KRON_FACTOR * kron, mask=mask, subpix=5)
    area = np.pi * a * b * (_KRON_FACTOR * kron) ** 2
    flag = flag | kron_flag
    small = kron * np.sqrt(a * b) < _KRON_MIN_RADIUS
    if np.any(small):
        cflux, _, cflag = sep.sum_circle(data, x[small], y[small], radius, mask=mask, subpix=5)
        flux[small], flag[small], area[small] = cflux, cflag, np.pi * radius**2
    return flux, area, flag


def _aperture_touches(mask, x, y, radius):
    if mask is None:
        return np.zeros(x.size, dtype=bool)
    hits, _, _ = sep.sum_circle(mask.astype(np.float32), x, y, radius, subpix=1)
    return hits > 0


def _has_close_neighbour(x, y, radius):
    if x.size < 2 or radius <= 0:
        return np.zeros(x.size, dtype=bool)
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return distance[:, 1] < radius
