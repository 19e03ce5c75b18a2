"""The U-Net training loop on a tiny generated set: it learns, it overfits, it resumes exactly."""

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from dancekit.errors import InputError, ParameterError
from dancekit.io.checkpoint import read_checkpoint, write_checkpoint
from dancekit.sky.noise import add_noise, mag_to_rate
from dancekit.sky.star_fields import homogeneous_field
from dancekit.unet.config import UNetConfig
from dancekit.unet.data import (TrainingSamples, ValidationSamples, VideoSource, check_sources, child_seed,
                                split_sources)
from dancekit.unet.model import build_unet
from dancekit.unet.preprocess import network_input, network_output_to_electrons
from dancekit.unet.training import Trainer, TrainingSettings

# 3 stages, ~10 k parameters: the loop's behaviour, not the paper's network, is under test
TINY = UNetConfig(in_channels=4, n_stages=3, features=(8, 16, 16), strides=(1, 2, 2),
                  blocks_per_stage=(1, 1, 1), decoder_convs_per_stage=(1, 1))


def star_image(shape, x, y, flux, sigma):
    """Pixel-integrated circular Gaussians [e-]: flux_i at (x_i, y_i), rms width sigma [pixels]."""
    def profile(n, centre):
        edges = np.arange(n + 1)[None, :] - 0.5 - np.asarray(centre)[:, None]
        return 0.5 * np.diff(erf(edges / (np.sqrt(2) * sigma)), axis=1)
    return np.einsum("n,nh,nw->hw", flux, profile(shape[0], y), profile(shape[1], x))


def toy_video(rng, n_frames=6, shape=(48, 48), n_stars=12, sky=20.0, blur=2.0, jitter=1.0):
    """A toy turbulent video [e-]: stars jittered and blurred per frame + sky + Poisson and read
    noise (dancekit.sky.noise), and its truth (sharp, noise-free, no sky)."""
    field = homogeneous_field(shape, rng, n_stars=n_stars, mag_min=14.0, mag_max=17.0)
    flux = mag_to_rate(field.mag, 24.6) * 0.19
    truth = star_image(shape, field.x, field.y, flux, 0.8)
    frames = [add_noise(star_image(shape, field.x + dx, field.y + dy, flux, blur) + sky, rng, 1.0)
              for dx, dy in rng.normal(0, jitter, (n_frames, 2))]
    return np.array(frames, np.float32), truth.astype(np.float32)


@pytest.fixture(scope="module")
def sources():
    rng = np.random.default_rng(2)
    return [VideoSource.from_arrays(f"v{i}", *toy_video(rng)) for i in range(8)]


def make_trainer(sources, val=True, **settings):
    settings = TrainingSettings(**{"context": 4, "tile": 32, "batch": 2, "seed": 3, **settings})
    train = TrainingSamples(sources[:6], settings.context, settings.tile, settings.seed)
    validation = ValidationSamples(sources[6:], settings.context, settings.tile) if val else None
    return Trainer(build_unet(TINY, seed=0), train, validation, settings)


def test_validation_loss_falls(sources):
    trainer = make_trainer(sources, epochs=15)
    before = trainer.validate()
    trainer.run()
    after = trainer.history[-1]
    assert after["val_mse"] < 0.75 * before["val_mse"]
    assert trainer.history[-1]["train_loss"] < 0.8 * trainer.history[0]["train_loss"]
    # the model kept is the one with the smallest mean |dmag| among the validated epochs
    finite = [h for h in trainer.history if math.isfinite(h["mean_abs_dmag"])]
    assert trainer.best["mean_abs_dmag"] == min(h["mean_abs_dmag"] for h in finite)
    kept = build_unet(TINY)
    kept.load_state_dict(trainer.best_state)
    assert trainer.summary()["best_epoch"] == trainer.best["epoch"]


def test_one_sample_is_overfitted_and_its_flux_recovered(sources):
    trainer = make_trainer(sources, val=False, steps=1, batch=1, learning_rate=1e-2)
    frames, truth, _ = trainer.train.sample(0, 0)
    losses = [trainer.train_step(frames[None], truth[None]) for _ in range(200)]
    assert losses[-1] < 2e-3 * losses[0]
    with torch.no_grad():
        image = network_output_to_electrons(trainer.model(network_input(frames[None])[0])[0], "algebraic")[0]
    # the noise-free truth comes back: total flux to 2 %, pixels to a few per cent of the peak
    assert float(image.sum()) == pytest.approx(float(truth.sum()), rel=0.02)
    assert float((image - truth).abs().max()) < 0.1 * float(truth.max())


