"""Training the residual U-Net on simulated videos (Bialek et al. 2024 §2.2.2, §3.1).

One optimisation step: a batch of augmented samples (``data.TrainingSamples``) goes through the
pixel path shared with inference (``preprocess.network_input`` / ``network_target``: per-window
3-sigma MAD-clipped background removed, Anscombe transform of frames and truth), the network,
and the deep-supervision MSE (``losses.deep_supervision_mse``: weights halving per level,
normalised). Adam, lr 1e-3, betas (0.9, 0.999) (§2.2.2: Kingma & Ba's defaults);
``ReduceLROnPlateau`` on the epoch's mean training loss (§2.2.2: "when the training MSE loss
plateaued"; factor and patience are PyTorch's defaults, the paper gives none).

After every epoch the fixed validation samples are inferred, brought back to electrons with the
model's Anscombe inverse, and judged like the paper's SExtractor run: stars detected on truth and
output are matched and the model kept is the one with the smallest mean |Δmag| of matched stars,
pooled over the validation set (``metrics.evaluate.evaluate_image``); the validation MSE is logged
beside it and breaks ties (and decides when no star was matched).

Resumable: the state (weights, Adam, scheduler, RNG, position, running epoch loss, history) is
plain tensors and numbers; sampling is counter-based (``data``), so a run stopped after any step
and resumed from ``state_dict()`` makes the same losses as one that never stopped (bit for bit
on the CPU). Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``; each of the
W processes takes B / W samples of every global batch of B, so the gradient is that of the same
batch on one process.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from dancekit.errors import InputError, ParameterError
from dancekit.unet.data import TrainingSamples, ValidationSamples
from dancekit.unet.losses import deep_supervision_mse, flux_consistency
from dancekit.unet.model import ResidualEncoderUNet
from dancekit.unet.preprocess import INVERSES, network_input, network_output_to_electrons, network_target


SCHEDULES = ("plateau", "cosine")
COSINE_FLOOR = 0.01  # the cosine schedule ends at this fraction of the initial learning rate


def cosine_learning_rate(initial: float, step: int, total: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based) of ``total``: a half cosine from
    ``initial`` to ``COSINE_FLOOR * initial`` (Loshchilov & Hutter 2017, one cycle, no restart).
    A function of the step alone, so a resumed run follows the same curve."""
    progress = min(1.0, step / max(1, total - 1))
    return initial * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainingSettings:
    """What a run is; stored in checkpoints and checked again on resume."""

    context: int                       # frames per sample (the network's input channels)
    tile: int                          # side of the square training crop [pixels]
    batch: int = 4                     # samples per optimisation step (all processes together)
    epochs: int | None = None          # epochs to reach (one visit of every training video each)
    steps: int | None = None           # optimisation steps to reach (instead of epochs)
    seed: int = 0                      # root of every random stream (data.child_seed)
    learning_rate: float = 1e-3        # Adam (§2.2.2)
    betas: tuple[float, float] = (0.9, 0.999)
    plateau_factor: float = 0.1        # ReduceLROnPlateau (PyTorch defaults)
    plateau_patience: int = 10         # epochs without improvement of the training loss
    inverse: str = "algebraic"         # Anscombe inverse used for validation (preprocess.INVERSES)
    detection_threshold: float = 5.0   # x noise rms, star detection for the |Δmag| criterion
    workers: int = 0                   # DataLoader processes reading samples
    schedule: str = "plateau"          # learning rate: "plateau" (ReduceLROnPlateau) or "cosine" (to 1 % at the last step)
    flux_weight: float = 0.0           # weight of losses.flux_consistency beside the deep-supervision MSE

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ParameterError("give exactly one of epochs or steps", source="--epochs/--steps")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ParameterError(f"{name} must be a positive integer, got {value!r}", source=f"--{name}")
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise ParameterError(f"batch must be a positive integer, got {self.batch!r}", source="--batch")
        if self.inverse not in INVERSES:
            raise ParameterError(f"inverse must be one of {INVERSES}, got {self.inverse!r}", source="--inverse")
        if not (isinstance(self.plateau_patience, int) and self.plateau_patience >= 1):
            raise ParameterError(f"patience must be a positive number of epochs, got {self.plateau_patience!r}",
                                 source="--patience")
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise ParameterError(f"workers must be >= 0, got {self.workers!r}", source="--workers")
        if self.schedule not in SCHEDULES:
            raise ParameterError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}", source="--schedule")
        if not (isinstance(self.flux_weight, (int, float)) and self.flux_weight >= 0):
            raise ParameterError(f"flux weight must be >= 0, got {self.flux_weight!r}", source="--flux-weight")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun job described by WORLD_SIZE / RANK (gloo on the CPU, nccl on GPUs);
    a plain single process when they are absent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


