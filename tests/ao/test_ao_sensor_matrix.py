"""The sensor's own interaction matrix: cross-talk, its invariances, the reconstructor check, noise."""

import numpy as np
import pytest

from dancekit.ao.covariance import zernike_covariance_matrix
from dancekit.ao.modal_model import naomi_cross_talk, remaining_error
from dancekit.ao.sensor_matrix import check_reconstructor, cross_talk_from_sensor, noise_gain
from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor
from dancekit.errors import InputError

CONTROLLED = tuple(range(2, 16))
G = interaction_matrix(range(2, 46))  # (24, 44) the project's geometric 4x4 model


def test_least_squares_cross_talk_is_the_built_in_one():
    c, higher = cross_talk_from_sensor(G, range(2, 46), CONTROLLED, 45)
    c_model, higher_model = naomi_cross_talk(CONTROLLED, 8)
    assert higher == tuple(higher_model) and np.allclose(c, c_model, atol=1e-10)


def test_cross_talk_ignores_slope_order_and_units_but_not_the_modes():
    c, _ = cross_talk_from_sensor(G, range(2, 46), CONTROLLED, 45)
    order = np.random.default_rng(0).permutation(G.shape[0])
    shuffled, _ = cross_talk_from_sensor(37.5 * G[order], range(2, 46), CONTROLLED, 45)  # other unit, other order
    assert np.allclose(shuffled, c, atol=1e-9)
    # the sensor's own reconstructor in other units gives the same C; truncating at Noll 28 keeps fewer modes
    r = 0.2 * reconstructor(G[:, :14])
    with_r, _ = cross_talk_from_sensor(G, range(2, 46), CONTROLLED, 45, reconstructor=r)
    assert np.allclose(with_r, c, atol=1e-9)
    _, higher = cross_talk_from_sensor(G, range(2, 46), CONTROLLED, 28)
    assert higher == tuple(range(16, 29))


def test_remaining_error_of_a_different_sensor_differs():
    # a sensor with 8 px per subaperture at its edge subapertures sees the steep edge gradients
    # of high modes differently: the remaining error changes by several hundredths of rad^2
    coarse = interaction_matrix(range(2, 46), samples_per_subaperture=4)
    cov = zernike_covariance_matrix(range(2, 46), 0.12, 25.0, 1.8)
    rem = [remaining_error(cross_talk_from_sensor(g, range(2, 46), CONTROLLED, 45)[0], cov[:14, 14:], cov[14:, 14:])
           for g in (G, coarse)]
    assert np.abs(rem[0] - rem[1]).max() > 0.005


def test_reconstructor_of_other_slopes_is_refused():
    r = reconstructor(G[:, :14])
    assert check_reconstructor(r, G[:, :14]) < 1e-10
    interleaved = np.empty_like(G)
    interleaved[0::2], interleaved[1::2] = G[:12], G[12:]  # x1, y1, x2, ... against x1..x12, y1..y12
    with pytest.raises(InputError, match=r"do not describe the same slopes and modes \(\|R G - c I\| / \|c I\| = \d+\.\d\d > 0\.3\): check the slope order"):
        cross_talk_from_sensor(interleaved, range(2, 46), CONTROLLED, 45, reconstructor=r)
    with pytest.raises(InputError, match=r"does not fit the measurements-to-modes matrix \(14, 20\): need \(14, 24\)"):
        cross_talk_from_sensor(G, range(2, 46), CONTROLLED, 45, reconstructor=np.ones((14, 20)))


def test_matrices_that_miss_modes_are_refused():
    with pytest.raises(InputError, match=r"\(24, 9\) covers Noll 2-10 but the reconstructed modes need Noll 11-15"):
        cross_talk_from_sensor(G[:, :9], range(2, 11), CONTROLLED, 45)
    with pytest.raises(InputError, match=r"has no mode above the reconstructed Noll 2-15: no remaining-error"):
        cross_talk_from_sensor(G[:, :14], range(2, 16), CONTROLLED, 45)


def test_noise_gain_is_the_modal_variance_of_white_slope_noise():
    r = reconstructor(G[:, :14])
    noise = np.random.default_rng(1).standard_normal((200_000, 24)) * 0.3
    assert np.allclose((noise @ r.T).var(axis=0), 0.09 * noise_gain(r), rtol=0.02)
