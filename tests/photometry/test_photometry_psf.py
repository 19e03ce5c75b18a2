"""Forced PSF photometry, the ePSF and the dual-image catalogue on stars rendered with known PSFs
at known positions and fluxes: fluxes recovered within their errors, errors that match the
scatter, blends separated, the background fitted, flags set where they must be."""

import numpy as np
import pytest
from photutils.psf import CircularGaussianPRF, MoffatPSF

from dancekit.errors import InputError
from dancekit.photometry.dual_image import FLAG_FIT_FAILED, dual_image_catalogue
from dancekit.photometry.epsf import build_epsf, psf_from_array
from dancekit.photometry.extraction import FLAG_BLENDED, FLAG_EDGE, FLAG_SATURATED
from dancekit.photometry.psf_photometry import forced_fluxes
from dancekit.photometry.truth import compare_to_truth, match_brightest_first

FWHM = 5.0  # pixels, the blurred (average-stack-like) image
BETA = 3.0
ALPHA = FWHM / (2 * np.sqrt(2 ** (1 / BETA) - 1))
SKY = 100.0  # e- per pixel


def render(shape, x, y, flux, psf="moffat", fwhm=FWHM, half=None):
    """Noise-free image of stars: a Moffat (β = 3) sampled at pixel centres, or a pixel-integrated
    circular Gaussian (photutils' analytic models, not the ePSF code under test). With ``half``,
    only out to ``half`` pixels from each star along x and y (the support of a PSF of that half
    size); by default, the whole star."""
    image = np.zeros(shape)
    reach = int(6 * fwhm) if half is None else half + 1
    for xi, yi, fi in zip(x, y, flux):
        cx, cy = int(round(xi)), int(round(yi))
        rows = slice(max(cy - reach, 0), min(cy + reach + 1, shape[0]))
        cols = slice(max(cx - reach, 0), min(cx + reach + 1, shape[1]))
        yy, xx = np.mgrid[rows, cols]
        if psf == "moffat":
            star = MoffatPSF().evaluate(xx, yy, fi, xi, yi, ALPHA, BETA)
        else:
            star = CircularGaussianPRF().evaluate(xx, yy, fi, xi, yi, fwhm)
        if half is not None:
            star[(np.abs(xx - xi) > half) | (np.abs(yy - yi) > half)] = 0.0
        image[rows, cols] += star
    return image


def moffat_psf_array(half=12, oversampling=1):
    """The ePSF of ``render`` (which samples the Moffat at pixel centres), ``oversampling`` samples
    per pixel; at 4 its spline interpolation is exact to ~1e-4 of the peak."""
    g = np.arange(-half * oversampling, half * oversampling + 1) / oversampling
    return MoffatPSF().evaluate(g[None, :], g[:, None], 1.0, 0.0, 0.0, ALPHA, BETA)


def exact_psf():
    """(ImagePSF, fraction of a star's light it holds) for the forced-photometry tests."""
    samples = moffat_psf_array(oversampling=4)
    return psf_from_array(samples, oversampling=4), samples.sum() / 16


def grid_stars(n_side, spacing, offset, rng, flux_range=(3e3, 3e5)):
    """Stars on a jittered grid (no two closer than ``spacing`` − 1 px) with log-uniform fluxes."""
    gx, gy = np.meshgrid(np.arange(n_side), np.arange(n_side))
    x = offset + spacing * gx.ravel() + rng.uniform(-0.5, 0.5, n_side**2)
    y = offset + spacing * gy.ravel() + rng.uniform(-0.5, 0.5, n_side**2)
    flux = 10 ** rng.uniform(*np.log10(flux_range), n_side**2)
    return x, y, flux


def noisy(expected, rng):
    return rng.poisson(expected).astype(float)