class Trainer:
    """The training loop. ``run()`` trains until the target; ``state_dict()`` resumes it."""

    def __init__(self, model: ResidualEncoderUNet, train: TrainingSamples, val: ValidationSamples | None,
                 settings: TrainingSettings, *, device: str | torch.device = "cpu",
                 distributed: Distributed | None = None):
        self.settings, self.train, self.val = settings, train, val
        self.device = torch.device(device)
        self.distributed = distributed or Distributed()
        if settings.batch % self.distributed.world_size:
            raise ParameterError(f"batch {settings.batch} must be a multiple of the {self.distributed.world_size} "
                                 "processes", source="--batch")
        if model.config.in_channels != settings.context:
            raise ParameterError(f"the model takes {model.config.in_channels} frames but the context is "
                                 f"{settings.context}", source="--context")
        self.model = model.to(self.device)
        self.model.deep_supervision = True
        self.network: torch.nn.Module = self.model
        if self.distributed.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.learning_rate, betas=settings.betas)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience)
        self.steps_per_epoch = max(1, math.ceil(len(train) / settings.batch))
        self.total_steps = settings.steps or settings.epochs * self.steps_per_epoch
        self.step = 0                    # optimisation steps done
        self.epoch_loss = [0.0, 0]       # running sum and count of this epoch's step losses
        self.step_losses: list[float] = []
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] = {"epoch": None, "step": 0, "mean_abs_dmag": math.nan, "val_mse": math.nan}
        self.best_state = _cpu_copy(self.model.state_dict())
        self.seconds = 0.0

    # ------------------------------------------------------------------ one step
    def train_step(self, frames: torch.Tensor, truth: torch.Tensor) -> float:
        """One Adam step on frames (b, context, tile, tile) and truth (b, tile, tile) in electrons;
        returns the batch loss (the mean over all processes)."""
        self.network.train()
        inputs, level = network_input(frames.to(self.device, non_blocking=True))  # (b, C, t, t) Anscombe, (b,) e-
        truth = truth.to(self.device, non_blocking=True)                         # (b, t, t) e- per frame
        target = network_target(truth)                                           # (b, 1, t, t) Anscombe
        if self.settings.schedule == "cosine":
            for group in self.optimizer.param_groups:
                group["lr"] = cosine_learning_rate(self.settings.learning_rate, self.step, self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.network(inputs), target, truth, level)
        loss.backward()
        self.optimizer.step()
        value = loss.detach()
        if self.distributed.active:
            dist.all_reduce(value)
            value = value / self.distributed.world_size
        return float(value)

    def _loss(self, outputs, target: torch.Tensor, truth: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Deep-supervision MSE on Anscombe values, plus ``flux_weight`` x the flux term on the
        full-resolution output (the training loss and the validation loss alike)."""
        loss = deep_supervision_mse(outputs, target)
        if self.settings.flux_weight:
            full = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
            loss = loss + self.settings.flux_weight * flux_consistency(full, truth, level)
        return loss

    # ------------------------------------------------------------------ the loop
    def run(self, *, should_stop: Callable[[], bool] = lambda: False,
            on_step: Callable[[int, float], None] | None = None,
            on_epoch: Callable[["Trainer"], None] | None = None) -> bool:
        """Train until ``total_steps``; True when done, False when ``should_stop()`` said stop
        (checked after every step, on every process). ``on_epoch`` runs after each validation."""
        started = time.perf_counter()
        try:
            while self.step < self.total_steps:
                epoch, first = divmod(self.step, self.steps_per_epoch)
                last = min(self.steps_per_epoch, first + self.total_steps - self.step)
                for frames, truth in self._batches(epoch, first, last):
                    loss = self.train_step(frames, truth)
                    self.step += 1
                    self.step_losses.append(loss)
                    self.epoch_loss[0] += loss
                    self.epoch_loss[1] += 1
                    if on_step:
                        on_step(self.step, loss)
                    epoch_done = self.step % self.steps_per_epoch == 0
                    if epoch_done or self.step == self.total_steps:
                        self._end_of_epoch(epoch, epoch_done)
                        if on_epoch:
                            on_epoch(self)
                    if self._stop_requested(should_stop):
                        return self.step >= self.total_steps
        finally:
            self.seconds += time.perf_counter() - started
        return True

    def _batches(self, epoch: int, first: int, last: int):
        """This process's share of steps first..last-1 of ``epoch``: (frames, truth) batches."""
        b = self.settings.batch // self.distributed.world_size
        offset = self.distributed.rank * b
        indices = [s * self.settings.batch + offset + j for s in range(first, last) for j in range(b)]
        self.train.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(self.train, batch_size=b, sampler=indices,
                                             num_workers=self.settings.workers,
                                             pin_memory=self.device.type == "cuda")
        return iter(loader)

    def _stop_requested(self, should_stop: Callable[[], bool]) -> bool:
        flag = bool(should_stop())
        if self.distributed.active:
            tensor = torch.tensor([int(flag)], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag

    def _end_of_epoch(self, epoch: int, complete: bool) -> None:
        """Validate, keep the best model; step the scheduler after a complete epoch."""
        train_loss = self.epoch_loss[0] / max(1, self.epoch_loss[1])
        record = {"epoch": epoch + 1, "step": self.step, "train_loss": train_loss,
                  "lr": float(self.optimizer.param_groups[0]["lr"])}
        if self.distributed.rank == 0:
            record.update(self.validate() if self.val is not None and len(self.val) else {})
            self._select(record)
        if complete and self.settings.schedule == "plateau":
            self.scheduler.step(train_loss)
            self.epoch_loss = [0.0, 0]
        self.history.append(record)

    def _select(self, record: dict[str, float]) -> None:
        if self.val is None or not len(self.val):
            better = True  # no validation set: keep the latest model
        else:
            better = self.best["epoch"] is None or _selection_key(record) < _selection_key(self.best)
        if better:
            self.best = {"epoch": record["epoch"], "step": record["step"],
                         "mean_abs_dmag": record.get("mean_abs_dmag", math.nan),
                         "val_mse": record.get("val_mse", math.nan)}
            self.best_state = _cpu_copy(self.model.state_dict())

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation MSE (deep-supervision loss), flux term, and the mean |Δmag| of matched stars, pooled."""
        from dancekit.metrics.evaluate import evaluate_image

        self.model.eval()
        loader = torch.utils.data.DataLoader(self.val, batch_size=self.settings.batch,
                                             num_workers=self.settings.workers)
        total, flux, count, residuals, failed = 0.0, 0.0, 0, [], 0
        for frames, truth in loader:
            inputs, level = network_input(frames.to(self.device))
            outputs = self.model(inputs)
            total += float(deep_supervision_mse(outputs, network_target(truth.to(self.device)))) * len(frames)
            flux += float(flux_consistency(outputs[0], truth.to(self.device), level)) * len(frames)
            count += len(frames)
            images = network_output_to_electrons(outputs[0], self.settings.inverse).float().cpu().numpy()
            for image, reference in zip(images, truth.numpy()):
                try:
                    stars = evaluate_image(image, reference, self.settings.detection_threshold).stars
                except Exception:  # sep gives up on some early, noisy outputs: counted, not fatal
                    failed += 1
                    continue
                residuals.append(np.abs(stars["mag_residual"]))
        self.model.train()
        pooled = np.concatenate(residuals) if residuals else np.zeros(0)
        pooled = pooled[np.isfinite(pooled)]
        return {"val_mse": total / max(count, 1), "val_flux": flux / max(count, 1),
                "mean_abs_dmag": float(pooled.mean()) if pooled.size else math.nan,
                "matched_stars": int(pooled.size), "failed_evaluations": failed}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (plain tensors, numbers, strings, lists)."""
        state = {
            "step": self.step, "steps_per_epoch": self.steps_per_epoch,
            "epoch_loss": list(self.epoch_loss), "step_losses": list(self.step_losses),
            "history": copy.deepcopy(self.history), "best": dict(self.best), "seconds": self.seconds,
            "state_dict": _cpu_copy(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(), "settings": self.settings.to_dict(),
            "n_train": len(self.train), "n_val": len(self.val) if self.val is not None else 0,
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any], best_state: dict[str, torch.Tensor]) -> None:
        """Continue from ``state_dict()`` output and the best weights kept so far."""
        check_resumable(state, self.settings, len(self.train), len(self.val) if self.val is not None else 0)
        try:
            self.model.load_state_dict(state["state_dict"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.step = int(state["step"])
            self.epoch_loss = [float(state["epoch_loss"][0]), int(state["epoch_loss"][1])]
            self.step_losses = [float(v) for v in state["step_losses"]]
            self.history = copy.deepcopy(list(state["history"]))
            self.best = dict(state["best"])
            self.seconds = float(state["seconds"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise InputError(f"checkpoint's training state is damaged ({type(exc).__name__}: {exc})") from None
        self.best_state = _cpu_copy(best_state)

    def summary(self) -> dict[str, Any]:
        """The training summary stored in the checkpoint (``training``)."""
        return {
            "steps": self.step, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.step / self.steps_per_epoch, "samples": self.step * self.settings.batch,
            "batch": self.settings.batch, "processes": self.distributed.world_size,
            "train_videos": len(self.train), "val_videos": len(self.val) if self.val is not None else 0,
            "selection": ("smallest mean |dmag| of matched validation stars (then val_mse)"
                          if self.val is not None and len(self.val) else "last model (no validation set)"),
            "best_epoch": self.best["epoch"], "best_step": self.best["step"],
            "best_mean_abs_dmag": self.best["mean_abs_dmag"], "best_val_mse": self.best["val_mse"],
            "final_train_loss": self.step_losses[-1] if self.step_losses else math.nan,
            "seconds": self.seconds, "history": copy.deepcopy(self.history),
            "settings": self.settings.to_dict(),
        }


# what must not change between a run and its resumption (the target epochs/steps may)
_FIXED = ("context", "tile", "batch", "seed", "learning_rate", "betas", "plateau_factor", "plateau_patience", "inverse",
          "schedule", "flux_weight")
# settings added after checkpoints were first written: what a checkpoint without them was trained with
_FIXED_DEFAULTS = {"schedule": "plateau", "flux_weight": 0.0}


def check_resumable(state: Any, settings: TrainingSettings, n_train: int, n_val: int) -> None:
    """Refuse a training state that this run cannot continue exactly."""
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise InputError("not a dancekit training state (no 'settings' in its 'resume' section)")
    stored, now = state["settings"], settings.to_dict()
    for key in _FIXED:
        if stored.get(key, _FIXED_DEFAULTS.get(key)) != now[key]:
            raise ParameterError(f"the checkpoint was trained with {key} = {stored.get(key)!r}, this run has "
                                 f"{now[key]!r}; resume with the same value", source="--resume")
    if (state.get("n_train"), state.get("n_val")) != (n_train, n_val):
        raise ParameterError(f"the checkpoint was trained on {state.get('n_train')} + {state.get('n_val')} "
                             f"videos (training + validation), this run has {n_train} + {n_val}; resume "
                             "with the same data and --val-fraction", source="--resume")


def _selection_key(record: dict[str, Any]) -> tuple[int, float]:
    """Smaller is better: any finite |Δmag| beats none; then |Δmag|; without one, the MSE."""
    dmag = record.get("mean_abs_dmag", math.nan)
    if dmag is not None and math.isfinite(dmag):
        return (0, float(dmag))
    mse = record.get("val_mse", math.nan)
    return (1, float(mse) if mse is not None and math.isfinite(mse) else math.inf)


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU copies that keep the model's aliases shared (see ``model.py``), so saving stores each
    weight once."""
    copies: dict[tuple, torch.Tensor] = {}
    out = {}
    for key, value in state.items():
        identity = (value.device, value.data_ptr(), tuple(value.shape), value.stride(), value.dtype)
        if identity not in copies:
            copies[identity] = value.detach().to("cpu", copy=True)
        out[key] = copies[identity]
    return out
