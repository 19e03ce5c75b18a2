"""Iterative chi^2 estimate of r0 (and L0) from modal variances (Morujão et al. 2023, sect. 2.5-2.7).

Model of the reconstructed variance of Noll mode i (eq. 13, 17):
``var_i = (D/r0)^(5/3) [g_i(L0) + h_i(L0)] + sigma_noise,i`` where ``g`` is the von Kármán
variance and ``h`` the remaining (aliasing/cross-talk) error, both tabulated in
:mod:`dancekit.ao.modal_model`. Algorithm (eqs. 19-20): iteration 1 fits
``y = var - noise`` with ``(D/r0)^(5/3) g(L0)``; every later iteration subtracts the remaining
error at the previous estimate and refits; at least ``min_iterations`` (2) and until r0 and L0
change by less than ``tol``. Each radial order n gets a weight 1/sigma_n^2, sigma_n the standard
deviation of y over its modes, floored at ``sigma_floor * mean_n(y)`` (Turlib divides by zero on
noise-free data).

Fixes of the reference code (see notes/naomi.md): the r0 part is solved in closed form (the
model is linear in (D/r0)^(5/3)) and L0 by a bounded profile search in ln L0 (grid, sub-grid,
parabola), so there is no random initial guess and the result is deterministic; the Monte Carlo is
seeded and vectorised. Monte Carlo (sect. 2.7): the noise-corrected variances are redrawn
``n_monte_carlo`` times and refitted (r0 and, when fitted, L0); ``r0_err`` / ``outer_scale_err``
are the standard deviations of the redrawn values (the uncertainty of one estimate);
``r0_err_of_mean`` is the paper's eq. 22 (r0_err / sqrt(n_monte_carlo)), kept for comparison. The
draws follow either the paper's eq. 21 (``mc_spread='orders'``: each mode independently with the
spread of its radial order) or, by default in :func:`estimate_turbulence`, the covariance of the
variances measured from the time series by a block jackknife (``'blocks'``,
:mod:`dancekit.ao.uncertainty`), which includes the mode-to-mode correlation and the finite number
of independent realisations. On 80 independent 20-s files the latter gives a mean r0_err of 1.56 %
against a file-to-file scatter of 1.49 % (94 % of files within 2 sigma); the former gives 0.6-0.7
times the scatter (83 % within 2 sigma). On telemetry drawn exactly from the model it is
conservative (about 1.5 times the scatter: the jackknife of a non-linear fit, Efron & Stein 1981).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.ao.modal_model import model_at, modal_model, naomi_cross_talk
from dancekit.ao.noise import measurement_noise_variance, propagated_noise_variance
from dancekit.ao.uncertainty import block_jackknife_deviations, draw_from_deviations
from dancekit.ao.zernike import noll_orders
from dancekit.errors import InputError, ParameterError

_SUBGRID = 13  # chi^2 samples between neighbouring L0 nodes


@dataclass(frozen=True)
class TurbulenceFit:
    """Result of :func:`fit_modal_variances` / :func:`estimate_turbulence` (lengths in m, 500 nm)."""

    r0: float  # line-of-sight Fried parameter [m]
    r0_err: float  # Monte-Carlo standard deviation of r0 [m] (nan without Monte Carlo)
    r0_err_of_mean: float  # paper eq. 22: r0_err / sqrt(n_monte_carlo) [m]
    outer_scale: float  # L0 [m]; nan when the fit ran into a bound
    outer_scale_flag: str  # 'fitted', 'fixed', 'lower_bound' or 'upper_bound'
    iterations: int
    converged: bool
    fit_noll: tuple  # Noll indices of the fitted modes
    measured_variance: np.ndarray  # (F,) variances of the fitted modes [rad^2]
    noise_variance: np.ndarray  # (F,) noise variance subtracted [rad^2]
    remaining_error: np.ndarray  # (F,) remaining error at the solution [rad^2]
    model_variance: np.ndarray  # (F,) von Kármán variance at the solution [rad^2]
    n_monte_carlo: int
    r0_samples: np.ndarray  # (n_monte_carlo,) Monte-Carlo r0 [m]
    outer_scale_err: float  # Monte-Carlo standard deviation of L0 [m] (nan unless fitted)
    outer_scale_interval: tuple  # 16th and 84th percentiles of the MC L0 [m]
    outer_scale_bound_fraction: float  # fraction of MC draws whose L0 ran into a bound
    outer_scale_samples: np.ndarray  # (n_monte_carlo,) Monte-Carlo L0 [m]
    mc_spread: str  # how the MC draws were spread: 'orders' (eq. 21) or 'blocks'
    noll: tuple  # all reconstructed Noll modes, for the per-mode evidence below
    mode_variance: np.ndarray  # (K,) measured variance of every reconstructed mode [rad^2]
    mode_noise: np.ndarray  # (K,) its noise variance [rad^2]
    mode_remaining: np.ndarray  # (K,) remaining error at the solution [rad^2]
    mode_model: np.ndarray  # (K,) von Kármán variance at the solution [rad^2]


def _order_weights(y, order_id, n_orders, floor):
    """1/sigma_n^2 per mode from the spread of y within each radial order, floored."""
    w = np.empty_like(y)
    for o in range(n_orders):
        sel = order_id == o
        mean = y[:, sel].mean(axis=1)
        sigma = np.maximum(y[:, sel].std(axis=1), floor * np.abs(mean))
        sigma = np.where(sigma > 0, sigma, 1e-300)
        w[:, sel] = (1.0 / sigma ** 2)[:, None]
    return w


def _scale(y, w, g):
    """Closed-form (D/r0)^(5/3) minimising sum w (s g - y)^2, clamped at 0; and -reduction of chi2."""
    a = np.einsum("sf,sf->s", w * y, g)
    b = np.einsum("sf,sf->s", w, g * g)
    a = np.maximum(a, 0.0)
    return a / b, -(a * a) / b


def _fit_once(y, w, model, fixed):
    """One chi^2 fit of all samples: returns (s, log_l0, bound) with bound -1/0/+1."""
    n = y.shape[0]
    if fixed is not None:
        s, _ = _scale(y, w, np.broadcast_to(fixed[0], y.shape))
        return s, np.full(n, np.nan), np.zeros(n, dtype=int)
    nodes = model.log_l0
    g = model.variance
    # einsum, not matmul: these products are small and BLAS threading only adds overhead
    a = np.maximum(np.einsum("sf,gf->sg", w * y, g), 0.0)
    chi = -(a * a) / np.einsum("sf,gf->sg", w, g * g)  # (S, G)
    idx = np.argmin(chi, axis=1)
    # refine: chi^2 on a fine sub-grid spanning the neighbouring nodes, then a parabola
    step = nodes[1] - nodes[0]
    centre = np.clip(nodes[idx], nodes[0] + step, nodes[-1] - step)
    offsets = np.linspace(-step, step, _SUBGRID)
    u_fine = centre[:, None] + offsets[None, :]  # (S, K)
    g_fine = model.at(u_fine, variance_only=True)  # (S, K, F)
    a_f = np.maximum(np.einsum("sf,skf->sk", w * y, g_fine), 0.0)
    chi_f = -(a_f * a_f) / np.einsum("sf,skf->sk", w, g_fine * g_fine)
    k = np.clip(np.argmin(chi_f, axis=1), 1, _SUBGRID - 2)
    rows = np.arange(n)
    cm, c0, cp = chi_f[rows, k - 1], chi_f[rows, k], chi_f[rows, k + 1]
    curv = cm - 2.0 * c0 + cp
    shift = np.where(curv > 0, 0.5 * (cm - cp) / np.where(curv > 0, curv, 1.0), 0.0)
    h = offsets[1] - offsets[0]
    u = np.clip(u_fine[rows, k] + np.clip(shift, -1.0, 1.0) * h, nodes[0], nodes[-1])
    s, _ = _scale(y, w, model.at(u, variance_only=True))
    bound = np.where(u < nodes[0] + 0.5 * step, -1, np.where(u > nodes[-1] - 0.5 * step, 1, 0))
    return s, u, bound


def _iterate(raw, order_id, n_orders, model, fixed, opts, weights=None):
    """Iterative fit (eq. 19-20) of every row of ``raw`` (S, F) = variance - noise; ``weights``
    (F,) fixes the per-mode weights instead of taking them from each row's within-order spread."""
    n = raw.shape[0]
    remaining = np.zeros_like(raw)
    s_prev = np.full(n, np.nan)
    u_prev = np.full(n, np.nan)
    for it in range(1, opts["max_iterations"] + 1):
        y = raw - remaining
        w = _order_weights(y, order_id, n_orders, opts["sigma_floor"]) if weights is None else \
            np.broadcast_to(weights, y.shape)
        s, u, bound = _fit_once(y, w, model, fixed)
        # relative change of (D/r0)^(5/3); r0 changes by 3/5 of it
        change = np.abs(s / np.where(np.isnan(s_prev), np.inf, s_prev) - 1.0)
        du = np.abs(u - u_prev) if fixed is None else np.zeros(n)
        converged = (it >= opts["min_iterations"]) & (change < opts["tol"]) & ~(du >= opts["tol"])
        s_prev, u_prev = s, u
        if opts["correct_remaining"]:
            h = fixed[1] if fixed is not None else model.at(u)[1]
            remaining = s[:, None] * h
        if np.all(converged):
            break
    return s, u, bound, it, converged, y, w