def test_forced_fluxes_are_unbiased_with_errors_that_match_the_scatter():
    rng = np.random.default_rng(1)
    pulls = []
    for _ in range(3):
        x, y, flux = grid_stars(6, 22, 12, rng)
        model = render((140, 140), x, y, flux, half=12)  # the stamp of the PSF: the model is exact
        image = noisy(model + SKY, rng) - SKY
        psf, inside = exact_psf()  # the ePSF stamp holds this fraction of the Moffat's light
        fit = forced_fluxes(image, SKY + model, psf, x, y, background_spacing=None)
        pulls.append((fit.flux - inside * flux) / fit.flux_err)
        assert fit.fitted.all() and (fit.group_size == 1).all()
    pulls = np.concatenate(pulls)
    assert abs(pulls.mean()) < 4 / np.sqrt(pulls.size)
    assert 0.8 < pulls.std() < 1.25


def test_blended_pair_is_separated_and_its_errors_carry_the_covariance():
    rng = np.random.default_rng(2)
    x = np.array([30.2, 32.9, 90.4, 90.1])  # a pair 2.7 px apart (0.54 FWHM), and the same stars alone
    y = np.array([40.6, 41.4, 30.3, 80.7])
    flux = np.array([6e4, 3e4, 6e4, 3e4])
    psf, inside = exact_psf()
    model = render((120, 120), x, y, flux, half=12)
    estimates = []
    for _ in range(40):
        image = noisy(model + SKY, rng) - SKY
        estimates.append(forced_fluxes(image, SKY + model, psf, x, y, background_spacing=None))
    fitted = np.array([e.flux for e in estimates])
    errors = estimates[0].flux_err
    assert estimates[0].group_size.tolist() == [2, 2, 1, 1]
    np.testing.assert_allclose(fitted.mean(axis=0), inside * flux, rtol=4 * (errors / flux).max())
    np.testing.assert_allclose(fitted.std(axis=0), errors, rtol=0.35)
    assert (errors[:2] > 1.5 * errors[2:]).all()  # the blend's fluxes trade light: larger errors
    assert np.corrcoef(fitted[:, 0], fitted[:, 1])[0, 1] < -0.5


def test_same_fluxes_as_photutils_psf_photometry_at_fixed_positions():
    from astropy.table import Table
    from photutils.psf import PSFPhotometry

    rng = np.random.default_rng(3)
    x, y, flux = grid_stars(3, 30, 20, rng)
    model = render((100, 100), x, y, flux, half=12)
    image = noisy(model + SKY, rng) - SKY
    variance = SKY + model
    psf, _ = exact_psf()
    ours = forced_fluxes(image, variance, psf, x, y, background_spacing=None)
    psf.x_0.fixed = psf.y_0.fixed = True
    photometry = PSFPhotometry(psf, fit_shape=25)
    theirs = photometry(image, error=np.sqrt(variance), init_params=Table({"x": x, "y": y, "flux": flux}))
    np.testing.assert_allclose(ours.flux, theirs["flux_fit"], rtol=1e-4)
    np.testing.assert_allclose(ours.flux_err, theirs["flux_err"], rtol=1e-3)


def test_background_plane_is_fitted_with_the_stars():
    rng = np.random.default_rng(4)
    x, y, flux = grid_stars(5, 24, 14, rng)
    yy, xx = np.mgrid[0:128, 0:128]
    plane = 100.0 + 0.4 * xx - 0.25 * yy  # a bilinear background is exact for a plane
    model = render((128, 128), x, y, flux, half=12)
    image = noisy(model + plane, rng)
    psf, inside = exact_psf()
    fit = forced_fluxes(image, plane + model, psf, x, y, background_spacing=32)
    pulls = (fit.flux - inside * flux) / fit.flux_err
    assert abs(pulls.mean()) < 4 / np.sqrt(pulls.size) and pulls.std() < 1.5
    error = fit.background - plane  # e-, against a noise of 10-18 e- per pixel
    assert abs(error.mean()) < 0.2 and error.std() < 1.0


