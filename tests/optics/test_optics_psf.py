"""Pupil, PSFs against the obstructed Airy pattern, pixel integration, star rendering."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import make_layer_screen
from dancekit.optics.imaging import pixel_to_field_angle, render_frame
from dancekit.optics.phase_screens import fft_phase_screen
from dancekit.optics.propagation import atmospheric_pupil_fields
from dancekit.optics.psf import (
    detector_stamps,
    fine_psf,
    minimum_oversampling,
    pupil_sampling,
    render_stars,
    time_integrated_psf,
)
from dancekit.optics.pupil import annular_pupil, tukey_incident_wave
from dancekit.optics.turbulence import (
    airy_obstructed,
    airy_obstructed_encircled_energy,
    r0_at_wavelength,
    seeing_to_r0,
    von_karman_fwhm,
)

ARCSEC = math.pi / 648000
LAM, D, EPS, PIXEL = 650e-9, 1.04, 0.30, 0.235 * ARCSEC  # C2PU (Bialek et al. 2024 Sect. 3)


def test_c2pu_needs_oversampling_4_and_the_grid_spans_2d():
    ovs = minimum_oversampling(D, LAM, PIXEL)
    assert ovs == 4  # lambda / p = 0.57 m: 4 x that is the first multiple >= 2 D = 2.08 m
    assert 128 * pupil_sampling(LAM, PIXEL, ovs, 128) >= 2 * D


def test_annular_pupil_area_and_tukey_window():
    dx = 0.01
    pupil = annular_pupil(256, dx, D, EPS)
    assert float(pupil.sum()) * dx**2 == pytest.approx(math.pi * D**2 * (1 - EPS**2) / 4,
                                                       rel=1e-3)
    assert pupil[128, 128] == 0 and pupil[128, 128 + 30] == 1  # obstruction, then glass
    wave = tukey_incident_wave(256, dx, D)
    row = wave[128]
    assert row[128 + 77] == 1.0  # r = 0.77 m < 0.75 D = 0.78 m: flat
    assert float(row[128 + 91]) == pytest.approx(0.5 * (1 + math.cos(math.pi * (0.91 - 0.78)
                                                                       / 0.26)), abs=1e-6)
    assert row[128 + 105] == 0.0  # beyond D


def test_diffraction_psf_matches_the_obstructed_airy_peak_and_encircled_energy():
    n, ovs = 512, 8
    dx = pupil_sampling(LAM, PIXEL, ovs, n)
    dtheta = PIXEL / ovs  # = lambda / (n dx)
    assert LAM / (n * dx) == pytest.approx(dtheta)
    psf = fine_psf(torch.ones(1, n, n, dtype=torch.complex64), annular_pupil(n, dx, D, EPS))[0]
    assert float(psf.sum()) == pytest.approx(1.0, abs=1e-5)
    assert int(psf.argmax()) == (n // 2) * n + n // 2
    peak_theory = airy_obstructed(0.0, D, EPS, LAM) * dtheta**2
    assert float(psf.max()) == pytest.approx(peak_theory, rel=0.02)
    y, x = np.mgrid[:n, :n] - n // 2
    r = np.hypot(x, y) * dtheta
    for radius in (1.0, 2.0, 4.0, 8.0):  # in lambda / D
        theta = radius * LAM / D
        measured = psf.double().numpy()[r <= theta].sum()
        theory = airy_obstructed_encircled_energy(theta, D, EPS, LAM)
        assert measured == pytest.approx(theory, rel=0.02), radius


def gaussian_pixel_integral(size, x0, y0, sigma):
    """Exact integral of a unit 2-D Gaussian over pixels [i - 0.5, i + 0.5) of a size^2 grid."""
    edges = np.arange(size + 1) - 0.5
    cdf = lambda e, c: 0.5 * (1 + special.erf((e - c) / (sigma * math.sqrt(2))))
    px = np.diff(cdf(edges, x0))
    py = np.diff(cdf(edges, y0))
    return py[:, None] * px[None, :]


def test_stamps_are_the_exact_pixel_integral_at_sub_pixel_positions():
    n, ovs, sigma = 128, 4, 1.3  # sigma in detector pixels
    c = (np.arange(n) - n // 2) / ovs
    g = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * sigma**2))
    fine = torch.tensor(g / g.sum(), dtype=torch.float32)[None]
    offsets = torch.tensor([[0.0, 0.0], [0.37, -0.21], [-0.5, 0.49]])
    stamps = detector_stamps(fine, offsets, ovs)
    s = n // ovs
    for stamp, (dx, dy) in zip(stamps, offsets.tolist()):
        exact = gaussian_pixel_integral(s, s // 2 + dx, s // 2 + dy, sigma)
        np.testing.assert_allclose(stamp.numpy(), exact, atol=2e-6)


def test_rendered_turbulent_stars_conserve_flux_and_land_where_asked():
    n, ovs = 128, 4
    dx = pupil_sampling(LAM, PIXEL, ovs, n)
    pupil = annular_pupil(n, dx, D, EPS)
    gen = torch.Generator().manual_seed(7)
    r0 = r0_at_wavelength(seeing_to_r0(1.0 * ARCSEC, 500e-9), LAM)
    phases = torch.stack([fft_phase_screen((n, n), dx, r0, 25.0, generator=gen)
                          for _ in range(32)]).reshape(4, 8, n, n)
    psfs = time_integrated_psf(torch.exp(1j * phases), pupil)  # 4 stars, 8 sub-steps each
    positions = torch.tensor([[40.31, 50.77], [90.5, 30.02], [150.93, 140.45], [60.0, 160.6]])
    fluxes = torch.tensor([1000.0, 250.0, 4000.0, 10.0])
    image = render_stars((200, 220), positions, fluxes, psfs, ovs, chunk_size=3)
    # the same stars rendered at integer positions give each star's centroid offset
    centred = render_stars((200, 220), positions.round(), fluxes, psfs, ovs)
    for (x, y), flux, xr, yr in zip(positions.tolist(), fluxes.tolist(),
                                    *positions.round().T.tolist()):
        box = (slice(int(yr) - 20, int(yr) + 21), slice(int(xr) - 20, int(xr) + 21))
        yy, xx = torch.meshgrid(torch.arange(200.0), torch.arange(220.0), indexing="ij")
        for img, cx_expect, cy_expect in ((image, x, y), (centred, xr, yr)):
            part = img[box].double()
            assert float(part.sum()) == pytest.approx(flux, rel=5e-3)
        shift_x = float((image[box] * xx[box]).sum() - (centred[box] * xx[box]).sum()) / flux
        shift_y = float((image[box] * yy[box]).sum() - (centred[box] * yy[box]).sum()) / flux
        assert shift_x == pytest.approx(x - xr, abs=0.02)
        assert shift_y == pytest.approx(y - yr, abs=0.02)


def test_frame_with_substeps_is_the_mean_of_its_instants():
    n, ovs = 64, 4
    pixel = 4 * LAM / (n * 0.02)  # dx = 0.02 m
    pupil = annular_pupil(n, 0.02, 0.5, 0.2)
    positions = torch.tensor([[20.2, 21.7], [40.6, 35.1]])
    angles = pixel_to_field_angle(positions, (64, 64), pixel)
    gen = torch.Generator().manual_seed(8)
    layers = [make_layer_screen(n, 0.02, h, v, 1.0, angles, 0.1, 20.0, generator=gen)
              for h, v in ((0.0, (5.0, 0.0)), (5000.0, (-3.0, 7.0)))]
    kwargs = dict(wavelength=LAM, oversampling=ovs, incident=tukey_incident_wave(n, 0.02, 0.5))
    frame = render_frame(layers, pupil, positions, [1.0, 2.0], angles, (64, 64), t_start=0.2,
                         exposure=0.4, n_substeps=4, max_windows=3, **kwargs)
    instants = [render_frame(layers, pupil, positions, [1.0, 2.0], angles, (64, 64),
                             t_start=t, exposure=0.0, **kwargs) for t in (0.25, 0.35, 0.45, 0.55)]
    torch.testing.assert_close(frame, torch.stack(instants).mean(dim=0), atol=1e-6, rtol=1e-4)
    assert not torch.allclose(instants[0], instants[3], atol=1e-4)  # the wind moved the screens
    truth = render_frame([], pupil, positions, [1.0, 2.0], angles, (64, 64), **kwargs)
    diffraction = fine_psf(torch.ones(1, n, n, dtype=torch.complex64), pupil)[0]
    torch.testing.assert_close(truth, render_stars((64, 64), positions, [1.0, 2.0], diffraction,
                                                   ovs), atol=1e-6, rtol=0)


def long_exposure_fwhm(psf, dtheta):
    """FWHM (rad) from the azimuthal profile of ``psf`` around its peak (half-pixel bins)."""
    n = psf.shape[-1]
    psf = psf.double()
    smooth = torch.nn.functional.avg_pool2d(psf[None, None], 5, 1, 2)[0, 0]
    cy, cx = divmod(int(smooth.argmax()), n)
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64),
                            torch.arange(n, dtype=torch.float64), indexing="ij")
    core = psf * (torch.hypot(xx - cx, yy - cy) < 3)
    cx, cy = (core * xx).sum() / core.sum(), (core * yy).sum() / core.sum()
    r = torch.hypot(xx - cx, yy - cy)
    peak = psf[r < 1.0].mean()
    edges = torch.arange(0, n / 4, 0.5, dtype=torch.float64)
    profile = torch.stack([psf[(r >= a) & (r < a + 0.5)].mean() for a in edges])
    i = int(torch.nonzero(profile < peak / 2)[0])
    frac = (profile[i - 1] - peak / 2) / (profile[i - 1] - profile[i])
    return 2 * float(edges[i - 1] + 0.25 + 0.5 * frac) * dtheta


@pytest.mark.slow
@pytest.mark.parametrize("seeing_arcsec, seed", [(1.5, 11), (2.0, 12)])
def test_long_exposure_fwhm_matches_tokovinin(seeing_arcsec, seed):
    # 1024 independent frames: 64 leave the tilt noise at ~10 %, and at D/r0 < 10 the finite
    # aperture broadens the PSF beyond the infinite-aperture formula (+5 % at 1 arcsec)
    n, ovs, L0 = 128, 4, 25.0
    dx = pupil_sampling(LAM, PIXEL, ovs, n)
    pupil = annular_pupil(n, dx, D, EPS)
    r0 = r0_at_wavelength(seeing_to_r0(seeing_arcsec * ARCSEC, 500e-9), LAM)
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(n, n)
    for _ in range(16):
        layers = [make_layer_screen(n, dx, 0.0, (0.0, 0.0), 0.0, [[0.0, 0.0]], r0, L0,
                                    generator=gen) for _ in range(64)]
        fields = torch.cat([atmospheric_pupil_fields([lay], n, [[0.0, 0.0]], [0.0], LAM,
                                                     mode="geometric") for lay in layers])
        total += fine_psf(fields, pupil).sum(dim=0)
    measured = long_exposure_fwhm(total, PIXEL / ovs)
    assert measured == pytest.approx(von_karman_fwhm(r0, L0, LAM), rel=0.10)


def test_bad_psf_arguments_raise():
    with pytest.raises(ParameterError, match="obstruction = 1.2: the linear central obstruction"):
        annular_pupil(64, 0.02, 1.0, 1.2)
    with pytest.raises(ParameterError, match="oversampling = 0: must be an integer >= 1"):
        pupil_sampling(LAM, PIXEL, 0, 128)
    with pytest.raises(ParameterError, match="need square .* multiple of oversampling = 3"):
        detector_stamps(torch.zeros(1, 64, 64), [[0.0, 0.0]], 3)
    with pytest.raises(ParameterError, match="2 positions but 1 fluxes"):
        render_stars((10, 10), [[1.0, 1.0], [2.0, 2.0]], [1.0], torch.zeros(8, 8), 2)
