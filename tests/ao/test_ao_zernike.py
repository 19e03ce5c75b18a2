"""Zernike polynomials (Noll 1976) and the geometric Shack-Hartmann model."""

import numpy as np
import pytest

from dancekit.ao.shack_hartmann import (cross_talk_matrix, interaction_matrix, lenslets_for, reconstructor,
                                        valid_subapertures)
from dancekit.ao.zernike import (n_modes_to_order, noll_to_nm, pupil_grid, zernike,
                                 zernike_gradient)
from dancekit.errors import ParameterError


def test_noll_table_matches_noll_1976():
    # Noll 1976 Table 1: even j cosine (m > 0), odd j sine (m < 0)
    expected = [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (3, -1), (3, 1), (3, -3),
                (3, 3), (4, 0), (4, 2), (4, -2), (4, 4), (4, -4), (5, 1)]
    assert [noll_to_nm(j) for j in range(1, 17)] == expected
    assert n_modes_to_order(4) == 15 and n_modes_to_order(8) == 45


def test_zernikes_are_orthonormal_on_the_disc():
    x, y, mask = pupil_grid(600)
    z = np.array([zernike(j, x, y)[mask] for j in range(1, 29)])
    gram = z @ z.T / mask.sum()
    assert np.allclose(gram, np.eye(28), atol=3e-3)


def test_known_low_order_shapes():
    x, y = np.array([0.3, -0.5]), np.array([0.4, 0.1])
    r2 = x ** 2 + y ** 2
    assert np.allclose(zernike(2, x, y), 2 * x)
    assert np.allclose(zernike(4, x, y), np.sqrt(3) * (2 * r2 - 1))
    assert np.allclose(zernike(6, x, y), np.sqrt(6) * (x ** 2 - y ** 2))


@pytest.mark.parametrize("j", [3, 5, 9, 12, 23, 37, 44])
def test_gradient_matches_finite_differences(j):
    x, y, h = 0.31, -0.42, 1e-6
    gx, gy = zernike_gradient(j, x, y)
    assert gx == pytest.approx((zernike(j, x + h, y) - zernike(j, x - h, y)) / (2 * h), abs=1e-6)
    assert gy == pytest.approx((zernike(j, x, y + h) - zernike(j, x, y - h)) / (2 * h), abs=1e-6)


def test_naomi_geometry_has_12_valid_subapertures():
    valid = valid_subapertures()
    assert valid.sum() == 12
    assert not valid[0, 0] and not valid[0, 3] and not valid[3, 0] and not valid[3, 3]


def test_tilt_and_defocus_slopes_are_geometric():
    d = 1.8
    g = interaction_matrix([2, 3, 4], diameter=d)
    assert g.shape == (24, 3)
    # Z2 = 2x: slope 2/R in x everywhere, 0 in y
    assert np.allclose(g[:12, 0], 2 / (d / 2)) and np.allclose(g[12:, 0], 0)
    assert np.allclose(g[:12, 1], 0) and np.allclose(g[12:, 1], 2 / (d / 2))
    # Z4 = sqrt(3)(2 r^2 - 1): mean x-gradient = 4 sqrt(3) <x> / R over illuminated pixels
    x, y, mask = pupil_grid(4 * 32, 0.077)
    valid = valid_subapertures()
    blocks = mask.reshape(4, 32, 4, 32)
    cx = (x.reshape(4, 32, 4, 32) * blocks).sum(axis=(1, 3)) / blocks.sum(axis=(1, 3))
    assert np.allclose(g[:12, 2], 4 * np.sqrt(3) * cx[valid] / (d / 2))


def test_reconstructor_inverts_controlled_modes_and_cross_talk_is_aliasing():
    g = interaction_matrix(range(2, 46))
    r = reconstructor(g[:, :14])
    assert np.allclose(r @ g[:, :14], np.eye(14), atol=1e-10)
    c = cross_talk_matrix(g[:, :14], g[:, 14:])
    assert c.shape == (14, 30)
    # radial order 5 coma-like modes alias strongly into tip/tilt (|C| of order 1)
    assert np.abs(c[:2]).max() > 0.3


def test_bad_geometry_is_rejected():
    with pytest.raises(ParameterError, match="obstruction"):
        interaction_matrix([2, 3], obstruction=1.2)
    with pytest.raises(ParameterError, match="Noll index"):
        noll_to_nm(0)
    with pytest.raises(ParameterError, match="diameter"):
        interaction_matrix([2, 3], diameter=-1.0)


def test_the_grid_of_a_sensor_is_found_from_its_count_of_valid_subapertures():
    counts = {n: int(valid_subapertures(n, 0.077).sum()) for n in range(2, 41)}
    assert all(lenslets_for(count, 0.077, first=4) == n for n, count in counts.items())
    assert counts[8] == 52 and counts[40] == 1260
    assert lenslets_for(50, 0.077) is None and lenslets_for(1240, 0.077) is None  # no grid has as many