def test_epsf_is_the_rendered_psf_and_the_builder_measures_a_position_shift():
    rng = np.random.default_rng(5)
    x, y, flux = grid_stars(6, 26, 15, rng, flux_range=(5e4, 5e5))
    model = render((170, 170), x, y, flux)
    image = noisy(model + SKY, rng) - SKY
    built = build_epsf(image, x + 0.3, y - 0.2, box=25)
    assert built.n_stars >= 30
    assert built.shift == pytest.approx((-0.3, 0.2), abs=0.03)
    assert built.fwhm == pytest.approx(FWHM, rel=0.06)
    # its shape within 2 FWHM (the wings beyond are lowered by the cutouts' local sky)
    g = np.arange(-12, 13)
    core = np.hypot(g[None, :], g[:, None]) <= 2 * FWHM
    truth = moffat_psf_array()
    scale = np.sum(built.psf.data[core] * truth[core]) / np.sum(truth[core] ** 2)
    assert np.abs(built.psf.data - scale * truth)[core].max() < 0.02 * scale * truth.max()


def test_moffat_wings_replace_noisy_epsf_wings_and_keep_the_core():
    from dancekit.photometry.epsf import EffectivePSF, psf_fwhm, with_moffat_wings

    rng = np.random.default_rng(9)
    truth = moffat_psf_array(half=15)
    truth /= truth.sum()
    g = np.arange(-15, 16)
    radius = np.hypot(g[None, :], g[:, None])
    ragged = truth.copy()
    wings = radius > 1.6 * FWHM  # beyond the fit (1.5 FWHM measured, ~1.55 FWHM)
    ragged[wings] = truth[wings] * rng.uniform(-0.5, 1.0, wings.sum())  # as an unweighted stack of faint stars
    psf = psf_from_array(ragged)
    fixed = with_moffat_wings(EffectivePSF(psf, 10, (0.0, 0.0), psf_fwhm(psf)))
    data = fixed.psf.data / fixed.psf.data.sum()
    assert fixed.n_stars == 10 and fixed.fwhm == psf_fwhm(psf)
    far = radius > 2.2 * FWHM  # beyond the blend
    np.testing.assert_allclose(data[far], truth[far], rtol=0.1)  # the Moffat the ragged core was fitted with
    core = radius < FWHM
    np.testing.assert_allclose(data[core], ragged[core] / ragged.sum(), rtol=0.05)  # the ePSF's own core


def test_a_psf_array_must_be_a_finite_positive_image():
    with pytest.raises(InputError, match="2-D"):
        psf_from_array(np.ones(9))
    with pytest.raises(InputError, match="NaN"):
        psf_from_array(np.full((9, 9), np.nan))
    with pytest.raises(InputError, match="positive total"):
        psf_from_array(np.zeros((9, 9)))
    with pytest.raises(InputError, match="too small"):
        psf_from_array(np.ones((3, 3)))
    psf = psf_from_array(np.ones((8, 8)) * 7, oversampling=2)
    assert psf.data.sum() == pytest.approx(4.0)


def _dual_field(seed=6, shape=(128, 128)):
    """A sharp image (Gaussian FWHM 2.5 px, as sharp as the bundled U-Net's) and a blurred one
    (Moffat FWHM 5 px) of one field: 25 stars on a grid, a pair 4.5 px apart, a star on the edge
    and a saturated one."""
    rng = np.random.default_rng(seed)
    x, y, flux = grid_stars(5, 24, 14, rng)
    x = np.concatenate([x, [60.0, 64.5, 1.0, 100.0]])
    y = np.concatenate([y, [118.0, 118.5, 64.0, 118.0]])
    flux = np.concatenate([flux, [5e4, 4e4, 5e4, 2e6]])
    sharp = render(shape, x, y, flux, psf="gaussian", fwhm=2.5) + rng.normal(0, 3.0, shape)
    blurred = noisy(render(shape, x, y, flux) + SKY, rng)
    return sharp, blurred, x, y, flux


