"""The effective PSF of an image, built from its isolated stars, or taken from an array.

The ePSF (Anderson & King 2000, PASP 112, 1360) is the PSF convolved with the pixel, sampled on
a grid finer than the pixels; photutils' ``EPSFBuilder`` builds it iteratively from star cutouts
(stack the normalised residuals, smooth, recentre, refit the stars' centres and fluxes). The
stars are chosen here: the brightest detections with no comparable neighbour in their cutout,
away from the edges and from masked pixels.

Besides the PSF, the builder's refitted star centres say where the stars sit on *this* image
relative to the positions they were given: with positions measured on another image (the sharp
one of a dual-image catalogue), the median difference is the shift that registers them.

Pixels: 0-based, (0, 0) the centre of the first pixel (sep's convention). The ePSF is normalised
to unit flux over its grid (photutils: its data sum to the product of the oversampling factors).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from dancekit.errors import InputError

OVERSAMPLING = 1  # ePSF samples per pixel: a seeing-limited stack (FWHM >~ 3 px) is well sampled
BOX_PER_FWHM = 5.0  # ePSF size / FWHM
MIN_PSF_STARS = 5  # fewer isolated stars cannot average out their neighbours and noise
WING_START, WING_END = 1.0, 2.0  # FWHM: the ePSF's own values inside, a fitted Moffat outside
WING_FIT = 1.5  # FWHM: the Moffat is fitted to the ePSF within this radius, where its stars' signal dominates
MAX_PSF_STARS = 40  # the brightest ones; each build iteration refits every star (~20 ms each)


@dataclass(frozen=True)
class EffectivePSF:
    """An ePSF and what it was built from.

    Attributes
    ----------
    psf : photutils ``ImagePSF``, unit flux.
    n_stars : stars it was built from (0 for a PSF given as an array).
    shift : (dx, dy) pixels, median refitted centre minus given position of those stars
        (0, 0 for a given PSF).
    fwhm : full width at half maximum, pixels (from the area above half the peak).
    """

    psf: object
    n_stars: int
    shift: tuple[float, float]
    fwhm: float


def psf_box(fwhm: float, per_fwhm: float = BOX_PER_FWHM) -> int:
    """Odd cutout size (pixels) of ``per_fwhm`` FWHM + 1, 9-81 px. The default, 8 FWHM, holds a
    seeing-limited star with its wings (a β = 3 Moffat leaves 0.3 % of its light outside): light
    beyond the PSF is fitted as background, too high near bright stars and too low elsewhere."""
    size = int(np.ceil(per_fwhm * fwhm))
    return int(np.clip(size + 1 - size % 2, 9, 81))


def image_fwhm(image, x, y, brightness, noise: float, *, box: int = 25, n_stars: int = 30,
               min_peak_snr: float = 20.0) -> float:
    """Median FWHM (pixels) of the ``n_stars`` brightest stars whose peak exceeds ``min_peak_snr``
    × ``noise``: the diameter of the disc with the area of the connected pixels above half the
    star's peak (robust to neighbours and to a background error, unlike a half-light radius in a
    crowded field). NaN if no star qualifies.

    Parameters
    ----------
    image : background-subtracted image. x, y : detections, pixels; brightness : their ranking.
    noise : background rms per pixel, image units. box : odd cutout size, pixels.
    """
    from scipy import ndimage

    data = np.asarray(image, float)
    x, y = np.asarray(x, float), np.asarray(y, float)
    half = box // 2
    index = np.flatnonzero(_inside(x, y, data.shape, half + 1))
    index = index[np.argsort(np.asarray(brightness, float)[index])[::-1][:n_stars]]
    widths = []
    for i in index:
        cx, cy = int(np.rint(x[i])), int(np.rint(y[i]))
        cutout = np.nan_to_num(data[cy - half:cy + half + 1, cx - half:cx + half + 1])
        centre = cutout[half - 1:half + 2, half - 1:half + 2]
        peak = centre.max()
        if not peak > min_peak_snr * noise:
            continue
        labels, _ = ndimage.label(cutout >= 0.5 * peak)
        row, col = np.unravel_index(np.argmax(centre), centre.shape)
        widths.append(2.0 * np.sqrt(np.count_nonzero(labels == labels[half - 1 + row, half - 1 + col]) / np.pi))
    return float(np.median(widths)) if widths else float("nan")


def choose_psf_stars(x, y, brightness, shape, box: int, *, contamination: float = np.inf, allowed=None,
                     min_separation: float = 0.0, disjoint: bool = False, max_stars: int = MAX_PSF_STARS) -> np.ndarray:
    """Indices of stars to build the ePSF from, brightest first.

    A star qualifies when its ``box``-pixel cutout lies inside the image, no other star in the
    cutout is brighter than ``contamination`` × its brightness, no star is closer than
    ``min_separation`` pixels, and ``allowed`` (bool per star) is True. With ``disjoint`` the
    chosen cutouts do not overlap (needed when each star's neighbours were subtracted from one
    shared image that still holds the chosen stars themselves).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    brightness = np.asarray(brightness, float)
    ok = _inside(x, y, shape, box / 2 + 1) & np.isfinite(brightness) & (brightness > 0)
    if allowed is not None:
        ok &= np.asarray(allowed, bool)
    if x.size > 1:
        tree = cKDTree(np.column_stack([x, y]))
        for i in np.flatnonzero(ok):
            others = [j for j in tree.query_ball_point([x[i], y[i]], box / np.sqrt(2)) if j != i]
            near = np.asarray(others, int)
            in_box = near[(np.abs(x[near] - x[i]) <= box / 2) & (np.abs(y[near] - y[i]) <= box / 2)]
            if (brightness[in_box] > contamination * brightness[i]).any() or \
                    (np.hypot(x[near] - x[i], y[near] - y[i]) < min_separation).any():
                ok[i] = False
    chosen: list[int] = []
    for i in np.flatnonzero(ok)[np.argsort(brightness[ok])[::-1]]:
        if disjoint and any(abs(x[i] - x[j]) < box and abs(y[i] - y[j]) < box for j in chosen):
            continue
        chosen.append(int(i))
        if len(chosen) == max_stars:
            break
    return np.asarray(chosen, dtype=int)


