"""Zero-point fit on magnitudes drawn from the model itself (no images): known ZP, colour
term and extinction are recovered within the quoted errors; outliers are clipped."""

import numpy as np
import pytest

from dancekit.errors import InputError, ParameterError
from dancekit.photometry import fit_zeropoint


def _stars(rng, n, zp=25.0, c=0.0, k=0.0, airmass=1.0, sigma=0.02):
    m_ref = rng.uniform(14, 19, n)
    colour = rng.uniform(-0.2, 1.8, n)
    airmass = np.broadcast_to(airmass, (n,))
    m_inst = m_ref - (zp - k * airmass + c * colour) + rng.normal(0, sigma, n)
    return m_ref, m_inst, np.full(n, sigma), colour, airmass


def test_weighted_mean_matches_analytic_error():
    # equal errors, no clipping: ZP is the mean and its error sigma/sqrt(N)
    rng = np.random.default_rng(1)
    m_ref, m_inst, err, _, _ = _stars(rng, 400, sigma=0.03)
    result = fit_zeropoint(m_ref, m_inst, m_inst_err=err, error_floor=0.0)
    assert result.zp == pytest.approx(np.mean(m_ref - m_inst), abs=2e-3)
    assert result.zp_err == pytest.approx(0.03 / np.sqrt(result.n_used), rel=0.1)
    assert abs(result.zp - 25.0) < 3 * result.zp_err
    assert result.zp_scatter == pytest.approx(0.03, rel=0.15)


def test_outliers_are_clipped_and_do_not_bias():
    rng = np.random.default_rng(2)
    m_ref, m_inst, err, _, _ = _stars(rng, 200)
    m_inst[:20] -= 0.5  # 10 % contaminated stars (blends, variables)
    result = fit_zeropoint(m_ref, m_inst, m_inst_err=err)
    assert not result.used[:20].any()
    assert abs(result.zp - 25.0) < 3 * result.zp_err
    assert result.n_available == 200 and result.n_used <= 180


def test_chi2_inflation_when_errors_underestimated():
    rng = np.random.default_rng(3)
    m_ref, m_inst, _, _, _ = _stars(rng, 300, sigma=0.05)
    # declared errors 0.02 while the scatter is 0.05: chi2_nu ~ 6, error inflated sqrt(6)
    result = fit_zeropoint(m_ref, m_inst, m_inst_err=np.full(300, 0.02), error_floor=0.0)
    assert result.chi2_nu == pytest.approx(6.25, rel=0.25)
    assert result.zp_err == pytest.approx(0.05 / np.sqrt(result.n_used), rel=0.15)


def test_weight_cap_limits_a_single_precise_star():
    # one star 10x more precise than the rest (100x the weight): uncapped it carries ~2/3 of
    # the weight; capped at the 3rd-best weight it counts like any other star.
    rng = np.random.default_rng(4)
    m_ref, m_inst, err, _, _ = _stars(rng, 50, sigma=0.03)
    err = err.copy()
    err[0] = 0.003
    others = np.mean((m_ref - m_inst)[1:])
    m_inst[0] = m_ref[0] - others - 0.004  # 1.3 sigma of itself from the rest: never clipped
    offset = m_ref - m_inst
    capped = fit_zeropoint(m_ref, m_inst, m_inst_err=err, error_floor=0.0, weight_cap_rank=3)
    uncapped = fit_zeropoint(m_ref, m_inst, m_inst_err=err, error_floor=0.0, weight_cap_rank=1)
    assert capped.used.all() and uncapped.used.all()
    w = 1 / err**2
    assert uncapped.zp == pytest.approx(np.sum(w * offset) / np.sum(w), abs=1e-10)
    w_cap = np.minimum(w, 1 / 0.03**2)
    assert capped.zp == pytest.approx(np.sum(w_cap * offset) / np.sum(w_cap), abs=1e-10)
    # sandwich error of the capped-weight mean, inflated by chi2_nu if above 1
    sandwich = np.sqrt(np.sum(w_cap**2 * err**2)) / np.sum(w_cap)
    assert capped.zp_err == pytest.approx(sandwich * np.sqrt(max(1.0, capped.chi2_nu)), rel=1e-6)
    assert uncapped.chi2_nu < 1 and uncapped.zp_err == pytest.approx(1 / np.sqrt(np.sum(w)), rel=1e-6)
    # the single star pulls the uncapped ZP 2/3 of the way towards itself, the capped one 1/50
    assert uncapped.zp - capped.zp == pytest.approx(0.004 * (100 / 149 - 1 / 50), abs=3e-4)


def test_colour_term_fitted_and_fixed():
    rng = np.random.default_rng(5)
    m_ref, m_inst, err, colour, _ = _stars(rng, 300, c=0.12)
    fitted = fit_zeropoint(m_ref, m_inst, m_inst_err=err, colour=colour)
    assert fitted.colour_term_fitted
    assert abs(fitted.colour_term - 0.12) < 3 * fitted.colour_term_err
    assert abs(fitted.zp - 25.0) < 3 * fitted.zp_err
    fixed = fit_zeropoint(m_ref, m_inst, m_inst_err=err, colour=colour, colour_term=0.12)
    assert not fixed.colour_term_fitted and fixed.colour_term == 0.12 and fixed.colour_term_err == 0
    assert abs(fixed.zp - 25.0) < 3 * fixed.zp_err and fixed.zp_err < fitted.zp_err


def test_extinction_fitted_across_airmasses():
    rng = np.random.default_rng(6)
    parts = [_stars(rng, 60, c=0.05, k=0.2, airmass=x) for x in (1.05, 1.4, 1.9, 2.3)]
    m_ref, m_inst, err, colour, airmass = (np.concatenate(p) for p in zip(*parts))
    result = fit_zeropoint(m_ref, m_inst, m_inst_err=err, colour=colour, airmass=airmass, extinction=None)
    assert result.extinction_fitted
    assert abs(result.extinction - 0.2) < 3 * result.extinction_err
    assert result.extinction_err < 0.01
    assert abs(result.zp - 25.0) < 3 * result.zp_err
    value, error = result.zeropoint_at(1.5)
    assert abs(value - (25.0 - 0.2 * 1.5)) < 3 * error and error < result.zp_err


def test_fixed_extinction_is_applied():
    rng = np.random.default_rng(7)
    m_ref, m_inst, err, _, _ = _stars(rng, 100, k=0.15, airmass=1.8)
    result = fit_zeropoint(m_ref, m_inst, m_inst_err=err, airmass=1.8, extinction=0.15)
    assert abs(result.zp - 25.0) < 3 * result.zp_err


def test_too_few_stars_and_bad_parameters():
    rng = np.random.default_rng(8)
    m_ref, m_inst, err, _, _ = _stars(rng, 4)
    with pytest.raises(InputError, match="only 4 of 4 stars.*at least 5"):
        fit_zeropoint(m_ref, m_inst, m_inst_err=err)
    m_ref, m_inst, err, _, _ = _stars(rng, 10)
    m_inst[:7] = np.nan
    with pytest.raises(InputError, match="only 3 of 10 stars have finite"):
        fit_zeropoint(m_ref, m_inst, m_inst_err=err)
    with pytest.raises(ParameterError, match="airmass span"):
        fit_zeropoint(m_ref, m_inst, airmass=1.2, extinction=None)
    with pytest.raises(ParameterError, match="airmass must be >= 1"):
        fit_zeropoint(m_ref, m_inst, airmass=0.5)
    with pytest.raises(ParameterError, match="m_inst must be a 1-D array of 10"):
        fit_zeropoint(m_ref, m_inst[:5])
