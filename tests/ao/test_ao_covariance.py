"""Von Kármán Zernike covariances against published tables and an independent quadrature."""

import numpy as np
import pytest

from dancekit.ao.covariance import (normalised_covariance_matrix, zernike_covariance,
                                    zernike_covariance_matrix, zernike_covariance_numerical,
                                    zernike_variance)
from dancekit.errors import ParameterError

FIRST_OF_ORDER = {1: 2, 2: 4, 3: 7, 4: 11, 5: 16, 6: 22, 7: 29, 8: 37}


def test_kolmogorov_per_order_variances_match_reference_table():
    # notes/naomi.md sect. 3 (Turlib and numerical integral), units (D/r0)^(5/3) rad^2
    table = [0.448879, 0.0232179, 0.00619143, 0.00245392, 0.00119041, 0.000655102,
             0.000393378, 0.000251913]
    ours = [zernike_variance(FIRST_OF_ORDER[n], 1.0, np.inf, 1.0)[0] for n in range(1, 9)]
    assert np.allclose(ours, table, rtol=5e-5)


def test_kolmogorov_residuals_agree_with_noll_1976():
    noll_delta = [0.582, 0.134, 0.111, 0.0880, 0.0648, 0.0587, 0.0525, 0.0463, 0.0401, 0.0377]
    total = 1.03242  # exact piston-removed variance with the exact PSD constant
    var = zernike_variance(np.arange(2, 12), 1.0, np.inf, 1.0)
    delta = total - np.cumsum(var)
    assert np.allclose(delta, noll_delta, rtol=5e-3)


@pytest.mark.parametrize("outer_scale, row", [
    (np.inf, [55.495, 2.8704, 0.76544, 0.30338, 0.14717]),
    (100.0, [34.841, 2.8609, 0.76498, 0.30329, 0.14714]),
    (50.0, [29.584, 2.8371, 0.7636, 0.30303, 0.14707]),
    (25.0, [23.222, 2.7610, 0.75821, 0.30200, 0.14676]),
    (10.0, [13.589, 2.4202, 0.72400, 0.29505, 0.14468]),
])
def test_von_karman_variances_match_reference_table(outer_scale, row):
    ours = [zernike_variance(FIRST_OF_ORDER[n], 0.10, outer_scale, 1.8)[0] for n in range(1, 6)]
    assert np.allclose(ours, row, rtol=1e-4)
    # every azimuthal mode of a radial order has the same variance
    assert np.allclose(zernike_variance([7, 8, 9, 10], 0.10, outer_scale, 1.8), row[2], rtol=1e-4)


@pytest.mark.parametrize("pair, inf_value, l25_value", [
    ((2, 8), -1.7511, -1.6760), ((3, 7), -1.7511, -1.6760), ((4, 11), -0.479558, -0.47439),
    ((4, 22), 0.0391117, 0.0387599), ((11, 22), -0.0938956, -0.0936003)])
def test_cross_covariances_match_reference(pair, inf_value, l25_value):
    assert zernike_covariance(*pair, 0.10, np.inf, 1.8) == pytest.approx(inf_value, rel=1e-4)
    assert zernike_covariance(*pair, 0.10, 25.0, 1.8) == pytest.approx(l25_value, rel=1e-4)


@pytest.mark.parametrize("outer_scale", [np.inf, 25.0, 3.0])
@pytest.mark.parametrize("pair", [(2, 2), (3, 7), (4, 22), (6, 12), (11, 37), (30, 30)])
def test_closed_form_agrees_with_numerical_integral(pair, outer_scale):
    closed = zernike_covariance(*pair, 0.12, outer_scale, 1.8)
    numeric = zernike_covariance_numerical(*pair, 0.12, outer_scale, 1.8)
    assert closed == pytest.approx(numeric, rel=1e-4)


def test_tilt_reduction_follows_the_large_l0_asymptote():
    # 1 - 1.42 (D/L0)^(1/3) for D/L0 -> 0 (notes/naomi.md sect. 3)
    for outer_scale in (1e4, 1e6):
        ratio = zernike_variance(2, 0.1, outer_scale, 1.8)[0] / zernike_variance(2, 0.1, np.inf, 1.8)[0]
        assert ratio == pytest.approx(1 - 1.42 * (1.8 / outer_scale) ** (1 / 3), abs=5e-3)


def test_matrix_structure_and_r0_scaling():
    cov = zernike_covariance_matrix(range(2, 46), 0.1, 25.0, 1.8)
    assert np.allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    assert cov[0, 1] == 0.0 and cov[0, 2] == 0.0  # tip/tilt/defocus: different m
    # (D/r0)^(5/3) scaling of the cached normalised matrix
    g = normalised_covariance_matrix(range(2, 46), 1.8 / 25.0)
    assert np.allclose(cov, (1.8 / 0.1) ** (5 / 3) * g)
    assert not g.flags.writeable


def test_bad_turbulence_parameters_are_rejected():
    with pytest.raises(ParameterError, match="r0 must be a finite positive"):
        zernike_variance(4, -0.1, 25.0, 1.8)
    with pytest.raises(ParameterError, match="outer scale"):
        zernike_variance(4, 0.1, np.nan, 1.8)
    with pytest.raises(ParameterError, match="piston variance is infinite"):
        zernike_variance(1, 0.1, np.inf, 1.8)
    # piston is finite for a finite outer scale and agrees with the quadrature
    assert zernike_variance(1, 0.1, 25.0, 1.8)[0] == pytest.approx(
        zernike_covariance_numerical(1, 1, 0.1, 25.0, 1.8), rel=1e-4)
