"""NAOMI-like telemetry from moving multi-layer von Kármán phase screens (frozen flow).

The physics path of ``simulate-telemetry`` (the exact-covariance path is :mod:`dancekit.ao.synthetic`):

1. each layer is a von Kármán FFT screen with subharmonics (:func:`dancekit.optics.phase_screens.
   fft_phase_screen`), r0_l = r0 f_l^(-3/5) for its Cn2 fraction f_l (so that sum r0_l^(-5/3) =
   r0^(-5/3)), blown across the pupil by its wind (Taylor frozen flow,
   :func:`dancekit.optics.frozen_flow.layer_phase`: bilinear windows of the moving screen at the
   frame times t = k / frame_rate). On axis (natural guide star) the layer altitude does not change
   the phase; it is kept for the record;
2. the geometric Shack-Hartmann slope of a valid subaperture is the mean phase gradient over its
   illuminated part, on the sample points and mask of
   :func:`dancekit.ao.shack_hartmann.interaction_matrix` (gradient of the bilinear interpolant of
   the screen window), so the library reconstructor pinv(G_F) matches the simulated sensor (0.8 %
   on the controlled modes at 12 px per subaperture); white slope noise is added;
3. slopes are reconstructed into the controlled Noll modes with that reconstructor (Morujão et al.
   2023 eq. 4). Every Zernike mode of the screens reaches the slopes, so aliasing and cross-talk
   are those of the physics, not of a truncated model;
4. optionally a modal integrator with gain and delay closes the loop: the DM applies Zernike
   shapes, the sensor sees the residual phase (slopes are linear in phase: residual slopes = open
   slopes - slopes of the DM shape).

The true Zernike coefficients of the turbulence (least-squares projection over the full,
unobstructed disc, the definition of the von Kármán covariance) are returned for checks.
Units: r0, L0, lengths in m (r0 at 500 nm), phase and modes in rad at 500 nm, slopes in rad/m,
wind in m/s, times in s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor, valid_subapertures
from dancekit.ao.synthetic import SyntheticTelemetry, check_loop_parameters
from dancekit.ao.zernike import pupil_grid, zernike
from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import LayerScreen, layer_phase, screen_geometry
from dancekit.optics.phase_screens import fft_phase_screen

_REFERENCE_SAMPLES = 32  # sample points per subaperture side of the library interaction matrix


@dataclass(frozen=True)
class TurbulentLayer:
    """One frozen-flow layer: altitude [m], fraction of the Cn2 integral, wind (vx, vy) [m/s]."""

    altitude: float
    cn2_fraction: float
    wind: tuple[float, float]


def layer_fried_parameters(r0: float, cn2_fractions) -> np.ndarray:
    """r0 of each layer [m]: r0_l = r0 f_l^(-3/5), since r0^(-5/3) is proportional to the Cn2
    integral (Roddier 1981); zero fractions give inf (a calm layer)."""
    f = np.asarray(cn2_fractions, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(f > 0, r0 * f ** (-0.6), np.inf)


def effective_wind_speed(layers) -> float:
    """Cn2-weighted 5/3-moment of the wind speed [m/s], (sum f_l |v_l|^(5/3))^(3/5) (Roddier
    1981; it sets tau0 = 0.314 r0 / V)."""
    f = np.array([layer.cn2_fraction for layer in layers], dtype=float)
    v = np.array([math.hypot(*layer.wind) for layer in layers], dtype=float)
    return float((np.sum(f * v ** (5.0 / 3.0)) / np.sum(f)) ** 0.6)


def with_effective_wind_speed(layers, speed: float) -> tuple:
    """The layers with every wind scaled by one factor so that :func:`effective_wind_speed` is
    ``speed`` [m/s] (directions and the profile's shape kept)."""
    layers = tuple(layers)
    own = effective_wind_speed(layers)
    if not (np.isfinite(speed) and speed > 0) or own == 0:
        raise ParameterError(f"cannot scale winds of effective speed {own:g} m/s to {speed!r} m/s (need both > 0)")
    k = speed / own
    return tuple(TurbulentLayer(la.altitude, la.cn2_fraction, (la.wind[0] * k, la.wind[1] * k)) for la in layers)


@dataclass(frozen=True)
class PupilOperators:
    """Linear maps from a phase window (window x window pixels, flattened row-major) to data.

    sampling [m/px]; ``slopes`` (2S, P) [rad/m per rad]: mean gradient over the illuminated part of
    each valid subaperture, x then y (the order of
    :func:`dancekit.ao.shack_hartmann.interaction_matrix`); ``modes`` (K, P): least-squares Noll
    coefficients over the full disc for ``noll``; ``zernike`` (P, K) the Noll modes sampled on the
    window (the DM shapes).
    """

    window: int
    sampling: float
    noll: tuple
    slopes: np.ndarray
    modes: np.ndarray
    zernike: np.ndarray


def pupil_operators(noll=tuple(range(2, 46)), diameter: float = 1.8, n_lenslets: int = 4,
                    obstruction: float = 0.077, samples_per_subaperture: int = 16,
                    min_illumination: float = 0.5) -> PupilOperators:
    """The slope and modal-projection operators on a (m + 2)^2 window, m = n_lenslets x samples.

    Window pixel (r, c) has its centre at normalised pupil coordinates ((c - 1 + 0.5) / m x 2 - 1,
    (r - 1 + 0.5) / m x 2 - 1): the inner m x m pixels are the grid of
    :func:`dancekit.ao.zernike.pupil_grid`, the one-pixel rim feeds the gradients at the edge.
    (This is half a pixel off the optics grid convention, (j - n//2) sampling: immaterial for
    statistically homogeneous screens.)
    """
    if int(samples_per_subaperture) != samples_per_subaperture or samples_per_subaperture < 4:
        raise ParameterError(f"samples per subaperture must be an integer >= 4, got {samples_per_subaperture!r}")
    if not (np.isfinite(diameter) and diameter > 0):
        raise ParameterError(f"telescope diameter must be a finite positive length in m, got {diameter!r}")
    noll = tuple(int(j) for j in np.atleast_1d(noll))
    if min(noll) < 2:
        raise ParameterError(f"Noll indices of the true modes must be >= 2 (no piston), got {min(noll)}")
    valid = valid_subapertures(n_lenslets, obstruction, _REFERENCE_SAMPLES, min_illumination)
    return _pupil_operators(noll, float(diameter), int(n_lenslets), float(obstruction),
                            int(samples_per_subaperture), valid.tobytes())


@lru_cache(maxsize=8)
def _pupil_operators(noll, diameter, n_lenslets, obstruction, samples, valid_bytes):
    valid = np.frombuffer(valid_bytes, dtype=bool).reshape(n_lenslets, n_lenslets)
    m = n_lenslets * samples
    n = m + 2
    sampling = diameter / m
    slopes = _mean_gradient_operator(n_lenslets, obstruction, valid, m, sampling)
    axis = (np.arange(n) - 0.5) / m * 2.0 - 1.0
    x, y = np.meshgrid(axis, axis, indexing="xy")
    sampled = np.stack([zernike(j, x, y).ravel() for j in noll], axis=1)  # (P, K)
    disc = np.zeros((n, n), dtype=bool)
    _, _, full = pupil_grid(m, 0.0)
    disc[1:-1, 1:-1] = full
    basis = np.concatenate([np.ones((int(disc.sum()), 1)), sampled[disc.ravel()]], axis=1)  # piston too
    modes = np.zeros((len(noll), n * n))
    modes[:, disc.ravel()] = np.linalg.pinv(basis)[1:]
    for a in (slopes, modes, sampled):
        a.setflags(write=False)
    return PupilOperators(n, sampling, noll, slopes, modes, sampled)


def _mean_gradient_operator(n_lenslets, obstruction, valid, m, sampling):
    """(2S, (m+2)^2): mean gradient of the bilinear interpolant of the window over the illuminated
    sample points of each valid subaperture, on the 32 x 32 points per subaperture of
    :func:`dancekit.ao.shack_hartmann.interaction_matrix` (same points, same mask, so the
    simulated sensor is the library's model; the mean of the interpolant's gradient over a region
    is a boundary difference of the interpolant, accurate to O(sampling^2))."""
    fine = n_lenslets * _REFERENCE_SAMPLES
    x, y, mask = pupil_grid(fine, obstruction)
    blocks = np.arange(fine) // _REFERENCE_SAMPLES
    lenslet = np.where(valid[blocks[:, None], blocks[None, :]] & mask,
                       blocks[:, None] * n_lenslets + blocks[None, :], -1)
    order = np.flatnonzero(valid.ravel())  # valid lenslets, row-major: the slope order of G
    n_sub, n = order.size, m + 2
    inside = lenslet >= 0
    k = np.searchsorted(order, lenslet[inside])
    weight = 1.0 / (sampling * np.bincount(k, minlength=n_sub).astype(float)[k])
    col = (x[inside] + 1.0) / 2.0 * m - 0.5 + 1.0  # continuous window pixel coordinates
    row = (y[inside] + 1.0) / 2.0 * m - 0.5 + 1.0
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fx, fy = col - c0, row - r0
    op = np.zeros((2 * n_sub, n * n))
    for dr, wy in ((0, 1.0 - fy), (1, fy)):  # d/dx of the bilinear interpolant
        np.add.at(op, (k, (r0 + dr) * n + c0 + 1), weight * wy)
        np.add.at(op, (k, (r0 + dr) * n + c0), -weight * wy)
    for dc, wx in ((0, 1.0 - fx), (1, fx)):  # d/dy
        np.add.at(op, (n_sub + k, (r0 + 1) * n + c0 + dc), weight * wx)
        np.add.at(op, (n_sub + k, r0 * n + c0 + dc), -weight * wx)
    return op


def _layer_screen(layer: TurbulentLayer, r0_layer, outer_scale, window, sampling, duration,
                  min_width, generator) -> LayerScreen:
    """A wind-aligned strip that the pupil window never leaves in ``duration``, at least
    ``min_width`` [m] wide: a strip only a pupil wide misrepresents the frequencies below 1/width
    (tilt variance ~40 % high), ~4 D is enough (tests)."""
    (rows, cols), (col0, row0), direction = screen_geometry(window, sampling, layer.altitude, layer.wind,
                                                           duration, [[0.0, 0.0]])
    wide = max(rows, int(math.ceil(min_width / sampling)))
    phase = fft_phase_screen((wide, cols), sampling, r0_layer, outer_scale, generator=generator)
    return LayerScreen(phase, sampling, float(layer.altitude), tuple(float(v) for v in layer.wind),
                       direction, (col0, row0 + (wide - rows) // 2))


def integrator_loop(open_slopes: np.ndarray, rec: np.ndarray, dm_slopes: np.ndarray, gain: float,
                    delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Modal integrator: (logged commands (T, F), commands acting (T, F)) [rad].

    c_t = c_{t-1} + gain R s_t with s_t = open_t - D a_t the slopes of the residual phase
    (``dm_slopes`` D (2S, F): slopes of the DM modes), a_t = c_{t-delay} the command acting during
    frame t (computed ``delay`` frames earlier).
    """
    n_frames, n_modes = open_slopes.shape[0], rec.shape[0]
    logged = np.zeros((n_frames, n_modes))
    acting = np.zeros((n_frames, n_modes))
    command = np.zeros(n_modes)
    for t in range(n_frames):
        if t >= delay:
            acting[t] = logged[t - delay]
        command = command + gain * (rec @ (open_slopes[t] - dm_slopes @ acting[t]))
        logged[t] = command
    return logged, acting


def simulate_screen_telemetry(r0: float, outer_scale: float, layers, *, n_frames: int,
                              frame_rate: float, diameter: float = 1.8,
                              controlled_noll=tuple(range(2, 16)), true_noll=tuple(range(2, 46)),
                              slope_noise: float = 0.0, loop_gain: float = 0.0, loop_delay: int = 2,
                              n_lenslets: int = 4, obstruction: float = 0.077,
                              samples_per_subaperture: int = 16, min_screen_width: float | None = None,
                              batch: int = 1000, seed=None) -> SyntheticTelemetry:
    """Open- or closed-loop NAOMI-like telemetry from moving multi-layer von Kármán screens.

    r0 [m at 500 nm] is the total (line-of-sight) Fried parameter, shared among ``layers``
    (:class:`TurbulentLayer`, Cn2 fractions normalised here) as r0_l = r0 f_l^(-3/5); L0 [m] is
    common to all layers. Frames at t = k / frame_rate [Hz]; ``slope_noise`` [rad/m] white per
    slope. The closed loop follows :func:`dancekit.ao.synthetic.simulate_telemetry`'s convention
    (command logged at frame t acts from t + loop_delay). ``min_screen_width`` [m] (default 4 D).
    Returns :class:`dancekit.ao.synthetic.SyntheticTelemetry` whose ``turbulence`` holds the true
    Noll ``true_noll`` coefficients of the summed phase. ``seed`` int or numpy Generator.
    """
    layers = tuple(layers)
    if not layers:
        raise ParameterError("need at least one turbulent layer")
    fractions = np.array([layer.cn2_fraction for layer in layers], dtype=float)
    if np.any(~np.isfinite(fractions)) or np.any(fractions < 0) or fractions.sum() <= 0:
        raise ParameterError(f"layer Cn2 fractions must be >= 0 with a positive sum, got {fractions.tolist()}")
    for name, value in (("r0", r0), ("frame rate", frame_rate)):
        if not (np.isfinite(value) and value > 0):
            raise ParameterError(f"{name} must be finite and positive (SI units), got {value!r}")
    if not outer_scale > 0:
        raise ParameterError(f"outer scale must be > 0 m (inf: Kolmogorov), got {outer_scale!r}")
    if int(n_frames) != n_frames or n_frames < 2:
        raise ParameterError(f"n_frames must be an integer >= 2, got {n_frames!r}")
    check_loop_parameters(slope_noise, loop_gain, loop_delay)
    controlled = tuple(int(j) for j in controlled_noll)
    true_noll = tuple(int(j) for j in true_noll)
    ops = pupil_operators(tuple(sorted(set(true_noll) | set(controlled))), diameter, n_lenslets,
                          obstruction, samples_per_subaperture)
    rec = reconstructor(interaction_matrix(controlled, diameter=diameter, n_lenslets=n_lenslets,
                                           obstruction=obstruction))
    seq = np.random.SeedSequence(seed if not isinstance(seed, np.random.Generator) else seed.integers(2 ** 63))
    *layer_seeds, noise_seed = seq.spawn(len(layers) + 1)
    n_frames = int(n_frames)
    duration = (n_frames - 1) / frame_rate
    width = 4.0 * diameter if min_screen_width is None else float(min_screen_width)
    r0_layers = layer_fried_parameters(r0, fractions / fractions.sum())
    screens = [
        _layer_screen(layer, r0_l, outer_scale, ops.window, ops.sampling, duration, width,
                      torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> 1)))
        for layer, r0_l, s in zip(layers, r0_layers, layer_seeds) if np.isfinite(r0_l)]
    keep = [ops.noll.index(j) for j in true_noll]
    operator = torch.from_numpy(np.concatenate([ops.slopes, ops.modes[keep]], axis=0).T.copy())  # (P, 2S+K)
    n_slopes = ops.slopes.shape[0]
    out = np.empty((n_frames, operator.shape[1]))
    for start in range(0, n_frames, int(batch)):
        times = torch.arange(start, min(start + int(batch), n_frames), dtype=torch.float64) / frame_rate
        angles = torch.zeros(times.shape[0], 2, dtype=torch.float64)
        phase = sum(layer_phase(screen, ops.window, angles, times) for screen in screens)
        out[start:start + times.shape[0]] = (phase.reshape(times.shape[0], -1).double() @ operator).numpy()
    noise = slope_noise * np.random.default_rng(noise_seed).standard_normal((n_frames, n_slopes))
    open_slopes = out[:, :n_slopes] + noise
    pol = open_slopes @ rec.T
    if loop_gain > 0:
        dm_slopes = ops.slopes @ ops.zernike[:, [ops.noll.index(j) for j in controlled]]  # (2S, F)
        dm, acting = integrator_loop(open_slopes, rec, dm_slopes, loop_gain, int(loop_delay))
        slopes = open_slopes - acting @ dm_slopes.T
    else:
        dm, slopes = np.zeros_like(pol), open_slopes
    return SyntheticTelemetry(
        noll_controlled=controlled, noll_all=true_noll, turbulence=out[:, n_slopes:], slopes=slopes,
        reconstructed=pol, dm_modes=dm, residual_modes=slopes @ rec.T,
        noise_variance=slope_noise ** 2 * np.einsum("ij,ij->i", rec, rec),
        slope_noise=float(slope_noise), loop_delay=int(loop_delay))
