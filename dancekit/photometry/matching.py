"""Pixels to sky through a WCS, and one-to-one sky matching to a reference catalogue.

Matching works on unit vectors: two directions separated by an angle θ are a chord
2 sin(θ/2) apart, so a k-d tree on (x, y, z) gives exact great-circle neighbours at any
declination (no RA wrap or cos δ problems). Pairs within the radius are assigned greedily in
order of increasing separation, which yields a one-to-one match in which no accepted pair has
a closer rival that is still free (the usual "best mutual match" of catalogue cross-matching).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from dancekit.errors import ParameterError


@dataclass(frozen=True)
class SkyMatch:
    """One-to-one matches between detections and reference stars.

    Attributes
    ----------
    source_index, reference_index : int arrays (M,), indices into the two inputs.
    separation : (M,) angular separation of each pair, radians.
    n_ambiguous : detections that had a reference star within the radius but lost it to a
        closer detection (or the reverse): they are left unmatched.
    """

    source_index: np.ndarray
    reference_index: np.ndarray
    separation: np.ndarray
    n_ambiguous: int

    def __len__(self) -> int:
        return int(self.source_index.size)


def pixel_to_sky(wcs, x, y):
    """Sky position of pixel coordinates through an astropy WCS (distortions included).

    Parameters
    ----------
    wcs : astropy.wcs.WCS with a celestial part. x, y : pixels, 0 = centre of the first pixel
        (sep's convention).

    Returns
    -------
    (ra, dec) : radians, ra in [0, 2π).
    """
    celestial = _celestial(wcs)
    ra_deg, dec_deg = celestial.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
    return np.mod(np.radians(ra_deg), 2 * np.pi), np.radians(dec_deg)


def sky_to_pixel(wcs, ra, dec):
    """Pixel coordinates (0 = centre of the first pixel) of sky positions in radians."""
    celestial = _celestial(wcs)
    x, y = celestial.all_world2pix(np.degrees(np.asarray(ra, float)), np.degrees(np.asarray(dec, float)),
                                   0, quiet=True)
    return x, y


def inside_image(wcs, ra, dec, shape, margin: float = 0.0):
    """True for sky positions (radians) that land on the image of ``shape`` (H, W), at least
    ``margin`` pixels from its edge."""
    with np.errstate(invalid="ignore"):
        x, y = sky_to_pixel(wcs, ra, dec)
        height, width = shape
        return ((x >= -0.5 + margin) & (x <= width - 0.5 - margin)
                & (y >= -0.5 + margin) & (y <= height - 0.5 - margin))


def match_to_catalogue(ra, dec, ref_ra, ref_dec, radius: float) -> SkyMatch:
    """Match detections to reference stars one-to-one within an angular radius.

    Parameters
    ----------
    ra, dec : detections, radians. ref_ra, ref_dec : reference stars, radians.
    radius : maximum separation, radians (> 0; e.g. ``1.5 * ARCSEC``).

    Returns
    -------
    SkyMatch
    """
    if not (np.isfinite(radius) and 0 < radius < np.pi):
        raise ParameterError(f"match radius must be in (0, pi) radians, got {radius!r}")
    return _match_to_catalogue(np.asarray(ra, float), np.asarray(dec, float),
                               np.asarray(ref_ra, float), np.asarray(ref_dec, float), float(radius))


def _unit_vectors(ra, dec):
    cos_dec = np.cos(dec)
    return np.column_stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])


def _match_to_catalogue(ra, dec, ref_ra, ref_dec, radius) -> SkyMatch:
    empty = np.zeros(0, dtype=np.intp)
    good = np.isfinite(ra) & np.isfinite(dec)
    if ra.size == 0 or ref_ra.size == 0 or not good.any():
        return SkyMatch(empty, empty, np.zeros(0), 0)
    source_ids = np.flatnonzero(good)
    chord = 2.0 * np.sin(radius / 2.0)
    tree = cKDTree(_unit_vectors(ref_ra, ref_dec))
    pairs = tree.query_ball_point(_unit_vectors(ra[good], dec[good]), chord)
    counts = np.fromiter((len(p) for p in pairs), dtype=np.intp, count=len(pairs))
    if counts.sum() == 0:
        return SkyMatch(empty, empty, np.zeros(0), 0)
    src = np.repeat(source_ids, counts)
    ref = np.fromiter((j for p in pairs for j in p), dtype=np.intp, count=int(counts.sum()))
    separation = _angular_separation(ra[src], dec[src], ref_ra[ref], ref_dec[ref])
    order = np.argsort(separation, kind="stable")
    src, ref, separation = src[order], ref[order], separation[order]
    if len(np.unique(src)) == src.size and len(np.unique(ref)) == ref.size:
        keep = np.ones(src.size, dtype=bool)  # no contention: every pair is already unique
    else:
        keep = _greedy_unique(src, ref)
    candidates = np.unique(src).size
    kept = int(keep.sum())
    return SkyMatch(src[keep], ref[keep], separation[keep], candidates - kept)


def _greedy_unique(src, ref):
    """Accept pairs in order (closest first) unless either member is already taken."""
    keep = np.zeros(src.size, dtype=bool)
    used_src, used_ref = set(), set()
    for i, (s, r) in enumerate(zip(src.tolist(), ref.tolist())):
        if s in used_src or r in used_ref:
            continue
        used_src.add(s)
        used_ref.add(r)
        keep[i] = True
    return keep


def _angular_separation(ra1, dec1, ra2, dec2):
    """Great-circle separation, radians (Vincenty formula, stable at all angles)."""
    dra = ra2 - ra1
    num = np.hypot(np.cos(dec2) * np.sin(dra),
                   np.cos(dec1) * np.sin(dec2) - np.sin(dec1) * np.cos(dec2) * np.cos(dra))
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(dra)
    return np.arctan2(num, den)


def _celestial(wcs):
    if not getattr(wcs, "has_celestial", False):
        raise ParameterError("the WCS has no celestial axes: cannot convert pixels to ra/dec")
    return wcs.celestial
