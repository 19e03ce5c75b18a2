"""Telemetry from moving multi-layer phase screens: the sensor model against the library's
interaction matrix and a known ramp, the true modal variances against the von Kármán covariance,
the layer split of r0, frozen flow, the closed loop and the pseudo-open-loop reconstruction."""

import numpy as np
import pytest

from dancekit.ao.covariance import zernike_covariance_matrix
from dancekit.ao.pseudo_open_loop import pseudo_open_loop_modes
from dancekit.ao.shack_hartmann import interaction_matrix
from dancekit.ao.telemetry_screens import (
    TurbulentLayer, effective_wind_speed, layer_fried_parameters, pupil_operators,
    simulate_screen_telemetry, with_effective_wind_speed)
from dancekit.ao.zernike import noll_orders
from dancekit.errors import ParameterError

CONTROLLED = tuple(range(2, 16))


def test_simulated_sensor_is_the_library_interaction_matrix():
    # slopes of the sampled Noll modes through the screen-sampling operator = G of the library
    # (mean analytic gradient on 32x32 points per subaperture): the reconstructor then matches
    ops = pupil_operators(tuple(range(2, 46)), samples_per_subaperture=12)
    g = interaction_matrix(range(2, 46))
    g_sim = ops.slopes @ ops.zernike
    err = np.linalg.norm(g_sim - g, axis=0) / np.linalg.norm(g, axis=0)
    assert err[:14].max() < 0.01  # controlled modes, 12 px per subaperture
    assert np.median(err) < 0.02
    assert ops.slopes.shape == (24, 50 * 50) and ops.sampling == pytest.approx(1.8 / 48)


def test_a_phase_ramp_gives_its_gradient_in_every_subaperture():
    ops = pupil_operators((2, 3), samples_per_subaperture=8)
    n = ops.window
    yy, xx = np.mgrid[0:n, 0:n] * ops.sampling
    ramp = 3.0 * xx - 1.5 * yy  # rad, gradient (3, -1.5) rad/m
    slopes = ops.slopes @ ramp.ravel()
    assert np.allclose(slopes[:12], 3.0, rtol=1e-10) and np.allclose(slopes[12:], -1.5, rtol=1e-10)
    # and the modal projection of a pure tilt (Noll 2, unit RMS = 2 x / R) returns it
    tilt = ops.zernike[:, 0]
    assert ops.modes @ tilt == pytest.approx([1.0, 0.0], abs=1e-12)


def test_layer_r0_and_effective_wind():
    r0_l = layer_fried_parameters(0.1, [0.5, 0.3, 0.2, 0.0])
    assert np.sum(r0_l[:3] ** (-5 / 3)) == pytest.approx(0.1 ** (-5 / 3), rel=1e-12) and np.isinf(r0_l[3])
    layers = (TurbulentLayer(0, 0.5, (10.0, 0.0)), TurbulentLayer(5000, 0.5, (0.0, 20.0)))
    v = effective_wind_speed(layers)
    assert v == pytest.approx((0.5 * 10 ** (5 / 3) + 0.5 * 20 ** (5 / 3)) ** 0.6)
    scaled = with_effective_wind_speed(layers, 30.0)
    assert effective_wind_speed(scaled) == pytest.approx(30.0) and scaled[1].wind[0] == 0.0
    with pytest.raises(ParameterError, match="cannot scale winds"):
        with_effective_wind_speed(layers, -1.0)


def _variance_ratios(n_seeds, noll=tuple(range(2, 22)), r0=0.1, L0=25.0):
    """Per-screen mean square of the true modes over the von Kármán variance (n_seeds, len(noll)),
    and the normalised <a2 a8> correlation against theory."""
    layers = (TurbulentLayer(0.0, 0.6, (90.0, 0.0)), TurbulentLayer(8000.0, 0.4, (0.0, -90.0)))
    per_seed, cross = [], []
    for seed in range(n_seeds):
        tel = simulate_screen_telemetry(r0, L0, layers, n_frames=40, frame_rate=50.0, true_noll=noll,
                                        samples_per_subaperture=12, seed=seed)
        a = tel.turbulence
        per_seed.append((a ** 2).mean(axis=0))
        cross.append((a[:, 0] * a[:, 6]).mean())
    per_seed = np.array(per_seed)
    cov = zernike_covariance_matrix(noll, r0, L0, 1.8)
    corr = np.mean(cross) / np.sqrt(per_seed[:, 0].mean() * per_seed[:, 6].mean())
    return per_seed / np.diag(cov), noll_orders(noll)[0], corr, cov[0, 6] / np.sqrt(cov[0, 0] * cov[6, 6])


def test_true_modal_variances_follow_the_von_karman_covariance():
    # two layers (r0 split 60/40) moving fast at a low frame rate, so that frames are ~1 pupil
    # apart; 40 screens of 40 frames. Per radial order the mean of var / theory must be 1 within
    # 3 standard errors (estimated from the screens) + 1.5 % (bilinear interpolation smooths the
    # phase a little at 12 px per subaperture). <a2 a8>/sqrt(<a2^2><a8^2>) is checked too.
    ratio, n, corr, theory = _variance_ratios(40)
    for order in (1, 2, 3, 4, 5):
        r = ratio[:, n == order].mean(axis=1)
        se = r.std(ddof=1) / np.sqrt(len(r))
        assert abs(r.mean() - 1.0) < 3 * se + 0.015, (order, r.mean(), se)
    assert corr == pytest.approx(theory, abs=0.07)  # theory about -0.25 at L0 = 25 m


