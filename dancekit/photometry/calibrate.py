"""Classical calibration of one exposure: extract, match to a reference catalogue, fit.

``matched_stars`` runs extraction and matching and keeps the reason every catalogue star on
the image did not reach the fit; ``calibrate_exposure`` fits the zero point of one exposure
(extinction fixed); ``calibrate_night`` fits ZP and extinction jointly over several exposures
of a photometric night taken at different airmasses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

from dancekit.errors import InputError, ParameterError
from dancekit.photometry.catalogue import ARCSEC, ReferenceCatalogue
from dancekit.photometry.extraction import (
    FLAG_BAD_FLUX, FLAG_BLENDED, FLAG_CROWDED, FLAG_EDGE, FLAG_SATURATED, SourceList,
    extract_sources, instrumental_magnitude,
)
from dancekit.photometry.matching import inside_image, match_to_catalogue, pixel_to_sky, sky_to_pixel
from dancekit.photometry.zeropoint_fit import ZeroPointResult, fit_zeropoint

_NEIGHBOUR_CONTRAST = 7.5  # mag: a neighbour 7.5 mag fainter adds 0.1 % of the flux
DEFAULT_REJECT_FLAGS = FLAG_SATURATED | FLAG_EDGE | FLAG_BLENDED | FLAG_CROWDED | FLAG_BAD_FLUX
# Order in which a star with several flags is counted (the most damaging first).
_FLAG_PRIORITY = (
    (FLAG_SATURATED, "saturated"),
    (FLAG_EDGE, "at the image edge"),
    (FLAG_BAD_FLUX, "non-positive flux"),
    (FLAG_BLENDED, "blended"),
    (FLAG_CROWDED, "crowded"),
)


@dataclass(frozen=True)
class MatchedStars:
    """Stars of one exposure ready for the zero-point fit (arrays of shape (M,)).

    Attributes
    ----------
    source_index, reference_index : indices into ``sources`` and the reference catalogue.
    m_ref, m_ref_err, colour : reference magnitude, error and colour (NaN colours when the
        catalogue has none), mag.
    m_inst, m_inst_err : −2.5 log10(e⁻/s) and its error, mag (total magnitudes when the
        aperture correction was applied: m_aper − ``sources.aperture_correction``).
    separation : match separation, radians.
    sources : every detection of the image.
    n_catalogue_on_image : reference stars whose position falls on the image.
    rejections : (reason, count) pairs for the reference stars on the image that are not here.
    """

    source_index: np.ndarray
    reference_index: np.ndarray
    m_ref: np.ndarray
    m_ref_err: np.ndarray
    colour: np.ndarray
    m_inst: np.ndarray
    m_inst_err: np.ndarray
    separation: np.ndarray
    sources: SourceList
    n_catalogue_on_image: int
    rejections: tuple

    def __len__(self) -> int:
        return int(self.m_ref.size)


@dataclass(frozen=True)
class ExposureCalibration:
    """A calibrated exposure: the fit and the stars it used (aligned with
    ``zeropoint.residuals`` / ``zeropoint.used``)."""

    zeropoint: ZeroPointResult
    stars: MatchedStars


def matched_stars(
    image,
    wcs,
    catalogue: ReferenceCatalogue,
    *,
    gain: float | None,
    read_noise: float | None,
    exptime: float,
    aperture_radius: float | None,
    match_radius: float = 1.5 * ARCSEC,
    saturation: float = np.inf,
    photometry: str = "circle",
    detect_threshold: float = 5.0,
    min_snr: float = 10.0,
    reject_flags: int = DEFAULT_REJECT_FLAGS,
    isolation_radius: float | None = None,
    noise_model: str = "ccd",
    need_colour: bool = False,
    aperture_correction: bool = False,
) -> MatchedStars:
    """Extract sources, convert them to the sky and match them one-to-one to the catalogue.

    Parameters
    ----------
    image : (H, W) ADU, bias-subtracted. wcs : astropy WCS of the image.
    catalogue : :class:`ReferenceCatalogue` (radians, mag).
    gain : e⁻/ADU (also defines m_inst in e⁻/s); None with ``noise_model="measured"`` when
        unknown: m_inst is then −2.5 log10(ADU/s) and the flux errors lack the stars' photon
        noise. read_noise : e⁻ (None with ``noise_model="measured"``). exptime : seconds.
    aperture_radius : pixels; None picks it from the seeing (see :func:`extract_sources`).
    match_radius : radians. saturation : ADU.
    min_snr : minimum flux / flux_err of a star used for the fit.
    reject_flags : ``FLAG_*`` bits that exclude a star.
    need_colour : reject stars without a finite colour (when a colour term is used).
    aperture_correction : convert aperture magnitudes to total ones with the curve of growth
        of bright isolated stars (:mod:`dancekit.photometry.aperture`).
    Other parameters: see :func:`extract_sources`.
    """
    if not (np.isfinite(min_snr) and min_snr >= 0):
        raise ParameterError(f"min_snr must be a number >= 0, got {min_snr!r}")
    sources = extract_sources(
        image, gain=gain, read_noise=read_noise, aperture_radius=aperture_radius,
        saturation=saturation, photometry=photometry, detect_threshold=detect_threshold,
        isolation_radius=isolation_radius, noise_model=noise_model, aperture_correction=aperture_correction,
    )
    m_inst, m_inst_err = instrumental_magnitude(sources.flux, sources.flux_err, gain=1.0 if gain is None else gain,
                                                exptime=exptime)
    m_inst = m_inst - sources.aperture_correction
    ra, dec = pixel_to_sky(wcs, sources.x, sources.y)
    match = match_to_catalogue(ra, dec, catalogue.ra, catalogue.dec, match_radius)
    on_image = inside_image(wcs, catalogue.ra, catalogue.dec, np.shape(image))
    isolation = 2.0 * sources.aperture_radius if isolation_radius is None else isolation_radius
    src, ref = match.source_index, match.reference_index
    colour = catalogue.colour[ref] if catalogue.colour is not None else np.full(ref.size, np.nan)
    reasons: dict[str, int] = {}
    n_on = int(on_image.sum())
    n_unmatched = n_on - int(on_image[ref].sum())
    _count(reasons, f"no detection within {match_radius / ARCSEC:g} arcsec", n_unmatched)
    keep = np.ones(ref.size, dtype=bool)
    flags = sources.flags[src] & reject_flags
    for bit, label in _FLAG_PRIORITY:
        hit = keep & ((flags & bit) != 0)
        _count(reasons, label, int(hit.sum()))
        keep &= ~hit
    if reject_flags & FLAG_CROWDED:
        confused = keep & _has_catalogue_neighbour(wcs, catalogue, ref, isolation)
        _count(reasons, "crowded", int(confused.sum()))
        keep &= ~confused
    snr = np.abs(sources.flux[src]) / np.where(sources.flux_err[src] > 0, sources.flux_err[src], np.inf)
    low = keep & ~(snr >= min_snr)
    _count(reasons, f"S/N below {min_snr:g}", int(low.sum()))
    keep &= ~low
    bad_ref = keep & ~(np.isfinite(catalogue.mag[ref]) & np.isfinite(catalogue.mag_err[ref]))
    _count(reasons, "no finite reference magnitude", int(bad_ref.sum()))
    keep &= ~bad_ref
    if need_colour:
        no_colour = keep & ~np.isfinite(colour)
        _count(reasons, "no reference colour", int(no_colour.sum()))
        keep &= ~no_colour
    src, ref = src[keep], ref[keep]
    return MatchedStars(
        source_index=src, reference_index=ref, m_ref=catalogue.mag[ref],
        m_ref_err=catalogue.mag_err[ref], colour=colour[keep], m_inst=m_inst[src],
        m_inst_err=m_inst_err[src], separation=match.separation[keep], sources=sources,
        n_catalogue_on_image=n_on, rejections=tuple(reasons.items()),
    )


def calibrate_exposure(
    image,
    wcs,
    catalogue: ReferenceCatalogue,
    *,
    gain: float | None,
    read_noise: float | None,
    exptime: float,
    aperture_radius: float | None,
    airmass: float = 1.0,
    extinction: float = 0.0,
    colour_term: float | None = None,
    min_stars: int = 5,
    error_floor: float = 0.002,
    clip_sigma: float = 3.0,
    **match_options,
) -> ExposureCalibration:
    """Zero point of one exposure: ``matched_stars`` then ``fit_zeropoint`` with k fixed.

    Parameters
    ----------
    airmass : X of the exposure. extinction : k, mag/airmass (fixed for one exposure).
    colour_term : None fits c when the catalogue has colours; a number fixes it.
    min_stars, error_floor (mag), clip_sigma : see :func:`fit_zeropoint`.
    match_options : keyword arguments of :func:`matched_stars` (saturation, match_radius...).

    Raises
    ------
    InputError : fewer than ``min_stars`` stars usable, with the count per rejection reason.

    With ``aperture_correction=True`` the error of the correction (common to every star) is
    added in quadrature to the ZP variance.
    """
    use_colour = catalogue.colour is not None and (colour_term is None or colour_term != 0)
    stars = matched_stars(image, wcs, catalogue, gain=gain, read_noise=read_noise, exptime=exptime,
                          aperture_radius=aperture_radius, need_colour=use_colour, **match_options)
    _require_stars(stars, min_stars, len(catalogue))
    result = fit_zeropoint(
        stars.m_ref, stars.m_inst, m_ref_err=stars.m_ref_err, m_inst_err=stars.m_inst_err,
        colour=stars.colour if use_colour else None, colour_term=colour_term, airmass=airmass,
        extinction=extinction, error_floor=error_floor, clip_sigma=clip_sigma, min_stars=min_stars,
    )
    result = with_common_error(result, stars.sources.aperture_correction_err)
    return ExposureCalibration(zeropoint=replace(result, rejections=stars.rejections), stars=stars)


def with_common_error(result: ZeroPointResult, error: float) -> ZeroPointResult:
    """The fit with a systematic error common to all stars (mag, e.g. the aperture
    correction's) added in quadrature to the ZP variance; unchanged for NaN or 0."""
    if not (np.isfinite(error) and error > 0):
        return result
    covariance = np.array(result.covariance)
    covariance[0, 0] += error**2
    covariance.flags.writeable = False
    return replace(result, covariance=covariance, zp_err=float(np.sqrt(covariance[0, 0])))


def calibrate_night(
    exposures,
    airmasses,
    *,
    colour_term: float | None = None,
    min_stars: int = 10,
    error_floor: float = 0.002,
    clip_sigma: float = 3.0,
) -> ZeroPointResult:
    """Common ZP and fitted extinction k over a photometric night (Bouguer line).

    Parameters
    ----------
    exposures : sequence of :class:`MatchedStars`, one per exposure.
    airmasses : airmass of each exposure (same length; a span ≥ 0.1 is needed).
    colour_term : None fits c (when every exposure has colours); a number fixes it.

    Returns
    -------
    ZeroPointResult with ``extinction_fitted=True``; residuals/used follow the exposures
    concatenated in order.
    """
    exposures = list(exposures)
    airmasses = np.asarray(airmasses, float)
    if len(exposures) < 2 or airmasses.shape != (len(exposures),):
        raise ParameterError(
            f"need at least 2 exposures and one airmass each, got {len(exposures)} exposures "
            f"and airmasses of shape {airmasses.shape}"
        )
    colour = np.concatenate([e.colour for e in exposures])
    use_colour = colour_term != 0 and np.all(np.isfinite(colour)) and colour.size > 0
    if colour_term not in (None, 0) and not use_colour:
        raise ParameterError(
            "a fixed colour_term needs a finite colour for every star: build the exposures "
            "with matched_stars(..., need_colour=True)"
        )
    return fit_zeropoint(
        np.concatenate([e.m_ref for e in exposures]),
        np.concatenate([e.m_inst for e in exposures]),
        m_ref_err=np.concatenate([e.m_ref_err for e in exposures]),
        m_inst_err=np.concatenate([e.m_inst_err for e in exposures]),
        colour=colour if use_colour else None,
        colour_term=colour_term if use_colour else None,
        airmass=np.repeat(airmasses, [len(e) for e in exposures]),
        extinction=None, error_floor=error_floor, clip_sigma=clip_sigma, min_stars=min_stars,
    )


def _has_catalogue_neighbour(wcs, catalogue, ref, radius, contrast=_NEIGHBOUR_CONTRAST):
    """True for reference stars with another catalogue star within ``radius`` pixels that is
    less than ``contrast`` mag fainter (enough light to bias the aperture flux by > 0.1 %).
    This catches pairs that sep detected as a single unblended object."""
    if ref.size == 0 or radius <= 0 or len(catalogue) < 2:
        return np.zeros(ref.size, dtype=bool)
    x, y = sky_to_pixel(wcs, catalogue.ra, catalogue.dec)
    xy = np.column_stack([x, y])
    finite = np.all(np.isfinite(xy), axis=1)
    tree = cKDTree(np.where(finite[:, None], xy, -1e12))
    neighbours = tree.query_ball_point(xy[ref], radius)
    mag = np.where(np.isfinite(catalogue.mag), catalogue.mag, -np.inf)
    return np.array([any(j != r and mag[j] < mag[r] + contrast for j in near)
                     for r, near in zip(ref.tolist(), neighbours)], dtype=bool)


def _count(reasons, label, count):
    if count > 0:
        reasons[label] = reasons.get(label, 0) + count


def _require_stars(stars: MatchedStars, min_stars: int, n_catalogue: int):
    if len(stars) >= min_stars:
        return
    n_off = n_catalogue - stars.n_catalogue_on_image
    parts = [f"{n_off} outside the image"] if n_off else []
    parts += [f"{count} {label}" for label, count in stars.rejections]
    detail = ", ".join(parts) if parts else "none rejected"
    raise InputError(
        f"only {len(stars)} stars usable for the zero point (need at least {min_stars}): "
        f"of {n_catalogue} catalogue stars, {detail}; {len(stars.sources)} sources detected"
    )
