"""The Deep-Dark-Net training loop: epochs over (frame, channel) samples, validation, exact resume.

One *sample* is one readout channel of one training frame: its generator inputs (C, h, w) and
its active area (1, h, w) in network units, produced on demand by the caller's ``sample(i)``
(the command reads them from disk, so the training set need not fit in memory). Batch size 1
(Qu et al. 2024 sec. 3.1). Every random choice is a function of (seed, epoch) or (seed, step):

* the sample order of epoch e: ``torch.randperm`` from a generator seeded with (seed, e);
* with ``crop > 0``, the crop of step s: offsets drawn from a generator seeded with (seed, s);
* the learning rate of step s: a function of s and the total steps (``lr_decay``).

So a run stopped after any step and resumed from ``state_dict()`` continues exactly as if it had
not stopped. After every epoch the caller's ``validate(generator)`` (e.g. RMSE in ADU on held-out
frames) is recorded, and the weights with the lowest value are kept (``best_state``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator
from dancekit.dark.training import GanLossWeights, make_optimizers, train_step
from dancekit.errors import ParameterError

ORDER_STREAM, CROP_STREAM = 1, 2


@dataclass(frozen=True)
class DarkTrainingSettings:
    """epochs: passes over the samples; seed: of order and crops; crop: training crop side [px],
    0 = whole channel; loss weights and discriminator loss (``training.train_step``); Adam lr;
    lr_decay: share of the steps, at the end, over which the lr falls linearly to zero (pix2pix's
    ``n_epochs_decay`` policy; 0 = constant lr)."""

    epochs: int
    seed: int
    crop: int = 0
    loss_bce: float = 1.0
    loss_mse: float = 1.0
    loss_l1: float = 100.0
    discriminator_loss: str = "mse"
    learning_rate: float = 2e-5
    lr_decay: float = 0.0

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ParameterError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if self.crop != 0 and self.crop < 24:
            raise ParameterError(f"crop must be 0 (whole channel) or >= 24 pixels, got {self.crop}")
        if self.discriminator_loss not in ("mse", "bce"):
            raise ParameterError(f"discriminator_loss must be 'mse' or 'bce', got {self.discriminator_loss!r}")
        if not 0 <= self.lr_decay <= 1:
            raise ParameterError(f"lr_decay must be in [0, 1], got {self.lr_decay}")

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of the lr at ``step`` (0-based) of ``total_steps``: 1, then linear to 0."""
        decay = self.lr_decay * total_steps
        return 1.0 if decay <= 0 else min(1.0, (total_steps - step) / decay)

    @property
    def weights(self) -> GanLossWeights:
        return GanLossWeights(self.loss_bce, self.loss_mse, self.loss_l1)


def _stream(seed: int, stream: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), stream, int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def crop_pair(condition: torch.Tensor, target: torch.Tensor, size: int, generator: torch.Generator):
    """The same random (size x size) window of condition (B, C, H, W) and target (B, 1, H, W);
    the whole image when it is not larger than ``size``."""
    h, w = target.shape[-2:]
    if size <= 0 or (size >= h and size >= w):
        return condition, target
    sh, sw = min(size, h), min(size, w)
    y = int(torch.randint(0, h - sh + 1, (1,), generator=generator))
    x = int(torch.randint(0, w - sw + 1, (1,), generator=generator))
    return condition[..., y:y + sh, x:x + sw], target[..., y:y + sh, x:x + sw]


