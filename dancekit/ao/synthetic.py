"""Modal telemetry drawn exactly from the model that :mod:`dancekit.ao.fit` inverts.

Zernike coefficients are Gaussian with the von Kármán covariance (Takato & Yamaguchi 1995) at
every frame and a smooth (Gaussian) temporal autocorrelation, as frozen flow gives (Conan et al.
1995: modal cut-off ~0.3 (n+1) V / D); slopes are ``G a + noise`` through the geometric SH model;
reconstructed modes are ``pinv(G_F) s`` (Morujão et al. 2023 eqs. 2-5). Expected reconstructed
variances are then exactly ``<a_i^2> + sigma_cc,i + sigma_noise,i`` (eq. 13). Optionally the loop
is closed with a modal integrator and a delay, to exercise the pseudo-open-loop reconstruction.
Units: coefficients in rad at 500 nm (the r0 wavelength), slopes in rad/m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.ao.covariance import zernike_covariance_matrix
from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor
from dancekit.ao.zernike import noll_orders
from dancekit.errors import ParameterError


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def modal_correlation_frames(noll, wind_speed: float, diameter: float, frame_rate: float) -> np.ndarray:
    """Gaussian correlation length [frames] per mode from the frozen-flow cut-off frequency.

    f_c = 0.3 (n+1) V / D (Conan et al. 1995); the Gaussian kernel has sigma = frame_rate / (2 pi f_c).
    """
    for name, v in (("wind speed", wind_speed), ("diameter", diameter), ("frame rate", frame_rate)):
        if not np.isfinite(v) or v <= 0:
            raise ParameterError(f"{name} must be finite and positive (SI units), got {v!r}")
    n, _ = noll_orders(noll)
    f_c = 0.3 * (n + 1.0) * wind_speed / diameter
    return frame_rate / (2.0 * np.pi * f_c)


def smooth_white_noise(n_frames: int, correlation_frames, seed=None) -> np.ndarray:
    """(T, K) independent unit-variance series with Gaussian autocorrelation exp(-tau^2/(4 sigma^2)).

    ``correlation_frames`` is the Gaussian smoothing sigma [frames], scalar or (K,); 0 gives white
    noise. Circular FFT filtering, normalised so that each series has unit expected variance.
    """
    sig = np.atleast_1d(np.asarray(correlation_frames, dtype=float))
    if np.any(~np.isfinite(sig)) or np.any(sig < 0):
        raise ParameterError(f"correlation length must be >= 0 frames, got {correlation_frames!r}")
    rng = _rng(seed)
    white = rng.standard_normal((int(n_frames), sig.size))
    f = np.fft.rfftfreq(int(n_frames))[:, None]
    transfer = np.exp(-2.0 * np.pi ** 2 * sig[None, :] ** 2 * f ** 2)
    weight = np.full(f.shape, 2.0)
    weight[0] = 1.0
    if n_frames % 2 == 0:
        weight[-1] = 1.0
    power = (weight * transfer ** 2).sum(axis=0) / n_frames
    return np.fft.irfft(np.fft.rfft(white, axis=0) * transfer / np.sqrt(power), n=int(n_frames), axis=0)


def draw_modal_time_series(noll, r0: float, outer_scale: float, diameter: float, n_frames: int,
                           correlation_frames=5.0, seed=None) -> np.ndarray:
    """(T, K) Zernike coefficients [rad at r0's wavelength] with covariance exactly von Kármán.

    ``a(t) = L w(t)`` with ``L L^T = Sigma(r0, L0, D)`` and ``w`` from :func:`smooth_white_noise`.
    """
    if int(n_frames) != n_frames or n_frames < 2:
        raise ParameterError(f"n_frames must be an integer >= 2, got {n_frames!r}")
    cov = zernike_covariance_matrix(noll, r0, outer_scale, diameter)
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    w = smooth_white_noise(int(n_frames), np.broadcast_to(correlation_frames, (len(cov),)), seed)
    return w @ root.T


@dataclass(frozen=True)
class SyntheticTelemetry:
    """Synthetic open- or closed-loop telemetry and its exact expectations."""

    noll_controlled: tuple  # Noll indices of the reconstructed/controlled modes
    noll_all: tuple  # Noll indices of the turbulence modes that reach the slopes
    turbulence: np.ndarray  # (T, M) true coefficients [rad]
    slopes: np.ndarray  # (T, 2S) open-loop slopes incl. noise [rad/m] (residual slopes if closed)
    reconstructed: np.ndarray  # (T, F) pseudo-open-loop modes pinv(G_F) s_open [rad]
    dm_modes: np.ndarray  # (T, F) logged DM modal commands [rad] (zeros when open loop)
    residual_modes: np.ndarray  # (T, F) modes reconstructed from the logged slopes [rad]
    noise_variance: np.ndarray  # (F,) expected modal noise variance sigma_s^2 diag(R R^T) [rad^2]
    slope_noise: float  # slope noise standard deviation [rad/m]
    loop_delay: int  # frames between computing a command and its taking effect


def simulate_telemetry(r0: float, outer_scale: float, *, n_frames: int, diameter: float = 1.8,
                       controlled_noll=tuple(range(2, 16)), max_noll: int = 45,
                       correlation_frames=5.0, slope_noise: float = 0.0, loop_gain: float = 0.0,
                       loop_delay: int = 2, seed=None, **geometry) -> SyntheticTelemetry:
    """NAOMI-like telemetry: turbulence modes 2..``max_noll`` through the SH model plus noise.

    r0, L0, diameter [m]; ``slope_noise`` [rad/m] white per slope. With ``loop_gain`` > 0 the loop
    is closed by a modal integrator: the command computed at frame t (logged as ``dm_modes[t]``)
    acts from frame ``t + loop_delay``, so the pseudo-open-loop modes are
    ``residual[k] + dm[k - loop_delay]`` (``delay = -loop_delay`` in
    :func:`dancekit.ao.pseudo_open_loop.pseudo_open_loop_modes`). ``seed`` int or Generator.
    """
    check_loop_parameters(slope_noise, loop_gain, loop_delay)
    controlled = tuple(int(j) for j in controlled_noll)
    if max_noll < max(controlled):
        raise ParameterError(
            f"max_noll ({max_noll}) must be >= the highest controlled mode ({max(controlled)})")
    noll_all = tuple(range(2, int(max_noll) + 1))
    missing = sorted(set(controlled) - set(noll_all))
    if missing:
        raise ParameterError(f"controlled modes {missing} must lie in 2..{max_noll}")
    turb_seed, noise_seed = np.random.SeedSequence(
        seed if not isinstance(seed, np.random.Generator) else seed.integers(2 ** 63)).spawn(2)
    turbulence = draw_modal_time_series(noll_all, r0, outer_scale, diameter, n_frames,
                                        correlation_frames, np.random.default_rng(turb_seed))
    g_all = interaction_matrix(noll_all, diameter=diameter, **geometry)
    cols = [noll_all.index(j) for j in controlled]
    g_f = g_all[:, cols]
    rec = reconstructor(g_f)
    noise = slope_noise * np.random.default_rng(noise_seed).standard_normal((int(n_frames), g_all.shape[0]))
    open_slopes = turbulence @ g_all.T + noise
    pol = open_slopes @ rec.T
    dm = np.zeros_like(pol)
    if loop_gain > 0:
        d = int(loop_delay)
        applied = np.zeros_like(pol)  # command acting during frame t
        command = np.zeros(len(cols))
        for t in range(int(n_frames)):
            if t >= d:
                applied[t] = dm[t - d]
            command = command + loop_gain * (pol[t] - applied[t])
            dm[t] = command
        slopes = open_slopes - applied @ g_f.T
    else:
        slopes = open_slopes
    residual = slopes @ rec.T
    return SyntheticTelemetry(
        noll_controlled=controlled, noll_all=noll_all, turbulence=turbulence, slopes=slopes,
        reconstructed=pol, dm_modes=dm, residual_modes=residual,
        noise_variance=slope_noise ** 2 * np.einsum("ij,ij->i", rec, rec),
        slope_noise=float(slope_noise), loop_delay=int(loop_delay))


def slope_noise_for_snr(snr: float, r0: float, outer_scale: float, *, diameter: float = 1.8,
                        controlled_noll=tuple(range(2, 16)), fit_noll=tuple(range(4, 16)),
                        **geometry) -> float:
    """White slope noise [rad/m] giving a modal signal-to-noise ratio ``snr``.

    ``snr = sum_i <a_i^2> / sum_i sigma_noise,i`` over the fitted modes ``fit_noll`` (variances,
    not amplitudes), with ``sigma_noise,i = sigma_s^2 (R R^T)_ii`` for the least-squares
    reconstructor R of the controlled modes (Morujão et al. 2023 eq. 14). Per-mode S/N (their
    eq. 32) then spans about two decades, high for radial order 2 and low for order 4.
    """
    if not np.isfinite(snr) or snr <= 0:
        raise ParameterError(f"S/N must be a finite positive variance ratio, got {snr!r}")
    controlled = [int(j) for j in controlled_noll]
    fit = [int(j) for j in fit_noll]
    missing = sorted(set(fit) - set(controlled))
    if missing:
        raise ParameterError(f"fitted modes {missing} are not among the controlled modes {controlled}")
    turbulence = np.diag(zernike_covariance_matrix(fit, r0, outer_scale, diameter))
    rec = reconstructor(interaction_matrix(controlled, diameter=diameter, **geometry))
    rows = [controlled.index(j) for j in fit]
    gain = np.einsum("ij,ij->i", rec[rows], rec[rows])
    return float(np.sqrt(turbulence.sum() / (snr * gain.sum())))


def modal_snr(turbulence_variance, noise_variance) -> np.ndarray:
    """Per-mode S/N = turbulence variance / noise variance (Morujão et al. 2023 eq. 32)."""
    t = np.asarray(turbulence_variance, dtype=float)
    n = np.asarray(noise_variance, dtype=float)
    return np.divide(t, n, out=np.full(np.broadcast(t, n).shape, np.inf), where=n > 0)


def check_loop_parameters(slope_noise: float, loop_gain: float, loop_delay: int) -> None:
    """Refuse a negative slope noise (rad/m), an unstable integrator gain, or a delay below 1 frame."""
    if not np.isfinite(slope_noise) or slope_noise < 0:
        raise ParameterError(f"slope noise must be >= 0 rad/m, got {slope_noise!r}")
    if not 0.0 <= loop_gain < 2.0:
        raise ParameterError(f"loop gain must be in [0, 2), got {loop_gain!r}")
    if int(loop_delay) != loop_delay or loop_delay < 1:
        raise ParameterError(f"loop delay must be an integer >= 1 frame, got {loop_delay!r}")
