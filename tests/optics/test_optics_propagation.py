"""Fresnel propagation and the split-step atmosphere."""

import math

import pytest
import torch

from dancekit.errors import ParameterError
from dancekit.optics.frozen_flow import layer_phase, make_layer_screen
from dancekit.optics.propagation import atmospheric_pupil_fields, fresnel_propagate, split_step
from dancekit.optics.pupil import tukey_incident_wave

LAM = 650e-9


def random_field(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    amplitude = torch.rand(3, n, n, generator=gen) * tukey_incident_wave(n, 0.02, 0.4)
    phase = 2 * math.pi * torch.rand(3, n, n, generator=gen)
    return amplitude * torch.exp(1j * phase)


def test_fresnel_propagation_conserves_energy():
    field = random_field()
    out = fresnel_propagate(field, 5000.0, LAM, 0.02)
    torch.testing.assert_close(out.abs().square().sum(dim=(-2, -1)),
                               field.abs().square().sum(dim=(-2, -1)), rtol=1e-5, atol=0)
    assert not torch.allclose(out, field, atol=1e-2)  # it did propagate


def test_propagation_over_zero_distance_is_identity():
    field = random_field()
    torch.testing.assert_close(fresnel_propagate(field, 0.0, LAM, 0.02), field)


def test_gaussian_beam_spreads_as_w0_sqrt_1_plus_z_over_zr_squared():
    n, dx, w0 = 256, 0.003, 0.02  # Rayleigh range pi w0^2 / lambda = 1933 m
    x = (torch.arange(n, dtype=torch.float64) - n // 2) * dx
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    beam = torch.exp(-r2 / w0**2).to(torch.complex64)
    z_r = math.pi * w0**2 / LAM
    out = fresnel_propagate(beam, 2000.0, LAM, dx).abs().square().double()
    # intensity exp(-2 r^2 / w^2): <r^2> = w^2 / 2
    w2 = 2 * (out * r2).sum() / out.sum()
    assert math.sqrt(w2) == pytest.approx(w0 * math.sqrt(1 + (2000.0 / z_r) ** 2), rel=1e-3)


def test_geometric_mode_is_the_exponential_of_the_summed_phases():
    gen = torch.Generator().manual_seed(1)
    phases = torch.randn(3, 2, 32, 32, generator=gen)
    field = split_step(phases, [10000.0, 0.0, 4000.0], LAM, 0.02, mode="geometric")
    torch.testing.assert_close(field, torch.exp(1j * phases.sum(dim=0)), atol=1e-5, rtol=0)
    assert torch.allclose(field.abs(), torch.ones(()))


def test_fresnel_split_step_with_ground_layers_only_is_geometric():
    # no distance to travel: the same as summing the phases on the incident wave
    gen = torch.Generator().manual_seed(2)
    phases = torch.randn(2, 1, 32, 32, generator=gen)
    field = split_step(phases, [0.0, 0.0], LAM, 0.02, mode="fresnel")
    torch.testing.assert_close(field, torch.exp(1j * phases.sum(dim=0)), atol=1e-5, rtol=0)


def test_high_layer_scintillates_but_conserves_energy():
    n, dx, d = 128, 0.02, 1.0
    incident = tukey_incident_wave(n, dx, d)
    gen = torch.Generator().manual_seed(3)
    layer = make_layer_screen(n, dx, 10000.0, (0.0, 0.0), 0.0, [[0.0, 0.0]], 0.1, 25.0,
                              generator=gen)
    field = atmospheric_pupil_fields([layer], n, [[0.0, 0.0]], [0.0], LAM, incident=incident)
    assert float(field.abs().square().sum()) == pytest.approx(float(incident.square().sum()),
                                                          rel=1e-4)
    inside = field[0].abs()[n // 2 - 20:n // 2 + 20, n // 2 - 20:n // 2 + 20]
    assert inside.std() > 0.01  # intensity fluctuations: scintillation from 10 km
    geometric = atmospheric_pupil_fields([layer], n, [[0.0, 0.0]], [0.0], LAM, mode="geometric")
    torch.testing.assert_close(geometric, torch.exp(1j * layer_phase(layer, n, [[0, 0]], [0])))


def test_bad_propagation_arguments_raise():
    field = random_field()
    with pytest.raises(ParameterError, match="distance = -1.0 m: must be a finite number >= 0"):
        fresnel_propagate(field, -1.0, LAM, 0.02)
    with pytest.raises(ParameterError, match="exceeds n dx\\^2 / lambda"):
        fresnel_propagate(field, 1e7, LAM, 0.02)
    with pytest.raises(ParameterError, match="mode = 'ray': choose one of fresnel, geometric"):
        split_step(torch.zeros(1, 1, 8, 8), [0.0], LAM, 0.02, mode="ray")
