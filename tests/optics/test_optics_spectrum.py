"""Finite bandwidth: band sampling, the band-integrated diffraction pattern against the analytic
annular Airy patterns, achromatic image motion, per-wavelength phase and Fresnel propagation."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import make_layer_screen
from dancekit.optics.imaging import pixel_to_field_angle, render_band_frame, render_frame
from dancekit.optics.propagation import atmospheric_pupil_fields
from dancekit.optics.psf import fine_psf, pupil_sampling
from dancekit.optics.pupil import annular_pupil, tukey_incident_wave
from dancekit.optics.spectrum import band_channels, band_wavelengths
from dancekit.optics.turbulence import airy_obstructed

ARCSEC = math.pi / 648000
D, EPS, LC, BAND = 1.04, 0.30, 650e-9, 140e-9  # C2PU in SDSS r (Bialek et al. 2024 Sect. 3)


def test_band_is_sampled_at_sub_band_midpoints_with_equal_photon_weights():
    wavelengths, weights = band_wavelengths(LC, BAND, 4)
    np.testing.assert_allclose(wavelengths, [597.5e-9, 632.5e-9, 667.5e-9, 702.5e-9], rtol=1e-12)
    assert weights == [0.25] * 4
    assert np.dot(wavelengths, weights) == pytest.approx(LC, rel=1e-12)  # flat spectrum: mean = centre
    assert band_wavelengths(LC, BAND, 1) == ([LC], [1.0])  # one wavelength: monochromatic


@pytest.mark.parametrize("bandwidth, n, message", [
    (-1e-8, 3, r"bandwidth = -1e-08 m: the full width of the band must lie in \[0, wavelength"),
    (650e-9, 3, r"bandwidth = 6.5e-07 m: the full width"),
    (0.0, 3, "n_wavelengths = 3 needs a bandwidth > 0"),
    (BAND, 0, "n_wavelengths = 0: must be an integer >= 1"),
])
def test_bad_band_raises(bandwidth, n, message):
    with pytest.raises(ParameterError, match=message):
        band_wavelengths(LC, bandwidth, n)


def _truth(n_wavelengths, n=256, oversampling=1, size=41):
    """Diffraction-limited image of one star at a pixel centre, pixels of lambda_c / (4 D)."""
    wavelengths, weights = band_wavelengths(LC, BAND, n_wavelengths)
    channels = band_channels(wavelengths, weights, n, LC / (4 * D), oversampling, D, EPS, fresnel=False)
    centre = float(size // 2)
    return render_band_frame([], channels, [[centre, centre]], [1.0], [[0.0, 0.0]], (size, size),
                             phase_wavelength=LC, oversampling=oversampling, mode="geometric").double().numpy()


def _airy_image(n_wavelengths, size=41, sub=16):
    """sum_j w_j of the analytic annular Airy pattern at lambda_j integrated over each pixel."""
    pixel = LC / (4 * D)
    wavelengths, weights = band_wavelengths(LC, BAND, n_wavelengths)
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    axis = ((np.arange(size) - size // 2)[:, None] + offsets[None, :]).reshape(-1) * pixel
    radius = np.hypot(axis[:, None], axis[None, :])
    image = sum(w * airy_obstructed(radius, D, EPS, lam) for lam, w in zip(wavelengths, weights))
    return (image * (pixel / sub) ** 2).reshape(size, sub, size, sub).sum(axis=(1, 3))


def _first_dark_ring(image):
    row = image[image.shape[0] // 2, image.shape[1] // 2:]
    i = next(i for i in range(1, row.size - 1) if row[i] < row[i - 1] and row[i] < row[i + 1])
    return i, row[i]


def test_band_truth_is_the_weighted_sum_of_airy_patterns_and_fills_the_dark_ring():
    mono, band = _truth(1), _truth(3)
    airy_mono, airy_band = _airy_image(1), _airy_image(3)
    peak = airy_mono.max()
    assert np.abs(band - airy_band).max() < 0.02 * peak  # as the monochromatic Airy test
    # what the band changes (the chromatic part): the pupil's pixelisation cancels in the difference
    chromatic = airy_band - airy_mono
    assert np.abs((band - mono) - chromatic).max() < 0.1 * np.abs(chromatic).max()
    ring, mono_min = _first_dark_ring(mono)
    band_ring, band_min = _first_dark_ring(band)
    assert band_ring == ring and band_min > 1.15 * mono_min  # the ring moves with lambda: it fills in
    assert band_min == pytest.approx(_first_dark_ring(airy_band)[1], rel=0.03)
    assert band.sum() == pytest.approx(mono.sum(), rel=2e-3)  # flux: the same light, spread differently


def _tilt_layer(n, dx, tilt, wavelength, ratio):
    """A layer whose phase (rad at ``wavelength``) is the pure tilt 2 pi tilt x / lambda."""
    window = 2 * math.ceil(ratio * n / 2) + 2
    layer = make_layer_screen(window, dx, 0.0, (0.0, 0.0), 0.0, [[0.0, 0.0]], 0.1, 25.0,
                              generator=torch.Generator().manual_seed(0), subharmonics=0)
    cols = torch.arange(layer.phase.shape[1], dtype=torch.float64)
    ramp = (2 * math.pi * tilt * dx / wavelength) * cols
    return dataclasses.replace(layer, phase=ramp.expand_as(layer.phase).to(torch.float32).contiguous())


def test_image_motion_is_achromatic_in_every_channel_and_the_band():
    # an optical-path tilt moves the image by the same angle at every wavelength: only if the
    # phase scales as lambda_ref / lambda and each channel's grid spacing scales as lambda
    n, ovs, pixel = 128, 4, 0.235 * ARCSEC
    wavelengths, weights = band_wavelengths(LC, BAND, 3)
    channels = band_channels(wavelengths, weights, n, pixel, ovs, D, EPS, fresnel=False)
    shift = 0.8  # px along +x: phase = +2 pi OPD / lambda puts the image at +dOPD/dx (forward FFT)
    layer = _tilt_layer(n, channels[0].sampling, shift * pixel, LC, wavelengths[-1] / wavelengths[0])
    star, shape = [[20.0, 21.0]], (42, 42)
    angles = pixel_to_field_angle(star, shape, pixel)
    kwargs = dict(phase_wavelength=LC, oversampling=ovs, mode="geometric")
    for chosen in [[c] for c in channels] + [channels]:
        chosen = [dataclasses.replace(c, weight=1.0 / len(chosen)) for c in chosen]
        tilted = render_band_frame([layer], chosen, star, [1.0], angles, shape, **kwargs)
        moved = render_band_frame([], chosen, [[20.0 + shift, 21.0]], [1.0], angles, shape, **kwargs)
        torch.testing.assert_close(tilted, moved, atol=2e-5 * float(moved.max()), rtol=0)


@pytest.mark.parametrize("mode", ["geometric", "fresnel"])
def test_a_channel_sees_the_screen_scaled_and_propagates_at_its_own_wavelength(mode):
    # reference: the plain split-step path at lambda, on screens whose phase was rescaled by hand
    n, dx, lam = 64, 0.02, 700e-9
    pixel = 4 * lam / (n * dx)  # so that the channel's grid is the screens' grid
    pupil = annular_pupil(n, dx, 0.5, 0.2)
    incident = tukey_incident_wave(n, dx, 0.5) if mode == "fresnel" else None
    positions = torch.tensor([[20.2, 21.7], [40.6, 35.1]])
    angles = pixel_to_field_angle(positions, (64, 64), pixel)
    gen = torch.Generator().manual_seed(8)
    layers = [make_layer_screen(n, dx, h, v, 1.0, angles, 0.1, 20.0, generator=gen)
              for h, v in ((0.0, (5.0, 0.0)), (6000.0, (-3.0, 7.0)))]
    channel = band_channels([lam], [1.0], n, pixel, 4, 0.5, 0.2, fresnel=mode == "fresnel")[0]
    channel = dataclasses.replace(channel, pupil=pupil, sampling=dx, incident=incident)
    frame = render_band_frame(layers, [channel], positions, [1.0, 2.0], angles, (64, 64),
                              phase_wavelength=LC, oversampling=4, t_start=0.3, mode=mode)
    scaled = [dataclasses.replace(layer, phase=layer.phase * (LC / lam)) for layer in layers]
    reference = render_frame(scaled, pupil, positions, [1.0, 2.0], angles, (64, 64), wavelength=lam,
                             oversampling=4, t_start=0.3, incident=incident, mode=mode)
    torch.testing.assert_close(frame, reference, atol=2e-6 * float(reference.max()), rtol=0)
    fields = atmospheric_pupil_fields(scaled, n, angles[:1], [0.3], lam, incident, mode)
    unscaled = atmospheric_pupil_fields(layers, n, angles[:1], [0.3], lam, incident, mode)
    assert not torch.allclose(fine_psf(fields, pupil), fine_psf(unscaled, pupil), atol=1e-4)


def test_turbulent_band_frame_conserves_flux_and_one_wavelength_is_the_monochromatic_frame():
    n, ovs, pixel = 64, 4, 0.3 * ARCSEC
    dx = pupil_sampling(LC - BAND / 3, pixel, ovs, n)  # the screens' grid: the shortest wavelength
    wavelengths, weights = band_wavelengths(LC, BAND, 3)
    channels = band_channels(wavelengths, weights, n, pixel, ovs, 0.5, 0.2, fresnel=False)
    assert channels[0].sampling == pytest.approx(dx, rel=1e-12)
    positions = torch.tensor([[20.2, 21.7], [40.6, 35.1]])
    angles = pixel_to_field_angle(positions, (64, 64), pixel)
    gen = torch.Generator().manual_seed(3)
    window = 2 * math.ceil(wavelengths[-1] / wavelengths[0] * n / 2) + 2
    layers = [make_layer_screen(window, dx, h, v, 1.0, angles, 0.08, 20.0, generator=gen)
              for h, v in ((0.0, (5.0, 0.0)), (6000.0, (-3.0, 7.0)))]
    frame = render_band_frame(layers, channels, positions, [1.0, 2.0], angles, (64, 64), phase_wavelength=LC,
                              oversampling=ovs, exposure=0.2, n_substeps=2, mode="geometric")
    assert float(frame.sum()) == pytest.approx(3.0, rel=1e-4)
    # the band path with the shortest wavelength alone, on its own grid, is the monochromatic frame
    alone = dataclasses.replace(channels[0], weight=1.0)
    single = render_band_frame(layers, [alone], positions, [1.0, 2.0], angles, (64, 64),
                               phase_wavelength=wavelengths[0], oversampling=ovs, mode="geometric")
    mono = render_frame(layers, channels[0].pupil, positions, [1.0, 2.0], angles, (64, 64),
                        wavelength=wavelengths[0], oversampling=ovs, mode="geometric")
    assert torch.equal(single, mono)
