"""AZP-RC, the learned zero-point correction: shapes, the ranking penalty, the generator's truth
against the classical fit, training, and the model file."""

import numpy as np
import pytest
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.photometry.exposures import SURVEYS, generate_exposure, generate_exposures
from dancekit.photometry.learned import AZPRC, gradient_reversal, pairwise_ranking_penalty, zeropoint_loss
from dancekit.photometry.learned_data import ModelInputs, classical_calibration, exposure_inputs, stack_inputs
from dancekit.photometry.learned_training import (
    Normalisation, TrainingSettings, model_from_checkpoint, new_model, paired_rmse_verdict, predict, train_model,
    zeropoint_checkpoint,
)


def _batch(b=3, size=32, n=6, lengths=(6, 1, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    stars = torch.randn(b, n, 7, generator=g)
    for i, length in enumerate(lengths):
        stars[i, length:] = 0.0
    return ModelInputs(torch.randn(b, 1, size, size, generator=g), stars, torch.tensor(lengths), torch.randn(b, 4, generator=g))


def test_network_shapes_and_padding_is_ignored():
    model = new_model({}, seed=1).eval()
    x = _batch()
    out, features = model(x.image, x.stars, x.lengths, x.telemetry, return_features=True)
    assert out.shape == (3,)
    assert features.shape == (3, 64 + 2 * 64 + 32)  # CFE + bidirectional GRU + telemetry MLP
    padded = x.stars.clone()
    padded[1, 1:] = 99.0  # garbage beyond the valid stars must not change the prediction
    padded[2, 3:] = -7.0
    with torch.no_grad():
        assert torch.allclose(model(x.image, padded, x.lengths, x.telemetry), out.detach(), atol=1e-6)
    image_only = AZPRC(use_stars=False, use_telemetry=False)
    assert image_only(x.image, None, None, None).shape == (3,)
    with pytest.raises(ParameterError, match="at least one of"):
        AZPRC(use_image=False, use_stars=False, use_telemetry=False)


def test_ranking_penalty_on_hand_made_orders():
    up = torch.tensor([1.0, 2.0, 3.0])
    assert float(pairwise_ranking_penalty(up, up)) == 0.0
    assert float(pairwise_ranking_penalty(up, torch.tensor([3.0, 2.0, 1.0]))) == 1.0  # every pair reversed
    # one swapped pair (0, 1): 2 of the 6 ordered pairs are discordant
    assert float(pairwise_ranking_penalty(torch.tensor([2.0, 1.0, 3.0]), up)) == pytest.approx(1 / 3)
    # the logistic relaxation tends to the indicator as the temperature goes to 0, and has a gradient
    pred = torch.tensor([2.0, 1.0, 3.0], requires_grad=True)
    soft = pairwise_ranking_penalty(pred, up, temperature=1e-3)
    assert float(soft.detach()) == pytest.approx(1 / 3, abs=1e-6)
    pairwise_ranking_penalty(pred, up, temperature=1.0).backward()
    assert pred.grad[0] > 0 and pred.grad[1] < 0  # pushes the swapped pair back into order
    # loss = MSE + 0.1 x penalty
    loss = zeropoint_loss(torch.tensor([2.0, 1.0, 3.0]), up, ranking_weight=0.1, temperature=1e-4)
    assert float(loss) == pytest.approx((1 + 1 + 0) / 3 + 0.1 / 3, rel=1e-5)
    with pytest.raises(ParameterError, match="same length"):
        pairwise_ranking_penalty(up, torch.tensor([1.0, 2.0]))


def test_gradient_reversal_flips_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (gradient_reversal(x, 0.5) * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-1.5, -2.0]))


def test_generated_zero_point_is_what_the_classical_fit_recovers():
    """The generator's truth (total flux, image-area mean) against the classical robust fit with
    no aperture correction (1.5 FWHM apertures lose ~0.2 % of a Gaussian star's light)."""
    errors, sigmas = [], []
    for i in range(12):
        exposure = generate_exposure(100 + i, survey=i % 2)
        calibration = classical_calibration(exposure, aperture_correction=False)
        if calibration is None:  # too few usable stars (bad seeing, crowding): a failure, not a bias
            continue
        errors.append(calibration.zeropoint.zp - exposure.zeropoint_true)
        sigmas.append(calibration.zeropoint.zp_err)
    errors, sigmas = np.array(errors), np.array(sigmas)
    assert errors.size >= 10
    # the quoted error, with the Gaussian aperture loss (2 mmag) and 5 mmag of unmodelled
    # cloud-patch sampling added in quadrature, covers the error
    pulls = errors / np.hypot(sigmas, 0.005)
    assert np.all(np.abs(errors - (-0.002)) < 4 * np.hypot(sigmas, 0.005)), (errors, sigmas)
    assert abs(np.mean(errors)) < 0.006
    assert np.sqrt(np.mean(pulls**2)) < 2.0


