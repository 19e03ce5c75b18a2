"""Measurement-noise variance of modal time series from their temporal autocorrelation.

Fusco et al. 2004 (J. Opt. A 6, 585); Morujão et al. 2023 appendix B. White measurement noise
only adds to the autocorrelation at lag 0, while the turbulence part is smooth in the lag, so
the noise variance is ``C(0) - P(0)`` where ``P`` is a polynomial fitted to ``C`` at lags
``+-1 .. +-max_lag`` and extrapolated to lag 0.

Differences from the Turlib reference (``noise_variance``): the series are mean-subtracted, the
autocorrelation at lag ``tau`` is normalised by ``N - tau`` (unbiased; the biased ``/N`` form
shifts ``C(4)`` by 4e-4 of the turbulence variance, a few per cent of a small noise), only the
needed lags are computed (O(N max_lag), not O(N^2)), and the polynomial is even in the lag (the
autocorrelation is symmetric), so the default ``degree=3`` in ``tau^2`` on lags 1..4 equals
Turlib's degree-6 fit on lags +-1..+-4. The estimator needs a smooth (frozen-flow-like)
autocorrelation; an AR(1) cusp at lag 0 biases it high.
"""

from __future__ import annotations

import numpy as np

from dancekit.errors import InputError, ParameterError


def autocorrelation(modes: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation C(tau) for tau = 0..max_lag of each mean-subtracted column.

    ``modes`` (T, K) -> (max_lag + 1, K), in the squared unit of ``modes``.
    """
    x = np.asarray(modes, dtype=float)
    x = x - x.mean(axis=0)
    n = x.shape[0]
    out = np.empty((max_lag + 1, x.shape[1]))
    out[0] = np.einsum("tk,tk->k", x, x) / n
    for tau in range(1, max_lag + 1):
        out[tau] = np.einsum("tk,tk->k", x[:-tau], x[tau:]) / (n - tau)
    return out


def measurement_noise_variance(modes: np.ndarray, max_lag: int = 4, degree: int = 3) -> np.ndarray:
    """Per-mode white-noise variance [unit of modes, squared] (Fusco et al. 2004).

    Parameters
    ----------
    modes : (T, K) modal time series (e.g. pseudo-open-loop coefficients in rad).
    max_lag : highest lag [frames] used in the fit; lags 1..max_lag (and their mirrors).
    degree : degree of the fitted polynomial in tau^2 (needs max_lag >= degree + 1).

    Returns
    -------
    (K,) noise variances, clipped at 0.
    """
    x = np.asarray(modes, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(f"modal time series must be (frames, modes), got shape {x.shape}")
    if int(max_lag) != max_lag or max_lag < 1:
        raise ParameterError(f"max_lag must be an integer >= 1 frame, got {max_lag!r}")
    if int(degree) != degree or degree < 0 or degree + 1 > max_lag:
        raise ParameterError(
            f"degree (in tau^2) must be an integer in [0, max_lag - 1] = [0, {max_lag - 1}], got {degree!r}")
    min_frames = 10 * (max_lag + 1)
    if x.shape[0] < min_frames:
        raise InputError(
            f"{x.shape[0]} frames is too few for the noise autocorrelation up to lag {max_lag}: "
            f"need at least {min_frames}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"modal time series contains {int(np.sum(~np.isfinite(x)))} NaN/inf values")
    return _noise_variance(x, int(max_lag), int(degree))


def _noise_variance(x: np.ndarray, max_lag: int, degree: int) -> np.ndarray:
    return noise_from_autocorrelation(autocorrelation(x, max_lag), degree)


def noise_from_autocorrelation(corr: np.ndarray, degree: int) -> np.ndarray:
    """``C(0) - P(0)`` for autocorrelations ``corr`` (max_lag + 1, ...) at lags 0..max_lag, P the
    least-squares polynomial of ``degree`` in tau^2 through lags 1..max_lag; clipped at 0."""
    lags_sq = np.arange(1, corr.shape[0], dtype=float) ** 2
    design = np.vander(lags_sq, degree + 1, increasing=True)  # columns 1, tau^2, tau^4, ...
    intercept = np.tensordot(np.linalg.pinv(design)[0], corr[1:], axes=(0, 0))
    return np.maximum(corr[0] - intercept, 0.0)


def propagated_noise_variance(noise_variance, noise_gain) -> np.ndarray:
    """Per-mode noise of white slope noise through the reconstructor (Morujão et al. 2023 eq. 14).

    ``noise_variance`` (K,) per-mode estimates (e.g. :func:`measurement_noise_variance`) and
    ``noise_gain`` (K,) = diag(R R^T) of the reconstructor R: returns ``sigma^2 gain`` with the slope
    noise variance ``sigma^2 = mean_i(noise_i / gain_i)`` pooled over all modes, which averages out
    the scatter of the single-mode estimates. Assumes equal, white noise on every slope.
    """
    n = np.asarray(noise_variance, dtype=float)
    g = np.asarray(noise_gain, dtype=float)
    if g.shape != n.shape or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ParameterError(f"noise gain must be ({n.size},) positive values diag(R R^T), got {g.shape}")
    return g * np.mean(n / g)
