"""Phase screens: structure function against theory, frozen flow, screen sizing."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import (
    LayerScreen,
    fourier_shift_screen,
    layer_phase,
    make_layer_screen,
    screen_geometry,
)
from dancekit.optics.phase_screens import fft_phase_screen, structure_function, von_karman_psd


def von_karman_structure_function(r, r0, L0):
    """D(r) = 4 pi int f Phi(f) [1 - J0(2 pi f r)] df, Phi written here from the textbook form
    (0.0229 r0^-5/3 (f^2 + L0^-2)^-11/6), independently of the generator."""
    def integrand(f):
        return 4 * math.pi * f * 0.0229 * r0 ** (-5 / 3) * (f * f + L0**-2) ** (-11 / 6) * (
            1 - special.j0(2 * math.pi * f * r))
    knots = np.concatenate([[0.0], np.logspace(-4, 3, 60) / r])
    return sum(integrate.quad(integrand, a, b, limit=200)[0] for a, b in zip(knots[:-1], knots[1:]))


def mean_structure_function(n, sampling, r0, L0, seps, count, seed):
    gen = torch.Generator().manual_seed(seed)
    screens = torch.stack([fft_phase_screen((n, n), sampling, r0, L0, generator=gen,
                                            dtype=torch.float64) for _ in range(count)])
    return structure_function(screens, seps).mean(dim=0).numpy()


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_numerical_von_karman_d_reduces_to_kolmogorov_for_huge_outer_scale():
    # checks the reference integral itself: 6.88 (r/r0)^(5/3) up to 1.485 (r/L0)^(1/3)
    assert von_karman_structure_function(0.1, 0.1, 1e9) == pytest.approx(6.88, rel=2e-3)


def test_kolmogorov_screens_follow_6_88_r_over_r0_to_five_thirds():
    seps = np.array([4, 8, 16, 32])  # r << L0 = inf, well inside the 256 px screen
    measured = mean_structure_function(256, 0.02, 0.1, math.inf, seps, 200, seed=1)
    theory = 6.88 * (seps * 0.02 / 0.1) ** (5 / 3)
    np.testing.assert_allclose(measured / theory, 1.0, atol=0.05)


def test_von_karman_screens_follow_theory_up_to_half_the_outer_scale():
    L0, sampling = 10.0, 0.05
    seps = np.array([2, 10, 50, 100])  # 0.1 m .. 5 m = L0 / 2 on a 12.8 m screen
    measured = mean_structure_function(256, sampling, 0.1, L0, seps, 200, seed=2)
    theory = np.array([von_karman_structure_function(s * sampling, 0.1, L0) for s in seps])
    np.testing.assert_allclose(measured / theory, 1.0, atol=0.05)
    # and the outer scale matters: Kolmogorov would be 2.4x larger at L0 / 2
    assert 6.88 * (5.0 / 0.1) ** (5 / 3) > 2 * measured[-1]


def test_psd_has_the_von_karman_shape():
    f = torch.tensor([0.0, 1e-3, 1.0, 100.0], dtype=torch.float64)
    psd = von_karman_psd(f, 0.1, 20.0, l0=0.01)
    assert psd[0] == pytest.approx(0.0229 * 0.1 ** (-5 / 3) * 20.0 ** (11 / 3))
    assert psd[2] == pytest.approx(0.0229 * 0.1 ** (-5 / 3) * (1 + 20.0**-2) ** (-11 / 6)
                                   * math.exp(-((2 * math.pi * 0.01 / 5.92) ** 2)))


def sinusoid_screen(rows, cols, modes):
    """A periodic band-limited screen: sum of a cos(2 pi (kx x / cols + ky y / rows) + p)."""
    y, x = torch.meshgrid(torch.arange(rows, dtype=torch.float64),
                          torch.arange(cols, dtype=torch.float64), indexing="ij")
    return lambda dx, dy: sum(
        a * torch.cos(2 * math.pi * (kx * (x + dx) / cols + ky * (y + dy) / rows) + p)
        for a, kx, ky, p in modes)


MODES = [(1.0, 3, 1, 0.3), (0.5, -2, 5, 1.1), (0.2, 7, -4, 2.0)]


def test_fourier_shift_translates_a_band_limited_screen_exactly():
    screen = sinusoid_screen(64, 96, MODES)
    shifted = fourier_shift_screen(screen(0.0, 0.0), (3.37, -1.71))
    torch.testing.assert_close(shifted, screen(3.37, -1.71), atol=1e-9, rtol=0)


def layer_on(screen_values, sampling, height, wind, origin):
    return LayerScreen(screen_values.to(torch.float32), sampling, height, wind, (1.0, 0.0), origin)


def test_frozen_flow_phase_at_t_is_phase_at_x_minus_vt_at_zero():
    sampling, n = 0.02, 16
    screen = sinusoid_screen(64, 96, MODES)
    wind = (0.5, 0.2)  # m/s: in 0.4 s the air moves (10, 4) px
    layer = layer_on(screen(0.0, 0.0), sampling, 1000.0, wind, (40.0, 30.0))
    now = layer_phase(layer, n, [[0.0, 0.0]], [0.4])[0]
    before = layer_phase(layer, n, [[0.0, 0.0]], [0.0])[0]
    torch.testing.assert_close(now[4:, 10:], before[:-4, :-10], atol=1e-6, rtol=0)


def test_sub_pixel_frozen_flow_matches_the_exactly_translated_screen():
    sampling, n = 0.02, 16
    screen = sinusoid_screen(64, 96, MODES)
    layer = layer_on(screen(0.0, 0.0), sampling, 0.0, (0.37, -0.23), (40.0, 30.0))
    t = 0.1  # the window moves by -v t = (-1.85, +1.15) px
    window = layer_phase(layer, n, [[0.0, 0.0]], [t])[0].double()
    exact = screen(-0.37 * t / sampling, 0.23 * t / sampling)[30 - 8:30 + 8, 40 - 8:40 + 8]
    # bilinear error bound h^2/8 (|phi_xx| + |phi_yy|) for each sinusoid
    bound = sum(a * (2 * math.pi) ** 2 * ((kx / 96) ** 2 + (ky / 64) ** 2) / 8
                for a, kx, ky, _ in MODES)
    assert (window - exact).abs().max() <= bound
    assert (window - exact).abs().max() > 0  # bilinear is not exact: the bound is the real check


def test_star_at_angle_sees_the_layer_shifted_by_h_theta():
    gen = torch.Generator().manual_seed(3)
    layer = make_layer_screen(32, 0.02, 5000.0, (3.0, 4.0), 2.0, [[0, 0], [1e-4, -1e-4]], 0.1,
                              25.0, generator=gen)
    # a star at theta at t = 0 looks where the on-axis star looks at t when h theta = -v t
    t = 0.5
    theta = [-3.0 * t / 5000.0, -4.0 * t / 5000.0]
    a = layer_phase(layer, 32, [theta], [0.0])
    b = layer_phase(layer, 32, [[0.0, 0.0]], [t])
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_screen_is_long_in_the_wind_and_never_left_during_the_video():
    angles = [[-1e-4, -1e-4], [1e-4, 1e-4], [1e-4, -1e-4], [-1e-4, 1e-4]]
    shape, _, direction = screen_geometry(64, 0.02, 10000.0, (-6.0, 8.0), 12.0, angles)
    assert direction == pytest.approx((-0.6, 0.8))
    assert shape[1] > 10 * shape[0]  # 120 m of flight in a ~3 m wide strip
    gen = torch.Generator().manual_seed(4)
    layer = make_layer_screen(64, 0.02, 10000.0, (-6.0, 8.0), 12.0, angles, 0.1, generator=gen)
    assert tuple(layer.phase.shape) == shape
    layer_phase(layer, 64, angles + angles, [0.0] * 4 + [12.0] * 4)  # the extremes fit
    with pytest.raises(ParameterError, match="leaves the .* screen of the layer at 10000 m"):
        layer_phase(layer, 64, [[0.0, 0.0]], [13.0])


def test_screens_are_reproducible_from_the_generator():
    a = fft_phase_screen((32, 48), 0.02, 0.1, 20.0, generator=torch.Generator().manual_seed(5))
    b = fft_phase_screen((32, 48), 0.02, 0.1, 20.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (32, 48)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"r0": -0.1}, r"r0 = -0.1 m: the Fried parameter must be > 0"),
        ({"L0": 0.0}, r"L0 = 0.0 m: the outer scale must be > 0"),
        ({"sampling": 0.0}, r"sampling = 0.0 m/px"),
        ({"generator": None}, r"pass a torch.Generator"),
    ],
)
def test_bad_screen_parameters_raise(kwargs, match):
    args = {"shape": (16, 16), "sampling": 0.02, "r0": 0.1, "L0": 20.0,
            "generator": torch.Generator()}
    args.update(kwargs)
    with pytest.raises(ParameterError, match=match):
        fft_phase_screen(**args)