def _validate(variances, noise_variance, noll, fit_noll, diameter, cross_talk, higher_noll,
              outer_scale, bounds, min_iterations, max_iterations, n_monte_carlo):
    """Boundary checks of :func:`fit_modal_variances`; returns the normalised arguments."""
    noll = [int(j) for j in np.atleast_1d(noll)]
    var = np.asarray(variances, dtype=float)
    noise = np.asarray(noise_variance, dtype=float)
    if var.shape != (len(noll),) or noise.shape != (len(noll),):
        raise InputError(f"variances {var.shape} and noise {noise.shape} must both be "
                         f"({len(noll)},), one per mode")
    if not np.all(np.isfinite(var)) or not np.all(np.isfinite(noise)):
        raise InputError("modal variances and noise variances must be finite (found NaN/inf)")
    if np.any(var <= 0) or np.any(noise < 0):
        raise InputError("modal variances must be > 0 and noise variances >= 0 rad^2")
    fit_noll = tuple(int(j) for j in fit_noll)
    missing = sorted(set(fit_noll) - set(noll))
    if missing:
        raise ParameterError(f"fitted modes {missing} are not among the reconstructed modes {noll}")
    if not np.isfinite(diameter) or diameter <= 0:
        raise ParameterError(f"telescope diameter must be a finite positive length in m, got {diameter!r}")
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < hi or not np.isfinite(hi):
        raise ParameterError(f"outer_scale_bounds must be 0 < low < high < inf metres, got {bounds!r}")
    if outer_scale is not None and (np.isnan(outer_scale) or outer_scale <= 0):
        raise ParameterError(
            f"outer scale L0 must be > 0 m (inf for Kolmogorov) or None to fit, got {outer_scale!r}")
    if len(fit_noll) < (2 if outer_scale is not None else 3):
        raise ParameterError(
            f"need at least 3 fitted modes to fit r0 and L0 (2 with L0 fixed), got {len(fit_noll)}")
    if int(min_iterations) < 1 or int(max_iterations) < int(min_iterations):
        raise ParameterError(
            f"need 1 <= min_iterations <= max_iterations, got {min_iterations}, {max_iterations}")
    if int(n_monte_carlo) < 0 or int(n_monte_carlo) == 1:
        raise ParameterError(f"n_monte_carlo must be 0 (none) or >= 2 draws, got {n_monte_carlo!r}")
    higher_noll = tuple(int(j) for j in higher_noll)
    if cross_talk is not None:
        cross_talk = np.asarray(cross_talk, dtype=float)
        if cross_talk.shape != (len(noll), len(higher_noll)):
            raise ParameterError(
                f"cross_talk must be ({len(noll)}, {len(higher_noll)}) (reconstructed x higher "
                f"modes), got {cross_talk.shape}")
    return noll, var, noise, fit_noll, higher_noll, cross_talk


