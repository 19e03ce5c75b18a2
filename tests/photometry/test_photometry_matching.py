"""Sky matching: one-to-one, exact great-circle radius, RA wrap and poles, WCS round trip."""

import numpy as np
import pytest

from dancekit.errors import ParameterError
from dancekit.photometry import ARCSEC, match_to_catalogue, pixel_to_sky, sky_to_pixel, tan_wcs


def test_recovers_a_shuffled_catalogue_with_jitter():
    rng = np.random.default_rng(0)
    ra = rng.uniform(1.0, 1.01, 500)
    dec = rng.uniform(0.3, 0.31, 500)
    order = rng.permutation(500)
    jitter = 0.3 * ARCSEC
    ref_ra = ra[order] + rng.normal(0, jitter, 500) / np.cos(dec[order])
    ref_dec = dec[order] + rng.normal(0, jitter, 500)
    match = match_to_catalogue(ra, dec, ref_ra, ref_dec, 1.5 * ARCSEC)
    # detections i matched to the catalogue row holding star i, except very close pairs
    assert len(match) > 490
    assert np.mean(order[match.reference_index] == match.source_index) > 0.99
    assert np.all(match.separation <= 1.5 * ARCSEC)
    assert len(np.unique(match.source_index)) == len(match) == len(np.unique(match.reference_index))


def test_one_to_one_keeps_the_closest_pair():
    # two detections 0.5" and 1.0" from one reference star: only the closer one is matched
    dec0 = 0.2
    ra = np.array([1.0 + 0.5 * ARCSEC / np.cos(dec0), 1.0 - 1.0 * ARCSEC / np.cos(dec0)])
    dec = np.full(2, dec0)
    match = match_to_catalogue(ra, dec, np.array([1.0]), np.array([dec0]), 2 * ARCSEC)
    assert match.source_index.tolist() == [0] and match.reference_index.tolist() == [0]
    assert match.separation[0] == pytest.approx(0.5 * ARCSEC, rel=1e-6)
    assert match.n_ambiguous == 1


def test_radius_is_a_great_circle_distance_across_ra_zero_and_near_the_pole():
    # 1.0" apart across RA = 0 at dec 0, and 1.0" apart at dec 89.99 deg (RA differs by ~1.6 deg)
    dec_pole = np.radians(89.99)
    dra_pole = 1.0 * ARCSEC / np.cos(dec_pole)
    ra = np.array([2 * np.pi - 0.5 * ARCSEC, 0.3])
    dec = np.array([0.0, dec_pole])
    ref_ra = np.array([0.5 * ARCSEC, 0.3 + dra_pole])
    ref_dec = np.array([0.0, dec_pole])
    inside = match_to_catalogue(ra, dec, ref_ra, ref_dec, 1.05 * ARCSEC)
    assert sorted(inside.source_index.tolist()) == [0, 1]
    assert np.allclose(inside.separation, 1.0 * ARCSEC, rtol=1e-3)
    outside = match_to_catalogue(ra, dec, ref_ra, ref_dec, 0.95 * ARCSEC)
    assert len(outside) == 0


def test_pixel_sky_round_trip_and_pixel_scale():
    wcs = tan_wcs((200, 300), 3.0, -0.5, 0.4 * ARCSEC, rotation=0.3)
    x = np.array([0.0, 150.0, 299.0])
    y = np.array([0.0, 100.0, 199.0])
    ra, dec = pixel_to_sky(wcs, x, y)
    back_x, back_y = sky_to_pixel(wcs, ra, dec)
    assert np.allclose(back_x, x, atol=1e-6) and np.allclose(back_y, y, atol=1e-6)
    ra2, dec2 = pixel_to_sky(wcs, x + 1.0, y)
    step = np.arccos(np.sin(dec) * np.sin(dec2) + np.cos(dec) * np.cos(dec2) * np.cos(ra2 - ra))
    assert np.allclose(step, 0.4 * ARCSEC, rtol=1e-3)


def test_bad_radius():
    with pytest.raises(ParameterError, match="match radius must be in"):
        match_to_catalogue([0.0], [0.0], [0.0], [0.0], -1.0)