def build_epsf(image, x, y, box: int, *, own=None, local_sky: bool = True, initial=None,
               oversampling: int = OVERSAMPLING, max_iterations: int = 10) -> EffectivePSF:
    """Build the ePSF of ``image`` from the stars at (x, y) with photutils' ``EPSFBuilder``.

    Parameters
    ----------
    image : background-subtracted image, or the residual of a fit of every star.
    x, y : the stars' positions, pixels (from ``choose_psf_stars``).
    box : odd cutout size, pixels; stars whose cutout leaves the image are skipped.
    own : (N, box, box) light of each star in its cutout, added back to a residual image.
    local_sky : subtract from each cutout the median of an annulus just outside it: a background
        error left under a star would become a pedestal of the ePSF, which a later fit could not
        tell from the sky.
    initial : an ePSF of the same box to start from (photutils ``ImagePSF``), or None.
    oversampling : ePSF samples per pixel. max_iterations : of the builder.

    Raises
    ------
    InputError : fewer than ``MIN_PSF_STARS`` usable stars, or the builder failed.
    """
    from photutils.psf import EPSFBuilder, EPSFStar, EPSFStars

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < MIN_PSF_STARS:
        raise InputError(f"cannot build a PSF: {x.size} isolated bright stars found, {MIN_PSF_STARS} needed "
                         "(give one with --psf)")
    data = np.where(np.isfinite(image), image, 0.0)
    sky = _local_sky(data, x, y, box) if local_sky else np.zeros(x.size)
    half = box // 2
    stars = []
    for k, (cx, cy) in enumerate(zip(np.rint(x).astype(int), np.rint(y).astype(int))):
        if cx - half < 0 or cy - half < 0 or cx + half >= data.shape[1] or cy + half >= data.shape[0]:
            continue
        cutout = data[cy - half:cy + half + 1, cx - half:cx + half + 1] + (own[k] if own is not None else 0.0) - sky[k]
        stars.append(EPSFStar(cutout, cutout_center=(x[k] - cx + half, y[k] - cy + half),
                              origin=(cx - half, cy - half), id_label=k))
    if len(stars) < MIN_PSF_STARS:
        raise InputError(f"cannot build a PSF: only {len(stars)} star cutouts fit in the image, {MIN_PSF_STARS} needed")
    builder = EPSFBuilder(oversampling=oversampling, maxiters=max_iterations, progress_bar=False,
                          smoothing_kernel=None if oversampling == 1 else "quadratic" if oversampling == 2 else "quartic")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # photutils warns per star about fits and convergence
            result = builder.build_epsf(EPSFStars(stars), epsf=initial)
    except ValueError as exc:
        raise InputError(f"cannot build a PSF from {len(stars)} stars ({exc})") from None
    psf = result.epsf
    if not np.isfinite(psf.data).all() or not psf.data.sum() > 0:
        raise InputError(f"cannot build a PSF: the ePSF of {len(stars)} stars is not finite and positive")
    good = result.fitted_stars.all_good_stars
    if len(good) < MIN_PSF_STARS:
        raise InputError(f"cannot build a PSF: {len(good)} of {len(stars)} stars could be fitted")
    ids = np.array([s.id_label for s in good], int)
    centres = np.array([s.center for s in good], float)
    shift = (float(np.median(centres[:, 0] - x[ids])), float(np.median(centres[:, 1] - y[ids])))
    return EffectivePSF(psf, len(good), shift, psf_fwhm(psf))