def test_dual_image_catalogue_recovers_fluxes_and_flags_blends_edges_and_saturation():
    sharp, blurred, x, y, flux = _dual_field()
    saturation = 3e4
    catalogue = dual_image_catalogue(sharp, np.minimum(blurred, saturation), gain=1.0, saturation=saturation)
    assert catalogue.psf.n_stars >= 10 and catalogue.psf.fwhm == pytest.approx(FWHM, rel=0.1)
    mag = -2.5 * np.log10(np.where(catalogue.flux > 0, catalogue.flux, np.nan))
    comparison = compare_to_truth(catalogue.x, catalogue.y, mag, catalogue.flags, x, y, -2.5 * np.log10(flux),
                                  sharp.shape)
    assert comparison.n_matched == len(x)  # every star found, the pair deblended on the sharp image
    true_index = comparison.true_index
    flags_of = {int(j): int(f) for j, f in zip(true_index, catalogue.flags)}
    assert flags_of[25] & FLAG_BLENDED and flags_of[26] & FLAG_BLENDED
    assert flags_of[27] & FLAG_EDGE
    assert flags_of[28] & FLAG_SATURATED
    assert not any(f & FLAG_FIT_FAILED for f in flags_of.values())
    clean = catalogue.flags == 0
    residual = comparison.mag_residual[clean]
    assert clean.sum() >= 20
    # residuals about their median (the light outside the ePSF stamp) as the errors say: ragged
    # ePSF wings gave 0.2-0.3 mag errors next to bright stars (pulls up to 22)
    pulls = (residual - np.median(residual)) / (1.0857 * catalogue.flux_err[clean] / catalogue.flux[clean])
    assert np.std(pulls) < 1.5 and np.abs(pulls).max() < 4.0
    positions = np.hypot(catalogue.x - x[true_index], catalogue.y - y[true_index])
    assert np.median(positions[clean]) < 0.05


def test_dual_image_catalogue_refuses_what_it_cannot_use():
    sharp, blurred, *_ = _dual_field()
    with pytest.raises(InputError, match="one pixel grid"):
        dual_image_catalogue(sharp, blurred[:, :100])
    rng = np.random.default_rng(7)
    with pytest.raises(InputError, match="no star found"):
        dual_image_catalogue(rng.normal(0, 1, (64, 64)), rng.normal(0, 1, (64, 64)))
    few = render((64, 64), [20.0, 44.0], [30.0, 30.0], [1e5, 1e5])
    with pytest.raises(InputError, match="cannot build a PSF"):
        dual_image_catalogue(few + rng.normal(0, 1, few.shape), noisy(few + SKY, rng))


def test_true_stars_take_their_detections_brightest_first():
    # a faint true star lies nearer the bright star's detection than the bright star itself
    x, y = np.array([10.6]), np.array([10.0])
    x_true, y_true, mag_true = np.array([10.0, 10.5]), np.array([10.0, 10.2]), np.array([14.0, 20.0])
    i, j = match_brightest_first(x, y, x_true, y_true, mag_true, radius=2.0)
    assert i.tolist() == [0] and j.tolist() == [0]