def fit_modal_variances(variances, noise_variance, *, noll, fit_noll=tuple(range(4, 16)),
                        diameter: float = 1.8, cross_talk=None, higher_noll=(),
                        outer_scale: float | None = None, outer_scale_bounds=(1.0, 1e4),
                        correct_remaining: bool = True, min_iterations: int = 2,
                        max_iterations: int = 20, tol: float = 1e-5, sigma_floor: float = 0.02,
                        n_monte_carlo: int = 1000, mc_deviations=None, seed=None) -> TurbulenceFit:
    """Fit r0 [m] (and L0 [m]) to reconstructed modal variances [rad^2 at 500 nm].

    ``variances`` and ``noise_variance`` (K,) belong to the reconstructed Noll modes ``noll``;
    ``cross_talk`` C (K, R) maps the higher modes ``higher_noll`` into them (None: no remaining-
    error term). ``outer_scale`` fixes L0 [m] (``inf`` for Kolmogorov); None fits ln L0 within
    ``outer_scale_bounds`` [m]. ``mc_deviations`` (B, F): jackknife deviations of the noise-
    corrected variances of ``fit_noll`` (:mod:`dancekit.ao.uncertainty`) to draw the Monte Carlo
    from; None draws per radial order (eq. 21). ``seed`` (int or Generator) drives the Monte Carlo.
    """
    noll, var, noise, fit_noll, higher_noll, cross_talk = _validate(
        variances, noise_variance, noll, fit_noll, diameter, cross_talk, higher_noll, outer_scale,
        outer_scale_bounds, min_iterations, max_iterations, n_monte_carlo)
    if mc_deviations is not None and np.shape(mc_deviations)[1:] != (len(fit_noll),):
        raise ParameterError(f"mc_deviations must be (blocks, {len(fit_noll)}), got {np.shape(mc_deviations)}")

    rows = [noll.index(j) for j in fit_noll]
    order, _ = noll_orders(fit_noll)
    _, order_id = np.unique(order, return_inverse=True)
    n_orders = int(order_id.max()) + 1
    fixed = None
    model = None
    if outer_scale is None:
        model = modal_model(diameter, fit_noll, noll, higher_noll, cross_talk, outer_scale_bounds)
    else:
        fixed = model_at(outer_scale, diameter, fit_noll, noll, higher_noll, cross_talk)
    opts = dict(max_iterations=int(max_iterations), min_iterations=int(min_iterations),
                tol=float(tol), sigma_floor=float(sigma_floor),
                correct_remaining=bool(correct_remaining))

    raw = (var[rows] - noise[rows])[None, :]
    s, u, bound, iters, conv, y, w = _iterate(raw, order_id, n_orders, model, fixed, opts)
    if not s[0] > 0:
        raise InputError("the noise-corrected modal variances carry no turbulence signal "
                         "(fitted (D/r0)^(5/3) <= 0)")
    r0 = diameter * s[0] ** (-0.6)
    g, h = fixed if fixed is not None else model.at(u[0])
    if fixed is not None:
        flag, l0 = "fixed", float(outer_scale)
    else:
        flag = {-1: "lower_bound", 0: "fitted", 1: "upper_bound"}[int(bound[0])]
        l0 = float(np.exp(u[0])) if flag == "fitted" else np.nan

    mc = _monte_carlo(raw, w, order_id, n_orders, model, fixed, opts, int(n_monte_carlo), mc_deviations, seed, diameter)
    l0_model = float(outer_scale) if fixed is not None else float(np.exp(u[0]))
    g_all, h_all = model_at(l0_model, diameter, noll, noll, higher_noll, cross_talk if correct_remaining else None)
    return TurbulenceFit(
        r0=float(r0), r0_err=mc["r0_err"], r0_err_of_mean=mc["r0_err_of_mean"], outer_scale=l0,
        outer_scale_flag=flag, iterations=int(iters), converged=bool(conv[0]), fit_noll=fit_noll,
        measured_variance=var[rows].copy(), noise_variance=noise[rows].copy(),
        remaining_error=s[0] * h if correct_remaining else np.zeros(len(rows)),
        model_variance=s[0] * g, n_monte_carlo=int(n_monte_carlo), r0_samples=mc["r0_samples"],
        outer_scale_err=mc["L0_err"] if fixed is None else np.nan,
        outer_scale_interval=mc["L0_interval"] if fixed is None else (np.nan, np.nan),
        outer_scale_bound_fraction=mc["L0_bound_fraction"] if fixed is None else np.nan,
        outer_scale_samples=mc["L0_samples"] if fixed is None else np.zeros(0),
        mc_spread="orders" if mc_deviations is None else "blocks", noll=tuple(noll), mode_variance=var.copy(),
        mode_noise=noise.copy(), mode_remaining=s[0] * h_all, mode_model=s[0] * g_all)


