"""Aperture correction from the curve of growth, against the Moffat (1969) encircled energy."""

import numpy as np
import pytest

from dancekit.photometry import calibrate_exposure, extract_sources, synthetic_field


def test_moffat_aperture_correction_matches_the_encircled_energy_and_unbiases_the_zero_point():
    fwhm, beta, radius = 3.0, 3.0, 4.5
    field = synthetic_field((512, 512), 150, zeropoint=25.0, psf="moffat", fwhm=fwhm, moffat_beta=beta,
                            sky=300.0, mag_range=(13.0, 18.0), seed=3)
    sources = extract_sources(field.image, gain=2.0, read_noise=5.0, aperture_radius=radius, aperture_correction=True)
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    outside = lambda r: (1.0 + r**2 / alpha**2) ** (1.0 - beta)  # noqa: E731  (Moffat encircled energy)
    expected = -2.5 * np.log10((1.0 - outside(radius)) / (1.0 - outside(4.0 * radius)))
    assert sources.n_aperture_correction >= 10
    assert sources.aperture_correction == pytest.approx(expected, abs=max(3 * sources.aperture_correction_err, 0.005))
    common = dict(gain=2.0, read_noise=5.0, exptime=10.0, aperture_radius=radius, colour_term=0.0)
    plain = calibrate_exposure(field.image, field.wcs, field.catalogue, **common).zeropoint
    corrected = calibrate_exposure(field.image, field.wcs, field.catalogue, aperture_correction=True, **common).zeropoint
    assert plain.zp - 25.0 == pytest.approx(-expected, abs=0.01)  # uncorrected: biased by the missed wings
    assert abs(corrected.zp - 25.0) < max(3 * corrected.zp_err, 0.01)
    assert corrected.zp_err > plain.zp_err  # the correction's own error is carried


def test_automatic_aperture_follows_the_seeing():
    for fwhm in (2.5, 5.0):
        field = synthetic_field((256, 256), 60, psf="gaussian", fwhm=fwhm, sky=300.0, mag_range=(13.0, 17.0), seed=4)
        sources = extract_sources(field.image, gain=2.0, read_noise=5.0, aperture_radius=None)
        assert sources.fwhm == pytest.approx(fwhm, rel=0.1)  # twice the half-light radius of a Gaussian
        assert sources.aperture_radius == pytest.approx(1.5 * sources.fwhm)