@pytest.mark.parametrize("extra", [{}, {"schedule": "cosine", "flux_weight": 0.5}], ids=["paper", "cosine+flux"])
def test_resume_after_any_step_equals_an_uninterrupted_run(sources, tmp_path, extra):
    whole = make_trainer(sources, epochs=3, **extra)
    assert whole.run()
    first = make_trainer(sources, epochs=3, **extra)
    assert not first.run(should_stop=lambda: first.step == 5)  # mid-epoch (3 steps per epoch)
    path = tmp_path / "state.pt"
    write_checkpoint({"resume": first.state_dict(), "state_dict": first.best_state}, path)
    saved = torch.load(path, weights_only=True)
    second = make_trainer(sources, epochs=3, **extra)
    second.load_state_dict(saved["resume"], saved["state_dict"])
    assert second.run()
    assert second.step_losses == whole.step_losses  # bit for bit
    assert [h["val_mse"] for h in second.history] == [h["val_mse"] for h in whole.history]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    assert second.best["epoch"] == whole.best["epoch"]


def test_cosine_schedule_falls_from_the_initial_rate_to_one_percent(sources):
    trainer = make_trainer(sources, steps=7, schedule="cosine", learning_rate=1e-3)
    rates = []
    trainer.run(on_step=lambda step, loss: rates.append(trainer.optimizer.param_groups[0]["lr"]))
    assert rates[0] == pytest.approx(1e-3)
    assert rates[3] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # half way: the cosine's midpoint
    assert rates[-1] == pytest.approx(1e-5)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_flux_term_enters_the_training_loss_and_validation(sources):
    plain = make_trainer(sources, steps=1)
    with_flux = make_trainer(sources, steps=1, flux_weight=2.0)
    plain.run(), with_flux.run()
    # same initial weights and batch: the first loss differs by exactly the weighted flux term
    assert with_flux.step_losses[0] > plain.step_losses[0]
    record = with_flux.validate()
    assert record["val_flux"] > 0 and math.isfinite(record["val_mse"])


def test_resume_refuses_a_different_run(sources):
    first = make_trainer(sources, epochs=1)
    first.run()
    other = make_trainer(sources, epochs=2, tile=16)
    with pytest.raises(ParameterError, match="trained with tile = 32, this run has 16"):
        other.load_state_dict(first.state_dict(), first.best_state)
    with pytest.raises(ParameterError, match="trained with flux_weight = 0.0, this run has 0.5"):
        make_trainer(sources, epochs=2, flux_weight=0.5).load_state_dict(first.state_dict(), first.best_state)
    old = first.state_dict()
    for key in ("schedule", "flux_weight"):  # a checkpoint written before these settings existed
        del old["settings"][key]
    make_trainer(sources, epochs=2).load_state_dict(old, first.best_state)


def test_checkpoint_keeps_shared_weights_once_and_loads_safely(sources, tmp_path):
    trainer = make_trainer(sources, epochs=1)
    trainer.run()
    path = tmp_path / "c.pt"
    write_checkpoint({"state_dict": trainer.best_state, "resume": trainer.state_dict()}, path)
    loaded = read_checkpoint(path)  # weights_only=True inside
    aliases = [k for k in loaded["state_dict"] if ".all_modules.0." in k]
    assert aliases and all(loaded["state_dict"][k].data_ptr() == loaded["state_dict"][k.replace("all_modules.0", "conv")].data_ptr() for k in aliases)
    with pytest.raises(InputError, match="exists"):
        write_checkpoint({}, path)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_checkpoint(path)


def test_samples_are_reproducible_and_frames_follow_the_truth(sources):
    train = TrainingSamples(sources, context=4, tile=32, seed=5)
    a, ta, aug = train.sample(2, 7)
    b, tb, _ = train.sample(2, 7)
    assert torch.equal(a, b) and torch.equal(ta, tb)
    c, _, _ = train.sample(2, 8)
    assert not torch.equal(a, c)
    # the same crop and turn are applied to frames and truth: the brightest star is at the same place
    mean = a.mean(0)
    peak_truth = np.unravel_index(int(ta.argmax()), ta.shape)
    blurred_peak = np.unravel_index(int(mean.argmax()), mean.shape)
    assert np.hypot(*np.subtract(peak_truth, blurred_peak)) <= 3.0
    # each epoch visits every training video once
    assert sorted(train.order(4)) == list(range(len(sources)))
    assert child_seed(5, 1, 2, 7) != child_seed(5, 1, 2, 8)


def test_bad_sources_and_split(sources):
    with pytest.raises(InputError, match="has 6 frames, fewer than the context of 8"):
        check_sources(sources, context=8, tile=32, total_stride=4)
    with pytest.raises(ParameterError, match="multiple of the network's total stride 16"):
        check_sources(sources, context=4, tile=40, total_stride=16)
    with pytest.raises(InputError, match="smaller than the tile of 64"):
        check_sources(sources, context=4, tile=64, total_stride=16)
    train, val = split_sources(sources, 0.25, seed=1)
    assert len(val) == 2 and len(train) == 6 and not {s.name for s in train} & {s.name for s in val}
    with pytest.raises(InputError, match="--val-fraction 0"):
        split_sources(sources[:1], 0.1, seed=1)
