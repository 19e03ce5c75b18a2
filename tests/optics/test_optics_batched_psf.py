"""The fast batched PSF path (BatchedPSF, used by render_frame) against the reference path
(atmospheric_pupil_fields + fine_psf), with and without a layer on the pupil."""

import math

import pytest
import torch

from dancekit.optics.batched_psf import BatchedPSF, weighted_phasor
from dancekit.optics.frozen_flow import make_layer_screen
from dancekit.optics.propagation import atmospheric_pupil_fields
from dancekit.optics.psf import fine_psf, pupil_sampling
from dancekit.optics.pupil import annular_pupil, tukey_incident_wave
from dancekit.optics.turbulence import r0_at_wavelength, seeing_to_r0

ARCSEC = math.pi / 648000
LAM, D, EPS, PIXEL = 650e-9, 1.04, 0.30, 0.235 * ARCSEC  # C2PU (Bialek et al. 2024 Sect. 3)


def test_weighted_phasor_is_weights_times_exp_i_phase():
    phase = torch.linspace(-20.0, 20.0, 600).reshape(3, 200)
    weights = torch.linspace(0.0, 2.0, 200)
    expected = weights * torch.exp(1j * phase.double())
    assert torch.allclose(weighted_phasor(phase, weights).to(torch.complex128), expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["fresnel", "geometric"])
@pytest.mark.parametrize("heights", [(10e3, 2e3, 0.0), (10e3, 2e3)])
def test_batched_psfs_equal_the_reference_path(mode, heights):
    n, ovs = 64, 4
    dx = pupil_sampling(LAM, PIXEL, ovs, n)
    pupil, incident = annular_pupil(n, dx, D, EPS), tukey_incident_wave(n, dx, D)
    angles = torch.tensor([[0.0, 0.0], [20.0, -15.0], [-30.0, 5.0]], dtype=torch.float64) * ARCSEC
    times = torch.tensor([0.0, 0.05, 0.11], dtype=torch.float64)
    r0 = r0_at_wavelength(seeing_to_r0(1.0 * ARCSEC, 500e-9), LAM) * len(heights) ** 0.6
    gen = torch.Generator().manual_seed(5)
    layers = [make_layer_screen(n, dx, h, (8.0, -3.0 * i), 0.2, angles, r0, 25.0, generator=gen)
              for i, h in enumerate(heights)]
    plan = BatchedPSF(layers, pupil, LAM, incident=incident, mode=mode)
    fast = plan.power_sum(angles, times, 1) / plan.norm  # fine_psf's normalisation
    fields = atmospheric_pupil_fields(layers, n, angles, times, LAM, incident=incident, mode=mode)
    reference = torch.fft.ifftshift(fine_psf(fields, pupil), dim=(-2, -1))
    assert float(reference.sum(dim=(-2, -1)).min()) > 0.5  # light went through
    assert torch.allclose(fast, reference, rtol=0, atol=2e-5 * float(reference.max()))