def with_moffat_wings(effective: EffectivePSF, inner: float = WING_START, outer: float = WING_END) -> EffectivePSF:
    """The ePSF with its wings replaced by a Moffat profile fitted to it (DAOPHOT's analytic
    function plus look-up table, Stetson 1987): the empirical ePSF inside ``inner`` FWHM, the
    Moffat beyond ``outer`` FWHM, a cos² blend between.

    Why: EPSFBuilder averages its stars' normalised cutouts unweighted, so in the wings, where a
    star's signal is ~0.1 % of its peak, the faint PSF stars' noise dominates; wings that are too
    low or ragged put the missing light into the fitted background and into neighbours' fluxes.
    The Moffat (centre, flux, α, β free) is fitted within ``WING_FIT`` FWHM, where the ePSF is good
    (beyond, the built wings fall 30-80 % short of the true ones on a field of rendered stars).
    """
    from astropy.modeling import fitting
    from photutils.psf import MoffatPSF

    data = np.asarray(effective.psf.data, float)
    over = float(np.asarray(effective.psf.oversampling, float).ravel()[0])
    ny, nx = data.shape
    yy, xx = np.mgrid[0:ny, 0:nx] / over  # pixels
    cx, cy = (nx - 1) / 2 / over, (ny - 1) / 2 / over
    radius = np.hypot(xx - cx, yy - cy)
    fwhm = effective.fwhm
    beta = 3.0
    start = MoffatPSF(flux=data.sum() / over**2, x_0=cx, y_0=cy, alpha=fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1)),
                      beta=beta, fixed={"alpha": False, "beta": False}, bounds={"beta": (1.2, 20.0)})
    near = radius <= WING_FIT * fwhm
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fitting.TRFLSQFitter()(start, xx[near], yy[near], data[near] / over**2, maxiter=200)
    except Exception:  # noqa: BLE001 - a failed fit keeps the ePSF as built
        return effective
    wings = model(xx, yy) * over**2
    if not (np.isfinite(wings).all() and wings.max() > 0):
        return effective
    blend = np.clip((outer * fwhm - radius) / ((outer - inner) * fwhm), 0.0, 1.0)
    blend = np.sin(blend * np.pi / 2) ** 2  # 1 inside, 0 outside
    hybrid = blend * data + (1 - blend) * wings
    return EffectivePSF(psf_from_array(hybrid, int(over)), effective.n_stars, effective.shift, effective.fwhm)


def _local_sky(data, x, y, box: int, width: float = 4.0) -> np.ndarray:
    """Each star's local sky: the median of an annulus ``width`` pixels wide just outside its
    ``box`` cutout (DAOPHOT's sky annulus, outside the PSF so that the ePSF keeps its wings)."""
    half = box // 2
    inner, outer = half + 1.0, half + 1.0 + width
    reach = int(np.ceil(outer))
    offsets = np.arange(-reach, reach + 1)
    annulus = (np.hypot(offsets[None, :], offsets[:, None]) >= inner) & (np.hypot(offsets[None, :], offsets[:, None]) < outer)
    height, width_px = data.shape
    sky = np.zeros(np.size(x))
    for k, (cx, cy) in enumerate(zip(np.rint(x).astype(int), np.rint(y).astype(int))):
        rows, cols = cy + offsets, cx + offsets
        keep = annulus & ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width_px))[None, :]
        values = data[np.clip(rows, 0, height - 1)[:, None], np.clip(cols, 0, width_px - 1)[None, :]][keep]
        sky[k] = np.median(values) if values.size else 0.0
    return sky


def psf_from_array(data, oversampling: int = 1):
    """A photutils ``ImagePSF`` from a PSF image (peak at its centre), normalised to unit flux.

    Raises InputError for an array that is not 2-D, smaller than 4×4 samples, not finite, or
    without positive total.
    """
    from photutils.psf import ImagePSF

    data = np.asarray(data, dtype=float)
    if data.ndim != 2:
        raise InputError(f"the PSF must be a 2-D image, got shape {data.shape}")
    if min(data.shape) < 4:
        raise InputError(f"the PSF image is too small ({data.shape[0]}x{data.shape[1]}; at least 4x4 samples)")
    if not np.isfinite(data).all():
        raise InputError("the PSF image holds NaN or infinite values")
    if not (isinstance(oversampling, (int, np.integer)) and oversampling >= 1):
        raise InputError(f"the PSF oversampling must be an integer >= 1, got {oversampling!r}")
    total = data.sum()
    if not total > 0:
        raise InputError("the PSF image does not have a positive total")
    return ImagePSF(data * (oversampling**2 / total), oversampling=int(oversampling))


def psf_fwhm(psf) -> float:
    """FWHM (pixels) of an ``ImagePSF``: the diameter of the disc with the area above half the peak."""
    over = np.prod(np.asarray(psf.oversampling, float))
    area = np.count_nonzero(psf.data >= 0.5 * psf.data.max()) / over
    return float(2.0 * np.sqrt(area / np.pi))


def _inside(x, y, shape, margin):
    return (x >= margin - 0.5) & (y >= margin - 0.5) & (x <= shape[1] - 0.5 - margin) & (y <= shape[0] - 0.5 - margin)


def _nearest_distance(x, y):
    if x.size < 2:
        return np.full(x.size, np.inf)
    distance, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return distance[:, 1]
