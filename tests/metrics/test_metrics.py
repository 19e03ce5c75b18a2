"""The paper's quality metrics against analytic values of Gaussian stars."""

import numpy as np
import pytest

from dancekit.metrics.detection import match_one_to_one, precision_recall, within_mesh_range
from dancekit.metrics.evaluate import evaluate_image, threshold_sweep
from dancekit.metrics.star_quality import aperture_flux, centroids, d50, strehl_ratio


def gaussian_stars(shape, x, y, flux, sigma):
    """Pixel-integrated circular Gaussians (exact, via erf)."""
    from scipy.special import erf

    rows, cols = np.arange(shape[0]), np.arange(shape[1])
    image = np.zeros(shape)
    for xi, yi, fi in zip(x, y, flux):
        gx = 0.5 * (erf((cols + 0.5 - xi) / (np.sqrt(2) * sigma)) - erf((cols - 0.5 - xi) / (np.sqrt(2) * sigma)))
        gy = 0.5 * (erf((rows + 0.5 - yi) / (np.sqrt(2) * sigma)) - erf((rows - 0.5 - yi) / (np.sqrt(2) * sigma)))
        image += fi * np.outer(gy, gx)
    return image


def test_aperture_flux_of_ones_is_the_area():
    flux = aperture_flux(np.ones((50, 50)), np.array([24.3]), np.array([25.1]), 7.0)
    assert flux[0] == pytest.approx(np.pi * 49, rel=1e-3)


def fwhm_of_pixelated(sigma):
    """FWHM of a Gaussian seen through square pixels: its variance grows by 1/12 px^2 per axis."""
    return 2.3548 * np.sqrt(sigma**2 + 1 / 12)


def test_d50_of_a_gaussian_is_its_fwhm():
    sigma = 2.0
    image = gaussian_stars((64, 64), [31.3], [32.6], [1000.0], sigma)
    assert d50(image, np.array([31.3]), np.array([32.6]), max_radius=20)[0] == pytest.approx(fwhm_of_pixelated(sigma), rel=0.02)


def test_strehl_is_one_for_the_truth_and_falls_as_sigma_squared():
    x, y = np.array([40.0]), np.array([40.0])
    truth = gaussian_stars((80, 80), x, y, [1.0], 1.5)
    assert strehl_ratio(truth, truth, x, y, x, y)[0] == pytest.approx(1.0)
    blurred = gaussian_stars((80, 80), x, y, [1.0], 3.0)
    expected = (blurred.max() / blurred[35:45, 35:45].sum()) / (truth.max() / truth[35:45, 35:45].sum())
    assert strehl_ratio(blurred, truth, x, y, x, y)[0] == pytest.approx(expected, rel=1e-9)
    assert 0.2 < expected < 0.35  # ~ (1.5/3)^2 = 0.25, raised by the 10-px box truncating the wide star


def test_centroids_recover_sub_pixel_positions():
    x, y = np.array([20.3, 50.77]), np.array([30.6, 12.25])
    image = gaussian_stars((64, 70), x, y, [500.0, 800.0], 1.2)
    cx, cy = centroids(image, np.round(x), np.round(y), radius=5)
    np.testing.assert_allclose(cx, x, atol=0.02)
    np.testing.assert_allclose(cy, y, atol=0.02)


def test_one_to_one_matching_prefers_the_closest_pair():
    i, j = match_one_to_one(np.array([0.0, 0.5, 10.0]), np.array([0.0, 0.0, 10.0]), np.array([0.4, 30.0]), np.array([0.0, 30.0]), 2.0)
    assert list(zip(i, j)) == [(1, 0)]
    assert precision_recall(1, 3, 2) == (1 / 3, 0.5)


