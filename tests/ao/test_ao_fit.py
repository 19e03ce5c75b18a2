"""r0 / L0 fit (Morujão et al. 2023) on exact expectations and on exactly-drawn telemetry."""

import time

import numpy as np
import pytest

from dancekit.ao.covariance import zernike_covariance_matrix
from dancekit.ao.fit import estimate_turbulence, fit_modal_variances
from dancekit.ao.modal_model import naomi_cross_talk, remaining_error
from dancekit.ao.noise import measurement_noise_variance
from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor
from dancekit.ao.synthetic import simulate_telemetry
from dancekit.errors import InputError, ParameterError

R0, L0, D = 0.12, 25.0, 1.8
CONTROLLED = list(range(2, 16))


def _expected_variances(r0, outer_scale):
    c, higher = naomi_cross_talk(CONTROLLED, 8, D)
    cov = zernike_covariance_matrix(CONTROLLED + list(higher), r0, outer_scale, D)
    cc = remaining_error(c, cov[:14, 14:], cov[14:, 14:])
    return np.diag(cov)[:14] + cc, cc, c, higher


def test_remaining_error_formula_matches_monte_carlo():
    # var(b) of b = pinv(G_F) G a for a ~ N(0, Sigma) must equal Sigma_ii + sigma_cc,i (eq. 13, 15)
    expected, cc, _, _ = _expected_variances(R0, L0)
    noll = list(range(2, 46))
    cov = zernike_covariance_matrix(noll, R0, L0, D)
    a = np.random.default_rng(11).multivariate_normal(np.zeros(44), cov, size=200_000)
    g = interaction_matrix(noll)
    b = a @ g.T @ reconstructor(g[:, :14]).T
    assert np.allclose(b.var(axis=0), expected, rtol=0.015)
    assert np.abs(cc).max() > 0.03 * expected[2:].min()  # the correction is not negligible


def test_remaining_error_close_to_turlib_with_the_naomi_matrix():
    # notes/naomi.md sect. 1.5: Turlib with ESO's Gt_NAOMI matrix (not ours), r0 = 12 cm,
    # L0 = 25 m, M = 45, Noll 4..15 [rad^2]; our geometric 4x4 model must give the same aliasing
    turlib = [0.157, 0.029, 0.216, -0.094, -0.094, -0.095, -0.095, 0.103, 0.031, -0.001, 0.102,
              -0.094]
    _, cc, _, _ = _expected_variances(R0, L0)
    assert np.allclose(cc[2:], turlib, atol=0.012)


@pytest.mark.parametrize("outer_scale", [25.0, 60.0])
def test_fit_inverts_exact_expectations(outer_scale):
    var, _, c, higher = _expected_variances(R0, outer_scale)
    noise = np.linspace(0.05, 0.2, 14)
    fit = fit_modal_variances(var + noise, noise, noll=CONTROLLED, cross_talk=c, higher_noll=higher,
                              n_monte_carlo=0)
    assert fit.r0 == pytest.approx(R0, rel=2e-4)
    assert fit.outer_scale == pytest.approx(outer_scale, rel=0.01)
    assert fit.outer_scale_flag == "fitted" and fit.converged and fit.iterations >= 2
    fixed = fit_modal_variances(var + noise, noise, noll=CONTROLLED, cross_talk=c,
                                higher_noll=higher, outer_scale=outer_scale, n_monte_carlo=0)
    assert fixed.r0 == pytest.approx(R0, rel=1e-6) and fixed.outer_scale_flag == "fixed"


def test_kolmogorov_data_drive_l0_to_the_upper_bound():
    var, _, c, higher = _expected_variances(R0, np.inf)
    fit = fit_modal_variances(var, np.zeros(14), noll=CONTROLLED, cross_talk=c, higher_noll=higher,
                              n_monte_carlo=0)
    assert fit.outer_scale_flag == "upper_bound" and np.isnan(fit.outer_scale)
    assert fit.r0 == pytest.approx(R0, rel=2e-3)
    kolmo = fit_modal_variances(var, np.zeros(14), noll=CONTROLLED, cross_talk=c,
                                higher_noll=higher, outer_scale=np.inf, n_monte_carlo=0)
    assert kolmo.r0 == pytest.approx(R0, rel=1e-6)


@pytest.fixture(scope="module")
def drawn_fits():
    """20 seeds of 10 000-frame telemetry drawn exactly from the model (r0 = 12 cm, L0 = 25 m)."""
    rows = []
    for seed in range(20):
        tel = simulate_telemetry(R0, L0, n_frames=10_000, slope_noise=2.0, correlation_frames=3.0,
                                 seed=seed)
        fit = estimate_turbulence(tel.reconstructed, n_monte_carlo=300, seed=seed)
        raw = estimate_turbulence(tel.reconstructed, n_monte_carlo=0, correct_remaining=False)
        noise = measurement_noise_variance(tel.reconstructed) / tel.noise_variance
        rows.append((fit, raw, noise))
    return rows


def test_r0_recovered_from_drawn_telemetry(drawn_fits):
    r0 = np.array([f.r0 for f, _, _ in drawn_fits])
    assert r0.mean() == pytest.approx(R0, rel=0.01)
    assert np.all(np.abs(r0 / R0 - 1) < 0.04)
    assert all(f.converged and f.iterations >= 2 for f, _, _ in drawn_fits)


def test_noise_recovered_from_drawn_telemetry(drawn_fits):
    ratio = np.array([n for _, _, n in drawn_fits])  # (seeds, modes) estimate / truth
    assert np.allclose(ratio.mean(axis=0), 1.0, atol=0.05)
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert np.all(np.abs(ratio - 1) < 0.15)