def _monte_carlo(raw, w, order_id, n_orders, model, fixed, opts, n_draws, deviations, seed, diameter) -> dict:
    """Redraw the noise-corrected variances ``n_draws`` times and refit: r0 and L0 spreads."""
    out = dict(r0_err=np.nan, r0_err_of_mean=np.nan, r0_samples=np.zeros(0), L0_err=np.nan,
               L0_interval=(np.nan, np.nan), L0_bound_fraction=np.nan, L0_samples=np.zeros(0))
    if n_draws >= 2:
        rng = np.random.default_rng(seed)
        if deviations is None:
            sigma = 1.0 / np.sqrt(w[0])  # per-order spread of the corrected variances (eq. 21)
            draws = raw + rng.standard_normal((n_draws, raw.shape[1])) * sigma
        else:
            draws = draw_from_deviations(raw[0], np.asarray(deviations, dtype=float), n_draws, rng)
        # block draws keep the weights of the data's own fit: the covariance of the variances is
        # propagated through the fit as it was weighted (refitting the weights to every draw would
        # add the doubled within-order spread of the draws, +7 % on sigma)
        s_mc, u_mc, bound_mc = _iterate(draws, order_id, n_orders, model, fixed, opts,
                                        None if deviations is None else w[0])[:3]
        samples = np.where(s_mc > 0, diameter * np.maximum(s_mc, 1e-300) ** (-0.6), np.nan)
        out["r0_samples"] = samples
        out["r0_err"] = float(np.nanstd(samples, ddof=1))
        out["r0_err_of_mean"] = out["r0_err"] / np.sqrt(np.sum(np.isfinite(samples)))
        if fixed is None:
            l0 = np.exp(u_mc)
            out["L0_samples"] = l0
            out["L0_err"] = float(np.std(l0, ddof=1))
            out["L0_interval"] = tuple(float(v) for v in np.percentile(l0, [16, 84]))
            out["L0_bound_fraction"] = float(np.mean(bound_mc != 0))
    for key in ("r0_samples", "L0_samples"):
        out[key].setflags(write=False)
    return out