def test_evaluate_blurred_field_against_truth():
    rng = np.random.default_rng(7)
    n = 60
    x, y = rng.uniform(15, 241, n), rng.uniform(15, 241, n)
    # well separated stars so that the measured numbers are those of isolated Gaussians
    keep = np.ones(n, bool)
    for k in range(n):
        keep[k] = np.all(np.hypot(x[:k] - x[k], y[:k] - y[k])[keep[:k]] > 14)
    x, y = x[keep], y[keep]
    flux = 10 ** rng.uniform(3.5, 4.5, len(x))
    truth = gaussian_stars((256, 256), x, y, flux, 1.0)
    image = gaussian_stars((256, 256), x, y, flux, 2.0) + 100 + rng.normal(0, 1.0, (256, 256))
    result = evaluate_image(image, truth, threshold=5)
    assert result.n_true == len(x) and result.recall == 1.0 and result.precision == 1.0
    assert result.mean_d50 == pytest.approx(fwhm_of_pixelated(2.0), rel=0.03)
    assert result.mean_d50_truth == pytest.approx(fwhm_of_pixelated(1.0), rel=0.05)
    # a 10-px aperture holds 1 - exp(-25 / (2 sigma^2)) of a Gaussian: 95.6 % at sigma = 2
    assert result.mag_residual_mean == pytest.approx(-2.5 * np.log10((1 - np.exp(-25 / 8)) / 1.0), abs=0.01)
    assert result.centroid_residual_std < 0.05
    assert result.by_magnitude["n"].sum() == len(x)
    sweep = threshold_sweep(image, truth, np.array([3.0, 10.0, 100.0, 1000.0]))
    assert np.all(np.diff(sweep["recall"]) <= 0) and sweep["recall"][0] == 1.0


def test_d50_of_a_faint_star_beside_a_bright_one_masks_the_neighbour():
    from dancekit.metrics.detection import detect_stars

    x, y = np.array([30.0, 38.0]), np.array([32.0, 32.4])
    image = gaussian_stars((64, 64), x, y, [10000.0, 1000.0], 1.0)
    found = detect_stars(image, 5.0)
    assert len(found) == 2
    faint = int(np.argmin(np.hypot(found.x - x[1], found.y - y[1])))
    plain = d50(image, x[1:], y[1:])[0]
    masked = d50(image, x[1:], y[1:], segmentation=found.segmentation, source_ids=np.array([faint + 1]))[0]
    # the neighbour's light within 10 px more than doubles the unmasked D50; masked, it is the PSF's
    assert plain > 2 * fwhm_of_pixelated(1.0)
    assert masked == pytest.approx(fwhm_of_pixelated(1.0), rel=0.08)


def test_recall_at_precision_takes_the_best_recall_meeting_the_precision():
    from dancekit.metrics.evaluate import recall_at_precision

    sweep = {"precision": np.array([0.80, 0.95, 0.99, np.nan]), "recall": np.array([0.9, 0.7, 0.4, 0.0])}
    assert recall_at_precision(sweep, 0.95) == 0.7
    assert recall_at_precision(sweep, 0.5) == 0.9
    assert np.isnan(recall_at_precision(sweep, 0.999))


def test_background_maps_stay_within_their_mesh_values_towards_the_corners():
    # noise 60x stronger in a cluster core: sep's bicubic rms map dips below zero near a corner
    import sep

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    image = rng.normal(0.0, 1.0, (256, 256)) * (0.05 + 3.0 * np.exp(-((xx - 128) ** 2 + (yy - 128) ** 2) / (2 * 40**2)))
    raw = sep.Background(image, bw=64, bh=64).rms()
    centres = raw[32::64, 32::64]
    assert raw.min() < 0 < centres.min()
    clipped = within_mesh_range(raw.copy(), 64)
    assert clipped.min() == pytest.approx(centres.min()) and clipped.max() == pytest.approx(centres.max())
    np.testing.assert_array_equal(clipped[32::64, 32::64], centres)
    inside = (raw >= centres.min()) & (raw <= centres.max())
    np.testing.assert_array_equal(clipped[inside], raw[inside])