class DarkTrainer:
    """Holds G, D, their Adam optimisers and the position in training (step, epoch, history)."""

    def __init__(self, generator: DeepDarkGenerator, discriminator: PatchDiscriminator, settings: DarkTrainingSettings,
                 n_samples: int, device: torch.device | str = "cpu"):
        if n_samples < 1:
            raise ParameterError(f"need at least 1 training sample, got {n_samples}")
        self.device = torch.device(device)
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        self.settings = settings
        self.n_samples = int(n_samples)
        self.opt_g, self.opt_d = make_optimizers(self.generator, self.discriminator, settings.learning_rate)
        self.step = 0
        self.history: list[dict] = []
        self.best = {"epoch": None, "step": None, "val": float("inf")}
        self.best_state = copy.deepcopy(self.generator.state_dict())
        self.seconds = 0.0
        self._epoch_losses: dict[str, float] = {}

    @property
    def total_steps(self) -> int:
        return self.settings.epochs * self.n_samples

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.n_samples

    def run(self, sample: Callable[[int], tuple[np.ndarray, np.ndarray]],
            validate: Callable[[DeepDarkGenerator], float] | None = None,
            should_stop: Callable[[], bool] = lambda: False,
            on_epoch: Callable[["DarkTrainer"], None] | None = None,
            on_step: Callable[[int, float], None] | None = None) -> bool:
        """Train to ``settings.epochs``; True when finished, False when ``should_stop`` interrupted."""
        s = self.settings
        while self.step < self.total_steps:
            epoch, position = divmod(self.step, self.n_samples)
            order = torch.randperm(self.n_samples, generator=_stream(s.seed, ORDER_STREAM, epoch))
            if position == 0:
                self._epoch_losses = {}
            start = time.perf_counter()
            condition, target = sample(int(order[position]))
            condition = torch.as_tensor(np.asarray(condition, np.float32))[None]
            target = torch.as_tensor(np.asarray(target, np.float32))[None]
            condition, target = crop_pair(condition, target, s.crop, _stream(s.seed, CROP_STREAM, self.step))
            lr = s.learning_rate * s.lr_factor(self.step, self.total_steps)
            for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
                group["lr"] = lr
            losses = train_step(self.generator, self.discriminator, self.opt_g, self.opt_d,
                                condition.to(self.device), target.to(self.device), s.weights, s.discriminator_loss)
            self.seconds += time.perf_counter() - start
            for k, v in losses.items():
                self._epoch_losses[k] = self._epoch_losses.get(k, 0.0) + v
            self.step += 1
            if on_step:
                on_step(self.step, losses["g"])
            if self.step % self.n_samples == 0:
                self._end_epoch(validate)
                if on_epoch:
                    on_epoch(self)
            if should_stop() and self.step < self.total_steps:
                return False
        return True

    def _end_epoch(self, validate) -> None:
        record = {"epoch": self.epoch, "step": self.step}
        record.update({k: v / self.n_samples for k, v in self._epoch_losses.items()})
        val = float(validate(self.generator)) if validate else float(record["g_l1"])
        record["val"] = val
        self.history.append(record)
        if val < self.best["val"]:
            self.best = {"epoch": self.epoch, "step": self.step, "val": val}
            self.best_state = copy.deepcopy(self.generator.state_dict())

    def best_generator_state(self) -> dict:
        """The kept weights (lowest validation value), on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.best_state.items()}

    def state_dict(self) -> dict:
        """Everything ``load_state_dict`` needs to continue exactly (plain containers and tensors)."""
        cpu = lambda sd: {k: v.detach().cpu().clone() for k, v in sd.items()}  # noqa: E731
        return {
            "generator": cpu(self.generator.state_dict()), "discriminator": cpu(self.discriminator.state_dict()),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "step": self.step, "history": copy.deepcopy(self.history), "best": dict(self.best),
            "best_state": self.best_generator_state(), "seconds": self.seconds,
            "epoch_losses": dict(self._epoch_losses), "settings": asdict(self.settings),
            "n_samples": self.n_samples,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["n_samples"]) != self.n_samples:
            raise ParameterError(f"the checkpoint was trained on {state['n_samples']} samples per epoch, "
                                 f"this run has {self.n_samples}: resume with the same training frames")
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}
        self.seconds = float(state["seconds"])
        self._epoch_losses = dict(state["epoch_losses"])

    def summary(self) -> dict:
        return {"steps": self.step, "epochs": self.epoch, "seconds": round(self.seconds, 3),
                "steps_per_second": self.step / self.seconds if self.seconds else None,
                "best_epoch": self.best["epoch"], "best_val": self.best["val"], "history": copy.deepcopy(self.history)}
