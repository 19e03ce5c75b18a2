"""Training, prediction and the model file of the learned zero-point correction.

The target is a magnitude offset per exposure, normalised by ``target_scale`` (mag) during
training; telemetry is standardised by the training set's mean and standard deviation. Both
live in the checkpoint, a plain dict that ``torch.load(..., weights_only=True)`` reads:

    format "dancekit-zeropoint", format_version 1, model_config (AZPRC kwargs), state_dict,
    normalisation {telemetry_mean, telemetry_std, target_scale, target_mean}, target (what the output means),
    classical (settings of the fit the correction sits on), training (summary), domain (the ranges of
    the training exposures, :mod:`dancekit.photometry.learned_domain`; absent in older files), dancekit_version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.photometry.learned import AZPRC, zeropoint_loss
from dancekit.photometry.learned_data import ModelInputs

FORMAT = "dancekit-zeropoint"
FORMAT_VERSION = 1
TARGET_RESIDUAL = "zp_true - zp_classical"  # mag added to the classical ZP


@dataclass(frozen=True)
class Normalisation:
    """telemetry_mean, telemetry_std : (4,) raw units. target_scale : mag per network unit.
    target_mean : mag added to the network output × target_scale (the training targets' mean)."""

    telemetry_mean: tuple
    telemetry_std: tuple
    target_scale: float
    target_mean: float = 0.0

    @classmethod
    def fit(cls, inputs: ModelInputs, targets) -> "Normalisation":
        tel = inputs.telemetry.double()
        std = tel.std(dim=0, unbiased=False).clamp(min=1e-6) if len(inputs) > 1 else torch.ones(tel.shape[1])
        targets = np.asarray(targets, float)
        scale = float(np.std(targets)) if len(inputs) > 1 else 0.0
        return cls(tuple(tel.mean(dim=0).tolist()), tuple(std.tolist()), scale if scale > 1e-4 else 0.01,
                   float(np.mean(targets)))

    def telemetry(self, raw: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.telemetry_mean, dtype=raw.dtype, device=raw.device)
        std = torch.tensor(self.telemetry_std, dtype=raw.dtype, device=raw.device)
        return (raw - mean) / std

    def to_dict(self) -> dict:
        return {"telemetry_mean": list(self.telemetry_mean), "telemetry_std": list(self.telemetry_std),
                "target_scale": float(self.target_scale), "target_mean": float(self.target_mean)}


@dataclass(frozen=True)
class TrainingSettings:
    """epochs, batch_size, learning_rate (Adam), ranking_weight λ (seed 003: 0.1), temperature τ
    of the relaxed ranking penalty (normalised units²), adversarial_weight α (seed 003: 0.01;
    0 = no domain term), seed (batch order and initial weights)."""

    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    ranking_weight: float = 0.1
    temperature: float = 0.05
    adversarial_weight: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 2:
            raise ParameterError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if not self.learning_rate > 0 or self.ranking_weight < 0 or self.adversarial_weight < 0:
            raise ParameterError("learning_rate must be > 0; ranking_weight and adversarial_weight >= 0")


def new_model(config: dict, seed: int) -> AZPRC:
    """An AZPRC with weights drawn from ``seed`` (torch's global RNG restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AZPRC(**config)


def train_model(model: AZPRC, inputs: ModelInputs, targets, normalisation: Normalisation,
                settings: TrainingSettings, *, domains=None, device="cpu", on_epoch=None) -> list[dict]:
    """Adam on MSE + λ·ranking (+ α·domain cross-entropy through gradient reversal).

    inputs : training batch. targets : (M,) offsets, mag. domains : (M,) survey labels, needed
    when ``settings.adversarial_weight > 0``. on_epoch : callback(record) after each epoch.
    Returns one record per epoch: {"epoch", "loss", "mse_mag2", "seconds"}.
    """
    from dancekit.photometry.learned import gradient_reversal

    targets = torch.as_tensor(np.asarray(targets, np.float32))
    if targets.shape != (len(inputs),):
        raise ParameterError(f"need one target per exposure ({len(inputs)}), got shape {tuple(targets.shape)}")
    adversarial = settings.adversarial_weight > 0
    if adversarial and (domains is None or model.discriminator is None):
        raise ParameterError("the domain term needs domain labels and a model built with domain_classes >= 2")
    domain_labels = torch.as_tensor(np.asarray(domains), dtype=torch.long) if adversarial else None
    model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(int(settings.seed))
    scaled = (targets - normalisation.target_mean) / normalisation.target_scale
    history = []
    for epoch in range(1, settings.epochs + 1):
        start, total, total_mse, seen = time.perf_counter(), 0.0, 0.0, 0
        order = torch.randperm(len(inputs), generator=generator)
        for first in range(0, len(inputs), settings.batch_size):
            index = order[first:first + settings.batch_size]
            if index.numel() < 2:
                continue
            batch = inputs.subset(index).to(device)
            prediction, features = model(batch.image, batch.stars, batch.lengths,
                                         normalisation.telemetry(batch.telemetry), return_features=True)
            target = scaled[index].to(device)
            loss = zeropoint_loss(prediction, target, ranking_weight=settings.ranking_weight,
                                  temperature=settings.temperature)
            if adversarial:
                logits = model.discriminator(gradient_reversal(features))
                loss = loss + settings.adversarial_weight * torch.nn.functional.cross_entropy(
                    logits, domain_labels[index].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * index.numel()
            total_mse += float(torch.mean((prediction.detach() - target) ** 2)) * index.numel()
            seen += index.numel()
        record = {"epoch": epoch, "loss": total / max(seen, 1),
                  "mse_mag2": total_mse / max(seen, 1) * normalisation.target_scale**2,
                  "seconds": time.perf_counter() - start}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    model.eval()
    return history


@torch.no_grad()
def predict(model: AZPRC, inputs: ModelInputs, normalisation: Normalisation, *, device="cpu",
            batch_size: int = 64) -> np.ndarray:
    """Predicted offsets (M,), mag."""
    model.to(device).eval()
    out = []
    for first in range(0, len(inputs), batch_size):
        batch = inputs.subset(range(first, min(first + batch_size, len(inputs)))).to(device)
        out.append(model(batch.image, batch.stars, batch.lengths, normalisation.telemetry(batch.telemetry)).cpu())
    return torch.cat(out).double().numpy() * normalisation.target_scale + normalisation.target_mean


def zeropoint_checkpoint(model: AZPRC, normalisation: Normalisation, *, classical: dict,
                         training: dict, domain: dict | None = None, target: str = TARGET_RESIDUAL) -> dict:
    """The model file's content: a plain dict (see the module docstring); ``domain`` defaults to
    :func:`dancekit.photometry.learned_domain.generator_domain`."""
    from dancekit.photometry.learned_domain import generator_domain

    from dancekit import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION, "dancekit_version": __version__,
            "model_config": dict(model.config), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "normalisation": normalisation.to_dict(), "target": target,
            "classical": {k: v for k, v in classical.items()}, "training": training,
            "domain": generator_domain() if domain is None else domain}


def model_from_checkpoint(checkpoint) -> tuple[AZPRC, Normalisation, dict]:
    """(model in eval mode, normalisation, checkpoint) from a loaded model file's dict.

    Raises InputError when it is not a dancekit zero-point model of a supported version or its
    weights do not fit its architecture.
    """
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise InputError(f"not a zero-point model (format {found!r}; expected a file written by dancekit train-zeropoint)")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise InputError(f"zero-point model format version {checkpoint.get('format_version')!r} is not supported "
                         f"(this dancekit reads {FORMAT_VERSION})")
    try:
        model = AZPRC(**checkpoint["model_config"])
        model.load_state_dict(checkpoint["state_dict"])
        norm = checkpoint["normalisation"]
        normalisation = Normalisation(tuple(norm["telemetry_mean"]), tuple(norm["telemetry_std"]),
                                      float(norm["target_scale"]), float(norm.get("target_mean", 0.0)))
    except (KeyError, TypeError, RuntimeError, ParameterError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise InputError(f"the zero-point model is incomplete or its weights do not fit its architecture ({first})") from None
    return model.eval(), normalisation, checkpoint


def paired_rmse_verdict(errors_a, errors_b, n_sigma: float = 2.0) -> str:
    """Whether method A's errors (mag) are smaller than B's on the same exposures: "better",
    "worse" or "indistinguishable", from the mean paired difference of squared errors and its
    standard error (significant beyond ``n_sigma``)."""
    a, b = np.asarray(errors_a, float), np.asarray(errors_b, float)
    diff = a**2 - b**2
    if diff.size < 2:
        return "indistinguishable"
    se = float(np.std(diff, ddof=1) / np.sqrt(diff.size))
    if diff.mean() + n_sigma * se < 0:
        return "better"
    if diff.mean() - n_sigma * se > 0:
        return "worse"
    return "indistinguishable"
