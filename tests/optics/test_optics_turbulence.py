"""Integrated turbulence quantities and the analytic annular Airy pattern."""

import math

import numpy as np
import pytest
from scipy import integrate

from dancekit.errors import ParameterError
from dancekit.optics.turbulence import (
    airy_obstructed,
    airy_obstructed_encircled_energy,
    layer_r0,
    r0_at_wavelength,
    r0_to_seeing,
    seeing_to_r0,
    von_karman_fwhm,
)

ARCSEC = math.pi / 648000


def test_seeing_of_10cm_r0_at_500nm_is_about_one_arcsec():
    # 0.98 * 500e-9 / 0.1 rad = 1.0107 arcsec (the textbook value)
    assert r0_to_seeing(0.1, 500e-9) / ARCSEC == pytest.approx(1.0107, abs=1e-4)
    assert seeing_to_r0(1.0107 * ARCSEC, 500e-9) == pytest.approx(0.1, rel=1e-4)


def test_r0_scales_as_wavelength_to_six_fifths():
    assert r0_at_wavelength(0.1, 1000e-9) == pytest.approx(0.1 * 2**1.2)
    # seeing then scales as lambda^(-1/5): redder is sharper
    s500 = r0_to_seeing(0.1, 500e-9)
    s1000 = r0_to_seeing(r0_at_wavelength(0.1, 1000e-9), 1000e-9)
    assert s1000 / s500 == pytest.approx(2 ** (-0.2))


def test_layer_r0_recombines_into_the_total_r0():
    r0s = layer_r0(0.12, [0.5, 0.3, 0.2])
    assert np.sum(r0s ** (-5 / 3)) ** (-3 / 5) == pytest.approx(0.12)
    assert np.all(r0s > 0.12)
    assert layer_r0(0.12, [2.0, 0.0])[1] == math.inf  # unnormalised input, a calm layer


def test_von_karman_fwhm_tends_to_kolmogorov_and_shrinks_with_small_outer_scale():
    kolmogorov = 0.976 * 650e-9 / 0.13
    assert von_karman_fwhm(0.13, math.inf, 650e-9) == pytest.approx(kolmogorov)
    assert von_karman_fwhm(0.13, 25.0, 650e-9) < von_karman_fwhm(0.13, 100.0, 650e-9) < kolmogorov


def test_unobstructed_airy_has_83_8_percent_inside_the_first_dark_ring():
    first_zero = 3.8317 * 650e-9 / (math.pi * 1.0)  # x = 3.8317
    assert airy_obstructed_encircled_energy(first_zero, 1.0, 0.0, 650e-9) == pytest.approx(
        0.8378, abs=2e-4
    )
    assert airy_obstructed(first_zero, 1.0, 0.0, 650e-9) < 1e-6 * airy_obstructed(0, 1.0, 0.0,
                                                                                   650e-9)


@pytest.mark.parametrize("eps", [0.0, 0.3, 0.6])
def test_encircled_energy_is_the_integral_of_the_intensity(eps):
    lam, d = 650e-9, 1.04
    theta = 8 * lam / d
    radial, _ = integrate.quad(lambda t: airy_obstructed(t, d, eps, lam) * 2 * math.pi * t,
                               0, theta, limit=400)
    assert airy_obstructed_encircled_energy(theta, d, eps, lam) == pytest.approx(radial, rel=1e-5)


def test_obstruction_lowers_the_peak_by_one_minus_eps_squared():
    # unit-flux peak is A / lambda^2: a 30 % obstruction keeps 91 % of it (paper: "more than 80 %")
    ratio = airy_obstructed(0, 1.04, 0.3, 650e-9) / airy_obstructed(0, 1.04, 0.0, 650e-9)
    assert ratio == pytest.approx(0.91)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: r0_to_seeing(-0.1, 500e-9), r"r0 = -0.1 m: must be a finite number > 0"),
        (lambda: seeing_to_r0(0.0, 500e-9), r"seeing = 0.0 rad"),
        (lambda: von_karman_fwhm(0.1, 0.0, 500e-9), r"L0 = 0.0 m: the outer scale must be > 0"),
        (lambda: von_karman_fwhm(0.1, -5, 500e-9), r"L0 = -5.0 m"),
        (lambda: von_karman_fwhm(0.1, 0.2, 500e-9), r"needs L0 > ~10 r0"),
        (lambda: airy_obstructed(0, 1.0, 1.0, 5e-7), r"obstruction = 1.0: .* \[0, 1\)"),
        (lambda: airy_obstructed(0, 1.0, -0.1, 5e-7), r"obstruction = -0.1"),
        (lambda: layer_r0(0.1, [0.5, -0.5]), r"cn2_fractions .* >= 0"),
    ],
)
def test_bad_values_raise_parameter_error(call, match):
    with pytest.raises(ParameterError, match=match):
        call()
