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
