"""The learned zero-point model's training domain: what train-zeropoint draws, and what lies outside."""

import numpy as np
import pytest

from dancekit.photometry.exposures import generate_exposures
from dancekit.photometry.learned_data import classical_calibration
from dancekit.photometry.learned_domain import (
    GENERATED_INSTRUMENT, domain_violations, exposure_domain_values, generator_domain,
)


def test_generated_training_exposures_lie_inside_the_domain():
    domain = generator_domain()
    for exposure in generate_exposures(6, seed=5):
        calibration = classical_calibration(exposure)
        if calibration is None:
            continue
        values = exposure_domain_values(calibration, exposure.telemetry, pixel_scale=1.0)
        assert domain_violations(domain, values) == {}, values


def test_every_quantity_outside_is_named_with_its_trained_range():
    domain = generator_domain()
    values = {"airmass": 2.8, "temperature": 10.0, "humidity": 99.0, "wind": 3.0, "magnitude": 17.0,
              "colour": 0.5, "fwhm": 3.0, "pixel_scale": 0.263}
    outside = domain_violations(domain, values, instrument="DECam")
    assert list(outside) == ["airmass", "pixel_scale", "instrument"]
    assert outside["airmass"] == "airmass 2.8 (trained 1-2)"
    assert outside["pixel_scale"] == "pixel scale 0.263 arcsec/px (trained 1 arcsec/px)"
    assert "DECam" in outside["instrument"] and GENERATED_INSTRUMENT in outside["instrument"]
    # a 5 % margin of the span: humidity 99 is inside 10-95 +- 4.25; 100 is not
    assert "humidity" in domain_violations(domain, {**values, "humidity": 100.0})
    assert domain_violations(domain, {**values, "airmass": 1.2, "pixel_scale": 1.05, "fwhm": np.nan}) == {}
    assert list(domain_violations(None, values)) == ["domain"]


@pytest.mark.parametrize("name", ["airmass", "temperature", "humidity", "wind", "magnitude", "colour", "fwhm", "pixel_scale"])
def test_domain_ranges_are_plain_numbers_a_weights_only_file_can_hold(name):
    low, high = generator_domain()[name]
    assert isinstance(low, float) and isinstance(high, float) and low <= high
