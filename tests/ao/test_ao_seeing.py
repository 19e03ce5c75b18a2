"""Seeing from r0 (Fried 1965; Morujão et al. 2023 eqs. 23-24)."""

import numpy as np
import pytest

from dancekit.ao.seeing import r0_at_zenith, seeing_from_r0
from dancekit.errors import ParameterError


def test_seeing_of_10cm_r0_is_one_arcsec():
    seeing, err = seeing_from_r0(0.10, 0.002)
    assert seeing == pytest.approx(0.9759 * 500e-9 / 0.10 * 206264.806, rel=1e-8)
    assert err == pytest.approx(seeing * 0.02)


def test_airmass_and_wavelength_scaling():
    s1, _ = seeing_from_r0(0.10)
    s2, _ = seeing_from_r0(0.10, airmass=2.0)
    assert r0_at_zenith(0.10, 2.0) == pytest.approx(0.10 * 2 ** 0.6)
    assert s2 == pytest.approx(s1 / 2 ** 0.6)
    s_k, _ = seeing_from_r0(0.10, wavelength=2.2e-6)
    assert s_k == pytest.approx(s1 * (2.2e-6 / 500e-9) ** (-0.2))
    arr, err = seeing_from_r0(np.array([0.1, 0.2]), np.array([0.01, 0.01]))
    assert np.allclose(arr, [s1, s1 / 2]) and np.allclose(err, [s1 * 0.1, s1 / 2 * 0.05])


def test_bad_values_are_rejected():
    with pytest.raises(ParameterError, match="r0 must be finite and positive"):
        seeing_from_r0(-0.1)
    with pytest.raises(ParameterError, match="airmass must be"):
        seeing_from_r0(0.1, airmass=0.5)


def test_site_monitor_values_at_500nm():
    from dancekit.ao.seeing import r0_from_seeing, site_monitor_at_500nm

    assert seeing_from_r0(float(r0_from_seeing(0.8)))[0] == pytest.approx(0.8, rel=1e-12)
    # a monitor quoting seeing only: r0 derived; quoted at 1 um: r0 ~ lambda^(6/5), seeing ~ lambda^(-1/5)
    seeing, r0 = site_monitor_at_500nm(0.8, np.nan)
    assert r0 == pytest.approx(0.9759 * 500e-9 / (0.8 / 206264.806), rel=1e-6)
    seeing_1um, r0_1um = site_monitor_at_500nm(0.7, 0.3, wavelength=1e-6)
    assert seeing_1um == pytest.approx(0.7 * 2 ** 0.2) and r0_1um == pytest.approx(0.3 * 0.5 ** 1.2)
    assert all(np.isnan(site_monitor_at_500nm(np.nan, np.nan)))
    with pytest.raises(ParameterError, match="monitor wavelength"):
        site_monitor_at_500nm(0.8, 0.1, wavelength=-1.0)


def test_effective_outer_scale_of_layers():
    from dancekit.ao.seeing import effective_outer_scale

    assert effective_outer_scale([25.0, 25.0], [0.7, 0.3]) == pytest.approx(25.0)
    # Borgnino 1990: the 1/3-power mean; equal weights when none are given
    assert effective_outer_scale([8.0, 64.0]) == pytest.approx(((2.0 + 4.0) / 2) ** 3)
    assert effective_outer_scale([8.0, 64.0], [1.0, 0.0]) == pytest.approx(8.0)
    assert np.isnan(effective_outer_scale([]))