@pytest.mark.slow
def test_true_modal_variances_to_one_per_cent():
    # as above with 10x the screens (~2 min): per radial order 1-5 within 3 standard errors
    # (~0.6 %) + 1 % (bilinear interpolation of the moving screens)
    ratio, n, corr, theory = _variance_ratios(400)
    for order in (1, 2, 3, 4, 5):
        r = ratio[:, n == order].mean(axis=1)
        se = r.std(ddof=1) / np.sqrt(len(r))
        assert abs(r.mean() - 1.0) < 3 * se + 0.01, (order, r.mean(), se)
    assert corr == pytest.approx(theory, abs=0.025)


def test_frozen_flow_moves_the_phase_by_one_subaperture_per_frame():
    # Taylor: phi(x, t + dt) = phi(x - v dt, t). With v dt = one subaperture (12 screen pixels)
    # along +x, the fully illuminated subaperture (row 1, col 2) sees at frame k + 1 what
    # (row 1, col 1) saw at frame k (no obstruction, so both are full squares)
    layer = (TurbulentLayer(0.0, 1.0, (0.45 * 500.0, 0.0)),)
    tel = simulate_screen_telemetry(0.1, 25.0, layer, n_frames=20, frame_rate=500.0, obstruction=0.0,
                                    true_noll=(2, 3), samples_per_subaperture=12, seed=3)
    s = tel.slopes  # valid subapertures row-major: (1, 1) is 3, (1, 2) is 4; (2, 1) is 7, (2, 2) is 8
    for a, b in ((3, 4), (7, 8)):
        for axis in (0, 12):
            assert np.allclose(s[1:, b + axis], s[:-1, a + axis], rtol=1e-3, atol=1e-3 * np.abs(s).max())
    assert not np.allclose(s[:, 4], s[:, 3], rtol=0.1)  # not trivially equal


def test_noise_closed_loop_and_pseudo_open_loop():
    layers = (TurbulentLayer(0.0, 0.7, (8.0, 2.0)), TurbulentLayer(10000.0, 0.3, (-15.0, 10.0)))
    common = dict(n_frames=1500, frame_rate=500.0, samples_per_subaperture=8, seed=7)
    open_loop = simulate_screen_telemetry(0.12, 25.0, layers, slope_noise=0.5, **common)
    closed = simulate_screen_telemetry(0.12, 25.0, layers, slope_noise=0.5, loop_gain=0.4, loop_delay=2, **common)
    # same seed: the same screens and noise, so the same open-loop measurements
    assert np.allclose(open_loop.reconstructed, closed.reconstructed)
    assert np.array_equal(open_loop.dm_modes, np.zeros_like(open_loop.dm_modes))
    # noise on the slopes: the difference with a noise-free run is white noise of the given rms
    clean = simulate_screen_telemetry(0.12, 25.0, layers, **common)
    noise = open_loop.slopes - clean.slopes
    assert noise.std() == pytest.approx(0.5, rel=0.03)
    # the loop corrects: residual tip/tilt far below the open-loop tip/tilt
    assert closed.residual_modes[500:, :2].var() < 0.1 * open_loop.reconstructed[500:, :2].var()
    # pseudo-open loop (residual k + command logged at k - delay) gives back the open-loop modes
    # up to the small mismatch between the sampled DM shapes and the library reconstructor
    pol = pseudo_open_loop_modes(closed.dm_modes, closed.residual_modes, -2)
    ref = open_loop.reconstructed[2:]
    assert np.sqrt(np.mean((pol - ref) ** 2)) < 0.03 * np.sqrt(np.mean(ref ** 2))


def test_bad_parameters_name_the_value():
    layer = (TurbulentLayer(0.0, 1.0, (10.0, 0.0)),)
    with pytest.raises(ParameterError, match="at least one turbulent layer"):
        simulate_screen_telemetry(0.1, 25.0, (), n_frames=10, frame_rate=500.0)
    with pytest.raises(ParameterError, match=r"Cn2 fractions must be >= 0.*-0.5"):
        simulate_screen_telemetry(0.1, 25.0, (TurbulentLayer(0.0, -0.5, (1.0, 0.0)),), n_frames=10, frame_rate=500.0)
    with pytest.raises(ParameterError, match="r0 must be finite and positive.*-0.1"):
        simulate_screen_telemetry(-0.1, 25.0, layer, n_frames=10, frame_rate=500.0)
    with pytest.raises(ParameterError, match="loop gain must be in"):
        simulate_screen_telemetry(0.1, 25.0, layer, n_frames=10, frame_rate=500.0, loop_gain=2.5)
    with pytest.raises(ParameterError, match="samples per subaperture must be an integer >= 4, got 2"):
        pupil_operators(samples_per_subaperture=2)
