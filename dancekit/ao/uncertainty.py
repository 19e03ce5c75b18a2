"""Statistical spread of measured modal variances, for the Monte-Carlo uncertainty of r0 and L0.

Morujão et al. 2023 (eq. 21) redraw each fitted variance independently with the spread of the
variances within its radial order. That spread describes how well the model fits across modes, but
the variances of one time series are positively correlated from mode to mode (the same turbulence
drives them all) and each is known only as well as the number of independent turbulence
realisations in the series allows; on 20-s independent telemetry the within-order draws give an r0
error of 0.6-0.7 times the file-to-file scatter.

:func:`block_jackknife_deviations` measures the spread from the data themselves: the series is cut
into ``n_blocks`` consecutive blocks (delete-one-block jackknife, Künsch 1989), each block is left
out in turn and the noise-corrected variances are recomputed; the deviations (B, F) carry the full
mode-to-mode covariance ``(B - 1)/B sum_b d_b d_b^T``. :func:`draw_from_deviations` draws Gaussian
variance vectors with exactly that covariance. Blocks must be longer than the modes' correlation
time (~D/V, 0.1-0.2 s for NAOMI): 20 blocks of a 20-s series are 1 s each.
"""

from __future__ import annotations

import numpy as np

from dancekit.ao.noise import noise_from_autocorrelation, propagated_noise_variance


def block_jackknife_deviations(modes: np.ndarray, columns, n_blocks: int = 20, max_lag: int = 4,
                               degree: int = 3, estimate_noise: bool = True, noise_gain=None) -> np.ndarray | None:
    """(B, F) deviations from their mean of the delete-one-block estimates of (variance - noise).

    ``modes`` (T, K) [any unit]; ``columns`` the F columns to return. Noise as
    :func:`dancekit.ao.noise.measurement_noise_variance` (lags 1..``max_lag``), propagated from
    one slope-noise level when ``noise_gain`` (K,) is given. Returns None when the series is too
    short for 2 blocks of 10 (max_lag + 1) frames. Computed from per-block sums (the pairs of frames
    that straddle the removed block are left out, not joined across it).
    """
    x = np.asarray(modes, dtype=float)
    x = x - x.mean(axis=0)
    n = x.shape[0]
    blocks = min(int(n_blocks), n // (10 * (max_lag + 1)))
    if blocks < 2:
        return None
    edges = np.linspace(0, n, blocks + 1).astype(int)
    lags = range(max_lag + 1)
    # products[tau][t] = x_t x_{t+tau}; a pair belongs to every block holding t or t + tau
    products = [x[: n - tau] * x[tau:] for tau in lags]
    totals = np.array([p.sum(axis=0) for p in products])  # (L, K)
    removed = np.empty((blocks, len(lags), x.shape[1]))
    counts = np.empty((blocks, len(lags), 1))
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        for tau in lags:
            first = max(lo - tau, 0)  # pairs (t, t + tau) with t in [lo - tau, hi) touch the block
            removed[b, tau] = products[tau][first:min(hi, n - tau)].sum(axis=0)
            counts[b, tau] = (n - tau) - (min(hi, n - tau) - first)
    corr = (totals[None] - removed) / counts  # (B, L, K) autocorrelations without block b
    sums = np.add.reduceat(x, edges[:-1], axis=0)  # (B, K)
    size = np.diff(edges)[:, None]
    mean = -sums / (n - size)  # the mean of the rest (x has zero mean overall)
    rest_n = n - size
    variance = (corr[:, 0] - mean ** 2) * rest_n / (rest_n - 1.0)
    noise = noise_from_autocorrelation(corr.transpose(1, 0, 2), degree) if estimate_noise else np.zeros_like(variance)
    if noise_gain is not None and estimate_noise:
        noise = np.stack([propagated_noise_variance(row, noise_gain) for row in noise])
    estimates = (variance - noise)[:, list(columns)]
    return estimates - estimates.mean(axis=0)


def draw_from_deviations(centre: np.ndarray, deviations: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """(n_draws, F) Gaussian draws around ``centre`` (F,) with the jackknife covariance of
    ``deviations`` (B, F): ``centre + sqrt((B-1)/B) sum_b g_b d_b``, g ~ N(0, 1)."""
    b = deviations.shape[0]
    weights = rng.standard_normal((int(n_draws), b)) * np.sqrt((b - 1.0) / b)
    return np.asarray(centre, dtype=float)[None, :] + weights @ deviations