def test_two_surveys_differ_and_the_generator_is_reproducible():
    a = generate_exposures(6, seed=3)
    b = generate_exposures(6, seed=3)
    assert all(np.array_equal(x.image, y.image) and x.delta_zp == y.delta_zp for x, y in zip(a, b))
    for e in a:
        s = SURVEYS[e.survey]
        assert e.zeropoint_nominal == s.zeropoint
        # delta ZP is extinction plus grey cloud (>= 0) plus the flat-field mean (zero by construction, to grid accuracy)
        assert e.delta_zp == pytest.approx(-e.extinction * e.airmass - e.cloud, abs=2e-3 * s.flat_amplitude / 0.01)
    with pytest.raises(ParameterError, match="survey must be one of 0..1"):
        generate_exposure(1, survey=2)


def test_exposure_inputs_from_a_calibrated_exposure():
    exposure = generate_exposure(7, survey=0)
    calibration = classical_calibration(exposure)
    patch, table, telemetry = exposure_inputs(exposure.image, calibration, exposure.telemetry)
    assert patch.shape == (1, 256, 256) and table.shape[1] == 7
    assert table.shape[0] == min(64, calibration.zeropoint.n_used)
    assert np.all(np.diff(table[:, 0]) >= 0)  # brightest first
    assert np.all(np.abs(table[:, 2:4]) <= 1.0)  # positions in half-widths
    batch = stack_inputs([(patch, table, telemetry), (patch, table[:3], telemetry)])
    assert batch.stars.shape == (2, table.shape[0], 7) and batch.lengths.tolist() == [table.shape[0], 3]
    with pytest.raises(ParameterError, match="telemetry must be 4 finite numbers"):
        exposure_inputs(exposure.image, calibration, [1.2, 10.0, np.nan, 3.0])


def test_a_short_training_run_lowers_the_loss_on_a_learnable_target():
    g = torch.Generator().manual_seed(5)
    n = 48
    inputs = ModelInputs(torch.randn(n, 1, 16, 16, generator=g), torch.randn(n, 4, 7, generator=g),
                         torch.full((n,), 4), torch.randn(n, 4, generator=g) * torch.tensor([0.3, 5.0, 20.0, 3.0]))
    target = 0.05 * inputs.telemetry[:, 0].numpy() - 0.002 * inputs.telemetry[:, 2].numpy()  # mag
    norm = Normalisation.fit(inputs, target)
    model = new_model({"cnn_channels": (2, 2)}, seed=2)
    before = np.mean((predict(model, inputs, norm) - target) ** 2)
    history = train_model(model, inputs, target, norm, TrainingSettings(epochs=25, batch_size=8, learning_rate=3e-3, seed=1))
    after = np.mean((predict(model, inputs, norm) - target) ** 2)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert after < 0.2 * before
    with pytest.raises(ParameterError, match="domain labels"):
        train_model(model, inputs, target, norm, TrainingSettings(epochs=1, adversarial_weight=0.01))
    # the domain-adversarial variant runs and still learns
    adv = new_model({"cnn_channels": (2, 2), "domain_classes": 2}, seed=2)
    hist = train_model(adv, inputs, target, norm, TrainingSettings(epochs=10, batch_size=8, learning_rate=3e-3,
                                                                   adversarial_weight=0.01),
                       domains=np.arange(n) % 2)
    assert hist[-1]["mse_mag2"] < hist[0]["mse_mag2"]


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = new_model({"cnn_channels": (2, 4)}, seed=3)
    x = _batch(size=16)
    norm = Normalisation((1.3, 10.0, 50.0, 5.0), (0.2, 4.0, 25.0, 3.0), 0.01)
    path = tmp_path / "zp.pt"
    torch.save(zeropoint_checkpoint(model, norm, classical={"aperture_radius": None}, training={"epochs": 1}), path)
    loaded, norm2, ck = model_from_checkpoint(torch.load(path, weights_only=True))
    assert norm2 == norm and ck["format"] == "dancekit-zeropoint"
    assert np.allclose(predict(loaded, x, norm2), predict(model, x, norm))
    with pytest.raises(InputError, match="not a zero-point model"):
        model_from_checkpoint({"format": "dancekit-unet"})
    bad = torch.load(path, weights_only=True)
    bad["state_dict"].pop("head.0.weight")
    with pytest.raises(InputError, match="do not fit its architecture"):
        model_from_checkpoint(bad)


def test_paired_verdict():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 0.01, 200), rng.normal(0, 0.03, 200)
    assert paired_rmse_verdict(small, large) == "better"
    assert paired_rmse_verdict(large, small) == "worse"
    # same error distribution, independent draws: no significant difference
    assert paired_rmse_verdict(small, rng.normal(0, 0.01, 200)) == "indistinguishable"