def _cluster_field(seed=11, shape=(256, 256), n_core=900):
    """A cluster core of ``n_core`` stars (Gaussian, σ 30 px) in the middle of the field and an
    isolated star near each corner and each edge's middle, all seen sharp and blurred."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(128, 30, n_core), [14, 242, 14, 242, 128, 128, 14, 242]])
    y = np.concatenate([rng.normal(128, 30, n_core), [14, 14, 242, 242, 14, 242, 128, 128]])
    flux = np.concatenate([10 ** rng.uniform(3.0, 4.5, n_core), np.full(8, 2e4)])
    sharp = render(shape, x, y, flux, psf="gaussian", fwhm=2.5) + rng.normal(0, 3.0, shape)
    blurred = noisy(render(shape, x, y, flux) + SKY, rng)
    return sharp, blurred, x, y, flux


def test_isolated_stars_keep_their_flux_around_a_crowded_core():
    # sep's bicubic rms mesh overshot to ~0 towards the corners of such a field: the corner pixels
    # got 10^4 times their weight, bent the fitted background and made faint isolated stars up
    # to 9x too bright on a held-out King cluster
    sharp, blurred, x, y, flux = _cluster_field()
    catalogue = dual_image_catalogue(sharp, blurred, gain=1.0)
    comparison = compare_to_truth(catalogue.x, catalogue.y, -2.5 * np.log10(np.where(catalogue.flux > 0, catalogue.flux, np.nan)),
                                  catalogue.flags, x, y, -2.5 * np.log10(flux), sharp.shape)
    isolated = {int(j): k for k, j in enumerate(comparison.true_index) if j >= len(x) - 8}
    assert len(isolated) == 8
    ratio = np.array([catalogue.flux[k] / flux[j] for j, k in isolated.items()])
    error = np.array([catalogue.flux_err[k] / flux[j] for j, k in isolated.items()])
    inside = np.median(ratio)  # the ePSF's normalisation
    assert np.all(np.abs(ratio - inside) < 4 * error + 0.01)


def test_flux_errors_include_the_confusion_of_stars_too_faint_to_be_found():
    # 49 bright stars among 8000 below the detection threshold: their light is a noise that the
    # per-pixel variance does not hold; the catalogue's errors must, or its pulls are several sigma
    rng = np.random.default_rng(12)
    x, y, flux = grid_stars(7, 17, 13, rng, flux_range=(1e3, 5e3))
    fx, fy = rng.uniform(0, 127, 8000), rng.uniform(0, 127, 8000)
    faint = np.full(8000, 60.0)
    sharp = render((128, 128), x, y, flux, psf="gaussian", fwhm=2.5) + rng.normal(0, 3.0, (128, 128)) \
        + render((128, 128), fx, fy, faint, psf="gaussian", fwhm=2.5)
    blurred = noisy(render((128, 128), np.concatenate([x, fx]), np.concatenate([y, fy]),
                           np.concatenate([flux, faint])) + SKY, rng)
    catalogue = dual_image_catalogue(sharp, blurred, gain=1.0, psf=exact_psf()[0])
    comparison = compare_to_truth(catalogue.x, catalogue.y, -2.5 * np.log10(np.where(catalogue.flux > 0, catalogue.flux, np.nan)),
                                  catalogue.flags, x, y, -2.5 * np.log10(flux), sharp.shape)
    matched = comparison.true_index >= 0
    assert matched.sum() >= 40 and len(catalogue) - matched.sum() <= 3  # the faint ones are not found
    true_flux = flux[comparison.true_index[matched]]
    fitted, errors = catalogue.flux[matched], catalogue.flux_err[matched]
    statistical = np.sqrt(errors**2 - catalogue.confusion_error**2)
    residual = fitted - np.median(fitted / true_flux) * true_flux
    robust = lambda pulls: 1.4826 * np.median(np.abs(pulls - np.median(pulls)))
    assert catalogue.confusion_error > np.median(statistical)
    # seeds 12-18: 0.95-1.53 with the confusion error, 2.3-3.0 without
    assert 0.6 < robust(residual / errors) < 1.7 and robust(residual / statistical) > 2.0


def test_no_confusion_error_where_the_noise_model_holds():
    from dancekit.photometry.dual_image import confusion_error

    rng = np.random.default_rng(13)
    variance = np.full((128, 128), 4.0)
    psf, _ = exact_psf()
    noise_only = confusion_error(rng.normal(0.0, 2.0, (128, 128)), variance, psf)
    assert noise_only < 0.3 * 2.0 / np.sqrt(np.sum(moffat_psf_array() ** 2))  # under 0.3 of a PSF flux's own error
