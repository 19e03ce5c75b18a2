"""Extraction and aperture photometry on rendered stars: fluxes recovered within their CCD-
equation errors, errors match the analytic CCD equation, quality flags set where they must."""

import numpy as np
import pytest

from dancekit.errors import InputError, ParameterError
from dancekit.photometry import (
    FLAG_BLENDED, FLAG_CROWDED, FLAG_EDGE, FLAG_SATURATED, extract_sources, instrumental_magnitude,
    synthetic_field,
)
from dancekit.photometry.synthetic import _add_star

GAIN, RN, SKY = 2.0, 5.0, 200.0


def _nearest(field, sources):
    d2 = (sources.x[:, None] - field.x[None, :]) ** 2 + (sources.y[:, None] - field.y[None, :]) ** 2
    return np.argmin(d2, axis=1), np.sqrt(np.min(d2, axis=1))


def test_aperture_fluxes_are_unbiased_with_ccd_equation_errors():
    pulls = []
    for seed in range(6):
        field = synthetic_field((256, 256), 25, seed=seed, gain=GAIN, read_noise=RN, sky=SKY,
                                exptime=10.0, mag_range=(14, 18))
        sources = extract_sources(field.image, gain=GAIN, read_noise=RN, aperture_radius=9.0)
        star, distance = _nearest(field, sources)
        clean = (sources.flags == 0) & (distance < 0.5)
        truth = field.electrons[star[clean]] / GAIN
        pulls.append((sources.flux[clean] - truth) / sources.flux_err[clean])
        # error = CCD equation: sqrt(F/g + A (sky + RN^2)/g^2), A = pi r^2
        area = np.pi * 9.0**2
        expected = np.sqrt(truth / GAIN + area * (SKY + RN**2) / GAIN**2)
        assert np.allclose(sources.flux_err[clean], expected, rtol=0.03)
    pulls = np.concatenate(pulls)
    assert pulls.size > 60
    assert abs(np.mean(pulls)) < 3 / np.sqrt(pulls.size)
    assert 0.8 < np.std(pulls) < 1.25


def _single_star_image(positions, electrons, shape=(96, 96), seed=0):
    expected = np.full(shape, SKY)
    for (x, y), n in zip(positions, electrons):
        _add_star(expected, x, y, n, "gaussian", 3.0, 3.0)
    rng = np.random.default_rng(seed)
    return (rng.poisson(expected) + rng.normal(0, RN, shape)) / GAIN


def test_saturated_edge_and_crowded_flags():
    image = _single_star_image([(20.3, 20.7), (70.2, 70.6), (2.1, 50.4), (48.0, 20.0), (56.0, 20.0)],
                               [2e6, 5e4, 5e4, 5e4, 5e4])
    sources = extract_sources(np.minimum(image, 30000.0), gain=GAIN, read_noise=RN,
                              aperture_radius=6.0, saturation=30000.0)
    def flags_at(x, y):
        i = np.argmin(np.hypot(sources.x - x, sources.y - y))
        assert np.hypot(sources.x[i] - x, sources.y[i] - y) < 1.0
        return sources.flags[i]
    assert flags_at(20.3, 20.7) & FLAG_SATURATED
    assert flags_at(70.2, 70.6) == 0
    assert flags_at(2.1, 50.4) & FLAG_EDGE and not flags_at(2.1, 50.4) & FLAG_SATURATED
    assert flags_at(48.0, 20.0) & FLAG_CROWDED and flags_at(56.0, 20.0) & FLAG_CROWDED
    # the two 8-px neighbours sit in one isophote: sep deblends them
    assert flags_at(48.0, 20.0) & FLAG_BLENDED


def test_kron_aperture_collects_most_of_a_moffat_star():
    # Kron (1980): 2.5 Kron radii hold > 90 % of the flux of stellar profiles; a 1-FWHM circle
    # holds much less of a Moffat(beta=2.5) star.
    image = _single_star_image([(48.3, 47.6)], [0.0])  # sky only, then add a Moffat star
    expected = np.zeros_like(image)
    _add_star(expected, 48.3, 47.6, 2e5, "moffat", 3.0, 2.5)
    image = image + np.random.default_rng(1).poisson(expected) / GAIN
    truth = 2e5 / GAIN
    kron = extract_sources(image, gain=GAIN, read_noise=RN, aperture_radius=3.0, photometry="kron")
    small = extract_sources(image, gain=GAIN, read_noise=RN, aperture_radius=3.0)
    assert len(kron) == 1 and len(small) == 1
    assert 0.90 < kron.flux[0] / truth < 1.0
    assert small.flux[0] / truth < 0.8


def test_instrumental_magnitude_definition():
    mag, err = instrumental_magnitude([1000.0, -5.0], [10.0, 1.0], gain=2.0, exptime=4.0)
    assert mag[0] == pytest.approx(-2.5 * np.log10(500.0))
    assert err[0] == pytest.approx(2.5 / np.log(10) * 0.01)
    assert np.isnan(mag[1]) and np.isnan(err[1])


def test_bad_images_and_parameters():
    with pytest.raises(InputError, match="must be 2-D"):
        extract_sources(np.zeros((3, 20, 20)), gain=1.0, read_noise=1.0, aperture_radius=3.0)
    with pytest.raises(InputError, match="no finite pixel"):
        extract_sources(np.full((20, 20), np.nan), gain=1.0, read_noise=1.0, aperture_radius=3.0)
    with pytest.raises(ParameterError, match="needs both gain"):
        extract_sources(np.zeros((20, 20)), gain=None, read_noise=1.0, aperture_radius=3.0)
    with pytest.raises(ParameterError, match="photometry must be 'circle' or 'kron'"):
        extract_sources(np.zeros((20, 20)), gain=1.0, read_noise=1.0, aperture_radius=3.0,
                        photometry="psf")


def test_caller_image_is_not_modified():
    field = synthetic_field((128, 128), 10, seed=5, saturation=3000.0)
    image = field.image.copy()
    image[0, 0] = np.nan
    before = image.copy()
    extract_sources(image, gain=GAIN, read_noise=RN, aperture_radius=5.0, saturation=3000.0)
    assert np.array_equal(image, before, equal_nan=True)
