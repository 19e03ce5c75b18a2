"""Star fields follow the distributions they claim; catalogues land where the WCS puts them."""

import numpy as np
import pytest
from scipy import stats

from dancekit.errors import InputError, ParameterError
from dancekit.sky.noise import add_noise, mag_to_rate, read_noise_map, sky_rate_per_pixel
from dancekit.sky.star_fields import (
    catalogue_field, cluster_field, homogeneous_field, king_radii, plummer_radii, sample_magnitudes, tan_wcs,
)


def test_magnitudes_grow_by_10_to_the_0_4_per_magnitude():
    mags = sample_magnitudes(400_000, np.random.default_rng(0), mag_max=21, mag_min=12)
    assert mags.min() >= 12 and mags.max() <= 21
    counts, _ = np.histogram(mags, bins=np.arange(15, 22))
    ratios = counts[1:] / counts[:-1]
    np.testing.assert_allclose(ratios, 10**0.4, rtol=0.03)


def test_homogeneous_field_is_uniform_with_n_in_range():
    rng = np.random.default_rng(1)
    ns = [len(homogeneous_field((64, 80), rng)) for _ in range(200)]
    assert 3 <= min(ns) and max(ns) <= 2000 and 800 < np.mean(ns) < 1200
    field = homogeneous_field((64, 80), rng, n_stars=20000)
    assert stats.kstest((field.x + 0.5) / 80, "uniform").pvalue > 1e-3


def test_plummer_half_number_radius_is_the_scale_radius():
    r = plummer_radii(200_000, 10.0, 1e6, np.random.default_rng(2))
    assert np.median(r) == pytest.approx(10.0, rel=0.01)


def test_king_radii_follow_the_king_surface_density():
    rc, rt = 5.0, 200.0
    r = king_radii(100_000, rc, rt, np.random.default_rng(3))
    assert r.max() <= rt

    def cdf(x):
        from scipy.integrate import quad

        sigma = lambda s: 2 * np.pi * s * (1 / np.sqrt(1 + (s / rc) ** 2) - 1 / np.sqrt(1 + (rt / rc) ** 2)) ** 2
        return quad(sigma, 0, x, limit=200)[0] / quad(sigma, 0, rt, limit=200)[0]

    for q in (0.25, 0.5, 0.9):
        assert cdf(np.quantile(r, q)) == pytest.approx(q, abs=0.01)


def test_cluster_has_exactly_n_stars_inside_the_frame_and_is_concentrated():
    field = cluster_field((256, 256), 3000, np.random.default_rng(4), core_radius=10, tidal_radius=2000)
    assert len(field) == 3000
    assert field.x.min() >= -0.5 and field.x.max() < 255.5
    r = np.hypot(field.x - 127.5, field.y - 127.5)
    assert np.mean(r < 30) > 3 * (np.pi * 30**2 / 256**2)
    with pytest.raises(ParameterError, match="cluster profile must be 'king' or 'plummer'"):
        cluster_field((8, 8), 1, np.random.default_rng(), profile="gauss")


def test_catalogue_through_the_wcs_round_trips():
    wcs = tan_wcs((100, 120), 250.4, 36.5, 0.235)
    x, y = np.array([10.2, 60.0, 110.7]), np.array([5.5, 50.0, 90.1])
    ra, dec = wcs.all_pix2world(x, y, 0)
    field = catalogue_field({"RA": ra, "Dec": dec, "mag": np.array([15.0, 16, 17])}, (100, 120), wcs)
    np.testing.assert_allclose(field.x, x, atol=1e-6)
    np.testing.assert_allclose(field.y, y, atol=1e-6)
    centre = wcs.all_pix2world([[59.5, 49.5]], 0)[0]
    assert centre == pytest.approx([250.4, 36.5])
    with pytest.raises(InputError, match="no 'mag' column"):
        catalogue_field({"x": x, "y": y}, (100, 120))
    with pytest.raises(InputError, match="needs x/y or ra/dec"):
        catalogue_field({"a": x, "mag": x}, (100, 120))
    with pytest.raises(InputError, match="no star of the catalogue falls inside the frame"):
        catalogue_field({"x": x + 1000, "y": y, "mag": x}, (100, 120))


def test_noise_is_poisson_plus_read_noise():
    rng = np.random.default_rng(5)
    expected = np.full((400, 400), 50.0)
    noisy = add_noise(expected, rng, read_noise=3.0)
    assert noisy.mean() == pytest.approx(50, abs=0.05)
    assert noisy.var() == pytest.approx(50 + 9, rel=0.02)
    adu = add_noise(expected, rng, read_noise=3.0, gain=2.0, bits=16)
    assert adu.var() == pytest.approx((50 + 9) / 4 + 1 / 12, rel=0.03)
    assert np.all(adu == np.round(adu))
    sigma = read_noise_map((300, 300), 1.0, rng)
    assert np.sqrt(np.mean(sigma**2)) == pytest.approx(1.0, rel=0.05) and sigma.std() > 0.2


def test_fluxes():
    assert mag_to_rate(24.6, 24.6) == pytest.approx(1.0)
    assert mag_to_rate(19.6, 24.6) == pytest.approx(100.0)
    assert sky_rate_per_pixel(20.0, 25.0, 0.5) == pytest.approx(100 * 0.25)
