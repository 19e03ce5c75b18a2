"""Per-amplifier gains and the effective gain from the sky, on generated CCD images with known gains."""

import numpy as np
import pytest

from dancekit.errors import InputError, ParameterError
from dancekit.photometry import synthetic_field
from dancekit.photometry.detector import (
    Amplifier, combined_read_noise, electrons_image, gains_match_sky, saturation_in_electrons, sky_gain,
)


def _two_amplifiers(width=128):
    half = width // 2
    return [Amplifier("A", 4.0, 6.0, 40000.0, slice(0, 64), slice(0, half)),
            Amplifier("B", 3.6, 7.0, 42000.0, slice(0, 64), slice(half, width))]


def test_electrons_image_scales_each_amplifier_by_its_gain_and_leaves_the_input_alone():
    image = np.ones((64, 128), np.float32)
    out = electrons_image(image, _two_amplifiers())
    assert np.all(out[:, :64] == 4.0) and np.all(out[:, 64:] == np.float32(3.6))
    assert np.all(image == 1.0)
    assert saturation_in_electrons(_two_amplifiers()) == pytest.approx(min(40000 * 4.0, 42000 * 3.6))
    assert combined_read_noise(_two_amplifiers()) == pytest.approx(np.sqrt((36 + 49) / 2))
    assert combined_read_noise([Amplifier("A", 2.0)]) is None


def test_amplifier_sections_that_overlap_or_leave_pixels_unread_are_refused():
    a, b = _two_amplifiers()
    with pytest.raises(ParameterError, match="amplifier B overlaps"):
        electrons_image(np.ones((64, 128)), [a, Amplifier("B", 3.6, rows=slice(0, 64), columns=slice(60, 128))])
    with pytest.raises(InputError, match="256 pixels are read by no amplifier"):
        electrons_image(np.ones((64, 128)), [a, Amplifier("B", 3.6, rows=slice(0, 64), columns=slice(68, 128))])


@pytest.mark.parametrize("gain, read_noise, sky", [(2.0, 5.0, 500.0), (0.8, 3.0, 300.0), (4.0, 7.0, 2000.0)])
def test_sky_gain_recovers_the_gain_of_a_sky_limited_ccd_image(gain, read_noise, sky):
    field = synthetic_field((256, 256), 30, gain=gain, read_noise=read_noise, sky=sky, mag_range=(16, 19), seed=2)
    estimate, level, variance = sky_gain(field.image, read_noise)
    assert level == pytest.approx(sky / gain, rel=0.02)
    assert estimate == pytest.approx(gain, rel=0.05)
    without_read_noise, _, _ = sky_gain(field.image)  # S / V: low by the read-noise share of V
    share = (read_noise / gain) ** 2 / variance
    assert without_read_noise == pytest.approx(gain * (1 - share), rel=0.05)


def test_sky_gain_refuses_a_sky_subtracted_image():
    field = synthetic_field((256, 256), 30, gain=2.0, read_noise=5.0, sky=500.0, mag_range=(16, 19), seed=2)
    subtracted = field.image - np.median(field.image)
    estimate, level, _ = sky_gain(subtracted, 5.0)
    assert np.isnan(estimate) and abs(level) < 5


def test_sky_levels_tell_raw_amplifier_adu_from_an_equalised_image():
    field = synthetic_field((64, 128), 10, gain=1.0, read_noise=6.0, sky=800.0, mag_range=(17, 19), seed=3)
    raw = field.image.copy()  # electrons -> each amplifier's ADU
    raw[:, :64] /= 4.0
    raw[:, 64:] /= 3.6
    assert gains_match_sky(raw, _two_amplifiers()) is True
    assert gains_match_sky(field.image / 3.8, _two_amplifiers()) is False
    assert gains_match_sky(field.image - np.median(field.image), _two_amplifiers()) is None  # no sky left
    same = [Amplifier("A", 4.0, rows=slice(0, 64), columns=slice(0, 64)), Amplifier("B", 4.02, rows=slice(0, 64), columns=slice(64, 128))]
    assert gains_match_sky(raw, same) is None