def test_remaining_error_correction_removes_the_aliasing_bias(drawn_fits):
    corrected = np.mean([f.r0 for f, _, _ in drawn_fits]) / R0 - 1
    uncorrected = np.mean([r.r0 for _, r, _ in drawn_fits]) / R0 - 1
    assert uncorrected > 0.05  # aliased high orders inflate the variances -> r0 biased
    assert abs(corrected) < 0.01


def test_monte_carlo_uncertainty_matches_seed_to_seed_scatter(drawn_fits):
    # the draws follow the covariance of the variances measured by a 20-block jackknife of each
    # series: their spread is the real file-to-file scatter or, the jackknife being conservative
    # for a non-linear fit (Efron & Stein 1981), up to ~1.5 times it (20 seeds: +-16 % on the scatter)
    r0 = np.array([f.r0 for f, _, _ in drawn_fits])
    mc = np.mean([f.r0_err for f, _, _ in drawn_fits])
    assert 0.8 < mc / r0.std(ddof=1) < 1.9
    f = drawn_fits[0][0]
    assert f.mc_spread == "blocks" and f.r0_err_of_mean == pytest.approx(f.r0_err / np.sqrt(300))


def test_l0_monte_carlo_interval_brackets_the_truth(drawn_fits):
    fitted = [f for f, _, _ in drawn_fits if f.outer_scale_flag == "fitted"]
    assert len(fitted) >= 15
    for f in fitted:
        lo, hi = f.outer_scale_interval
        assert lo < f.outer_scale < hi and f.outer_scale_err > 0 and len(f.outer_scale_samples) == 300
        assert 0 <= f.outer_scale_bound_fraction <= 1
    inside = np.mean([lo <= L0 <= hi for lo, hi in (f.outer_scale_interval for f in fitted)])
    assert inside >= 0.5  # a 68 % interval


def test_per_mode_evidence_is_the_model_at_the_fit():
    tel = simulate_telemetry(R0, L0, n_frames=4000, slope_noise=2.0, seed=6)
    fit = estimate_turbulence(tel.reconstructed, outer_scale=L0, n_monte_carlo=0)
    c, higher = naomi_cross_talk(CONTROLLED, 8, D)
    cov = zernike_covariance_matrix(CONTROLLED + list(higher), fit.r0, L0, D)
    assert fit.noll == tuple(CONTROLLED)
    assert np.allclose(fit.mode_model, np.diag(cov)[:14], rtol=1e-9)
    assert np.allclose(fit.mode_remaining, remaining_error(c, cov[:14, 14:], cov[14:, 14:]), rtol=1e-9, atol=1e-12)
    assert np.allclose(fit.mode_variance, tel.reconstructed.var(axis=0, ddof=1))
    assert np.allclose(fit.mode_noise, measurement_noise_variance(tel.reconstructed))
    fitted = [CONTROLLED.index(j) for j in fit.fit_noll]
    assert np.allclose(fit.mode_model[fitted], fit.model_variance) and np.allclose(fit.mode_remaining[fitted], fit.remaining_error)


def test_fit_is_deterministic_for_a_seed():
    tel = simulate_telemetry(R0, L0, n_frames=2000, slope_noise=1.0, seed=4)
    a = estimate_turbulence(tel.reconstructed, n_monte_carlo=50, seed=9)
    b = estimate_turbulence(tel.reconstructed, n_monte_carlo=50, seed=9)
    assert a.r0 == b.r0 and a.r0_err == b.r0_err
    assert np.array_equal(a.r0_samples, b.r0_samples)


def test_fit_rejects_bad_input():
    modes = np.random.default_rng(0).standard_normal((1000, 14))
    bad = modes.copy()
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN"):
        estimate_turbulence(bad)
    with pytest.raises(InputError, match="too few for the noise autocorrelation"):
        estimate_turbulence(modes[:30])
    with pytest.raises(ParameterError, match="not among the reconstructed modes"):
        estimate_turbulence(modes[:, :10])
    with pytest.raises(ParameterError, match="outer scale L0 must be > 0"):
        estimate_turbulence(modes, outer_scale=-5.0)
    with pytest.raises(InputError, match="must both be"):
        fit_modal_variances(np.ones(14), np.ones(13), noll=CONTROLLED)
    with pytest.raises(ParameterError, match="r0 must be a finite positive"):
        simulate_telemetry(-0.1, L0, n_frames=100)


@pytest.mark.slow
def test_fit_with_1000_monte_carlo_draws_takes_under_a_second():
    tel = simulate_telemetry(R0, L0, n_frames=10_000, slope_noise=2.0, seed=1)
    estimate_turbulence(tel.reconstructed, n_monte_carlo=1000, seed=0)  # builds the cached tables
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        fit = estimate_turbulence(tel.reconstructed, n_monte_carlo=1000, seed=0)
        best = min(best, time.perf_counter() - t0)
    assert fit.n_monte_carlo == 1000 and np.isfinite(fit.r0_err)
    assert best < 1.0


@pytest.mark.slow
def test_r0_recovered_to_half_a_percent_over_many_seeds():
    r0 = []
    for seed in range(100, 150):
        tel = simulate_telemetry(0.15, 18.9, n_frames=10_000, slope_noise=3.0, seed=seed,
                                 correlation_frames=4.0)
        r0.append(estimate_turbulence(tel.reconstructed, n_monte_carlo=0).r0)
    assert np.mean(r0) == pytest.approx(0.15, rel=0.005)