def estimate_turbulence(modes, *, noll=None, diameter: float = 1.8, max_lag: int = 4,
                        noise_degree: int = 3, estimate_noise: bool = True,
                        max_radial_order: int = 8, cross_talk=None, higher_noll=None,
                        mc_spread: str = "blocks", n_blocks: int = 20, noise_gain=None,
                        **fit_options) -> TurbulenceFit:
    """r0 [m] (and L0) from pseudo-open-loop modal time series ``modes`` (T, K) [rad at 500 nm].

    Columns are Noll modes ``noll`` (default 2..K+1). Noise per mode from the autocorrelation
    (:func:`dancekit.ao.noise.measurement_noise_variance`, lags 1..``max_lag``); remaining error
    from ``cross_talk`` (default: the project's NAOMI SH model up to ``max_radial_order``, via
    :func:`dancekit.ao.modal_model.naomi_cross_talk`; the sensor's own through
    :func:`dancekit.ao.sensor_matrix.cross_talk_from_sensor`). ``mc_spread`` 'blocks' draws the
    Monte Carlo from the jackknife covariance of ``n_blocks`` time blocks (falls back to 'orders',
    the paper's eq. 21, for series too short to cut). ``noise_gain`` (K,) = diag(R R^T) of the
    reconstructor replaces the per-mode noise estimates by one slope-noise level propagated to every
    mode (:func:`dancekit.ao.noise.propagated_noise_variance`). Other options go to
    :func:`fit_modal_variances`.
    """
    x = np.asarray(modes, dtype=float)
    if x.ndim != 2:
        raise InputError(f"modal time series must be (frames, modes), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"modal time series contains {int(np.sum(~np.isfinite(x)))} NaN/inf values")
    noll = list(range(2, x.shape[1] + 2)) if noll is None else [int(j) for j in noll]
    if len(noll) != x.shape[1]:
        raise InputError(f"{x.shape[1]} modal columns but {len(noll)} Noll indices given")
    if estimate_noise:
        noise = measurement_noise_variance(x, max_lag=max_lag, degree=noise_degree)
        if noise_gain is not None:
            noise = propagated_noise_variance(noise, noise_gain)
    else:
        if x.shape[0] < 3:
            raise InputError(f"{x.shape[0]} frames is too few to compute a variance")
        noise = np.zeros(x.shape[1])
    if cross_talk is None and fit_options.get("correct_remaining", True):
        cross_talk, higher_noll = naomi_cross_talk(noll, max_radial_order, diameter)
    elif cross_talk is None:
        higher_noll = ()
    higher_noll = () if higher_noll is None else higher_noll
    if mc_spread not in ("blocks", "orders"):
        raise ParameterError(f"mc_spread must be 'blocks' or 'orders', got {mc_spread!r}")
    deviations = None
    fitted = [int(j) for j in fit_options.get("fit_noll", range(4, 16))]
    if mc_spread == "blocks" and fit_options.get("n_monte_carlo", 1000) and set(fitted) <= set(noll):
        deviations = block_jackknife_deviations(x, [noll.index(j) for j in fitted], n_blocks, max_lag,
                                                noise_degree, estimate_noise, noise_gain)
    return fit_modal_variances(x.var(axis=0, ddof=1), noise, noll=noll, diameter=diameter,
                               cross_talk=cross_talk, higher_noll=higher_noll, mc_deviations=deviations,
                               **fit_options)
