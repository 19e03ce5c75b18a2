"""``dancekit train-unet``: train the DanceCam residual U-Net on simulated videos (Bialek et al. 2024).

Parses options, opens the videos (``dancekit.io.training_videos``), builds the network
(``dancekit.unet``), runs ``unet.training.Trainer`` and writes the checkpoint after every epoch
(``dancekit.io.checkpoint``). Ctrl-C (SIGTERM) stops after the current step, saves, and exits
130 (143), so a preempted cluster job loses at most one step.
Under ``torchrun --nproc_per_node N`` the same command trains with DistributedDataParallel.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import contextlib
import logging
import secrets
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dancekit.commands import options as opt
from dancekit.commands.runtime import cli_command, log, report_error, stderr_is_terminal
from dancekit.errors import ParameterError


class Architecture(str, Enum):
    small = "small"
    paper = "paper"


class Schedule(str, Enum):
    plateau = "plateau"
    cosine = "cosine"


class Inverse(str, Enum):
    algebraic = "algebraic"
    unbiased = "unbiased"


ModelOutput = Annotated[str, typer.Option("--output", "-o", help="Model checkpoint to write (rewritten after every epoch).")]
Data = Annotated[list[str], typer.Argument(help="Training videos (simulate-video products with TRUTH) or folders of them.",
                                           show_default=False)]


@cli_command
def train_unet(
    data: Data,
    output: ModelOutput,
    config: opt.Config = "c2pu",
    overrides: opt.Set = None,
    context: Annotated[Optional[int], typer.Option("--context", help="Frames per sample (default: config unet.context).")] = None,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Side of the training crops in pixels (default: config unet.tile).")] = None,
    architecture: Annotated[Optional[Architecture], typer.Option("--architecture", help="Network size (default: config unet.architecture): small trains on a CPU, paper is DanceCam's 28 M parameters.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs to reach (an epoch visits every training video once); default 10.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Optimisation steps to reach, instead of --epochs.")] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Samples per step, over all processes [default: 4].")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the training saved in this checkpoint.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of the videos kept for validation and model selection.")] = 0.1,
    inverse: Annotated[Optional[Inverse], typer.Option("--inverse", help="Anscombe inverse stored with the model [default: algebraic, exact for noise-free targets].")] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Epochs without a lower training loss before the learning rate drops 10x [default: 10, PyTorch's]; raise it when epochs are a few steps long.")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option("--schedule", help="Learning rate: plateau (10x down when the epoch loss stalls, the paper) or cosine (a half cosine to 1 % at the last step) [default: plateau].")] = None,
    flux_weight: Annotated[Optional[float], typer.Option("--flux-weight", help="Weight of the flux-preserving term (block sums in photon-noise units) beside the Anscombe MSE [default: 0, the paper's loss].")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes reading and augmenting samples.")] = 0,
    device: opt.Device = opt.DeviceChoice.auto,
    seed: opt.Seed = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
):
    """Train the turbulence-removal U-Net on simulated videos and their TRUTH.

    Samples are random windows of --context frames and --tile crops, turned by rot90/flips;
    background removed and Anscombe-transformed like at inference; deep-supervision MSE (plus, with
    --flux-weight, a term on block-sum fluxes), Adam (lr 1e-3), learning rate reduced on plateau
    or along a cosine. The model kept is the one with the smallest mean
    |delta mag| of matched validation stars. The checkpoint (-o) is rewritten after every epoch
    with everything needed to --resume exactly; Ctrl-C saves it and exits 130.

    Example: dancekit train-unet sims/ --epochs 20 --batch 4 --seed 1 -o model.pt
    """
    from dancekit.device import resolve_device
    from dancekit.io.checkpoint import read_training_state
    from dancekit.io.config import load_config
    from dancekit.io.config_schema import VideoConfig
    from dancekit.io.fits_out import check_output
    from dancekit.io.training_videos import find_videos
    from dancekit.unet.config import UNetConfig
    from dancekit.unet.data import INIT_STREAM, TrainingSamples, ValidationSamples, child_seed, split_sources
    from dancekit.unet.model import build_unet, count_parameters
    from dancekit.unet.training import Trainer, TrainingSettings, init_distributed

    opt.check_json_with_output(as_json, output)
    if output == "-":
        raise ParameterError("a model file cannot go to standard output; give a file name", source="-o")
    if epochs is not None and steps is not None:
        raise ParameterError("give --epochs or --steps, not both", source="--epochs/--steps")
    cfg = load_config(config, VideoConfig, overrides)
    state = read_training_state(resume) if resume else None
    same_file = bool(resume) and Path(resume).resolve() == Path(output).resolve()
    check_output(output, overwrite or same_file)

    stored = state["resume"]["settings"] if state else {}
    model_config = (UNetConfig.from_dict(state["model_config"]) if state
                    else _architecture(UNetConfig, (architecture.value if architecture else cfg.unet.architecture),
                                       context or cfg.unet.context))
    if state and architecture is not None:
        log.warning("--architecture is ignored on --resume: the checkpoint's network is used")
    if seed is None:
        seed = stored.get("seed", secrets.randbits(31))
    settings = TrainingSettings(
        context=_pick(context, stored.get("context"), model_config.in_channels),
        tile=_pick(tile, stored.get("tile"), cfg.unet.tile),
        batch=_pick(batch, stored.get("batch"), 4),
        **_target(epochs, steps, stored),
        seed=seed,
        inverse=inverse.value if inverse else stored.get("inverse", "algebraic"),
        plateau_patience=_pick(patience, stored.get("plateau_patience"), 10),
        schedule=_pick(schedule.value if schedule else None, stored.get("schedule"), "plateau"),
        flux_weight=float(_pick(flux_weight, stored.get("flux_weight"), 0.0)),
        workers=workers,
    )
    torch_device = resolve_device(device)
    distributed = init_distributed(torch_device)
    if distributed.active:
        import os

        if torch_device.type == "cuda":
            import torch

            torch_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(torch_device)
        if distributed.rank:
            log.setLevel(logging.ERROR)
    lead = distributed.rank == 0

    sources = _open_all(find_videos(data), cfg.camera.gain, settings, model_config.total_stride)
    train_sources, val_sources = split_sources(sources, val_fraction, settings.seed)
    model = build_unet(model_config, seed=child_seed(settings.seed, INIT_STREAM))
    trainer = Trainer(model, TrainingSamples(train_sources, settings.context, settings.tile, settings.seed),
                      ValidationSamples(val_sources, settings.context, settings.tile) if val_sources else None,
                      settings, device=torch_device, distributed=distributed)
    if state:
        trainer.load_state_dict(state["resume"], state["state_dict"])
        log.info("resuming %s at step %d of %d", resume, trainer.step, trainer.total_steps)
    log.info("training %s U-Net (%d parameters, %d frames) on %d videos (+%d for validation), %d steps of %d "
             "samples on %s, seed %d", "paper" if model_config.n_stages == 7 else "small", count_parameters(model),
             settings.context, len(train_sources), len(val_sources), trainer.total_steps, settings.batch,
             torch_device, settings.seed)

    meta = {"instrument": cfg.instrument, "config": _config_dict(cfg), "config_hash": _config_hash(cfg),
            "data": {"train": [s.name for s in train_sources], "val": [s.name for s in val_sources]},
            "domain": _training_domain(sources, settings.context, cfg.instrument)}
    written = {"any": same_file or overwrite, "step": None}

    def save() -> None:
        if lead:
            from dancekit.io.checkpoint import write_checkpoint

            write_checkpoint(_checkpoint(trainer, meta), output, overwrite=written["any"])
            written.update(any=True, step=trainer.step)

    def on_epoch(t: Trainer) -> None:
        _log_epoch(t)
        save()

    with _stop_on_signal() as (stop, signalled), _progress_bar(trainer.total_steps, trainer.step, lead) as on_step:
        finished = trainer.run(should_stop=stop, on_step=on_step, on_epoch=on_epoch)
    if not finished:
        save()
        if lead:
            log.error("interrupted at step %d of %d; the training state is saved in %s (continue with --resume %s)",
                      trainer.step, trainer.total_steps, output, output)
        return signalled["code"] or 130
    if written["step"] != trainer.step:
        save()  # e.g. resumed a run that had already reached its target
    summary = trainer.summary()
    if lead:
        log.info("done: %d steps in %.1f s (%.2f samples/s); kept epoch %s (mean |dmag| %.4f, val mse %.4g) in %s",
                 trainer.step, summary["seconds"], summary["samples"] / max(summary["seconds"], 1e-9),
                 summary["best_epoch"], summary["best_mean_abs_dmag"], summary["best_val_mse"], output)
        if as_json:
            opt.print_json(_json_safe({"command": "train-unet", "output": output, "steps": trainer.step,
                            "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
                            "best_mean_abs_dmag": summary["best_mean_abs_dmag"], "best_val_mse": summary["best_val_mse"],
                            "final_train_loss": summary["final_train_loss"], "seed": settings.seed,
                            "history": summary["history"]}))
    return 0


def _open_all(paths: list, gain: float, settings, total_stride: int) -> list:
    """Check every video before training; report each unusable one (one line each), then stop."""
    from dancekit.errors import DancekitError, InputError
    from dancekit.io.training_videos import open_training_video
    from dancekit.unet.data import check_sources

    check_sources([], settings.context, settings.tile, total_stride)  # the options themselves
    sources, bad = [], 0
    for path in paths:
        try:
            source = open_training_video(path, gain)
            check_sources([source], settings.context, settings.tile, total_stride)
            sources.append(source)
        except DancekitError as exc:
            bad += 1
            if len(paths) == 1:
                raise
            report_error(str(exc.with_source(path)))
    if bad:
        raise InputError(f"{bad} of {len(paths)} videos cannot be used (see above); fix or leave them out")
    return sources


def _training_domain(sources: list, context: int, instrument: str) -> dict:
    """What infer-tiles checks videos against (``unet.domain``), measured on the training videos."""
    from dancekit.io.video import video_facts
    from dancekit.unet.domain import domain_of_sources

    facts = [video_facts(s.name) for s in sources]
    return domain_of_sources(sources, facts, context, f"train-unet on {len(sources)} videos", instrument).to_dict()


def _json_safe(value: Any) -> Any:
    """NaN (no star matched yet) as null: strict JSON readers reject NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _architecture(unet_config, name: str, context: int):
    if name == "paper":
        return unet_config.paper(in_channels=context)
    if name == "small":
        return unet_config().with_changes(in_channels=context)
    raise ParameterError(f"unknown architecture '{name}' (allowed: small, paper)", source="unet.architecture")


def _target(epochs: Optional[int], steps: Optional[int], stored: dict) -> dict:
    """--epochs or --steps; on resume without either, the checkpoint's target; else 10 epochs."""
    if epochs is not None or steps is not None:
        return {"epochs": epochs, "steps": steps}
    if stored:
        return {"epochs": stored.get("epochs"), "steps": stored.get("steps")}
    return {"epochs": 10, "steps": None}


def _pick(given: Any, stored: Any, default: Any) -> Any:
    """An option given on the command line, else the checkpoint's value on resume, else the default."""
    if given is not None:
        return given
    return stored if stored is not None else default


def _config_dict(cfg) -> dict:
    from dancekit.io.config import to_dict

    return to_dict(cfg)


def _config_hash(cfg) -> str:
    from dancekit.io.config import config_hash

    return config_hash(cfg)


def _checkpoint(trainer, meta: dict) -> dict:
    """The model file: the best weights and what is needed to use them, plus the training state."""
    from dancekit import __version__
    from dancekit.io.checkpoint import FORMAT, FORMAT_VERSION

    training = trainer.summary()
    training["data"] = meta["data"]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dancekit_version": __version__,
        "model_config": trainer.model.config.to_dict(), "state_dict": trainer.best_state,
        "context": trainer.settings.context, "tile": trainer.settings.tile, "inverse": trainer.settings.inverse,
        "normalisation": {"background": "per-window median, iterated 3-sigma MAD clipping",
                          "transform": "anscombe", "inverse": trainer.settings.inverse, "units": "electron"},
        "instrument": meta["instrument"], "config": meta["config"], "config_hash": meta["config_hash"],
        "training": training, "domain": meta["domain"], "resume": trainer.state_dict(),
    }


def _log_epoch(trainer) -> None:
    record = trainer.history[-1]
    best = " [kept]" if trainer.best["step"] == record["step"] else ""
    extra = ""
    if "val_mse" in record:
        extra = f", val mse {record['val_mse']:.4g}, val flux {record.get('val_flux', float('nan')):.4g}, val |dmag| {record['mean_abs_dmag']:.4f} ({record['matched_stars']} stars)"
    log.info("epoch %d (step %d/%d): train loss %.4g%s, lr %.2g%s", record["epoch"], record["step"],
             trainer.total_steps, record["train_loss"], extra, record["lr"], best)


@contextlib.contextmanager
def _stop_on_signal():
    """Ctrl-C (SIGINT) or SIGTERM (a batch scheduler's notice) asks the loop to stop after the
    current step, then it saves; a second Ctrl-C aborts without saving. Yields the stop test and
    a dict whose 'code' is the exit code to use (130 or 143)."""
    requested = {"code": 0}

    def handler(signum, frame):
        if requested["code"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested["code"] = 130 if signum == signal.SIGINT else 143
        log.warning("%s: stopping after this step and saving (Ctrl-C again to abort without saving)",
                    "Ctrl-C" if signum == signal.SIGINT else "SIGTERM")

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield (lambda: False), requested
        return
    try:
        yield (lambda: bool(requested["code"])), requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _progress_bar(total: int, done: int, lead: bool):
    """A bar with the step loss and the ETA on stderr, when it is a terminal and logging is on."""
    if not (lead and stderr_is_terminal() and log.isEnabledFor(logging.INFO)):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("train-unet"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("train", total=total, completed=done, loss="-")
        yield lambda step, loss: bar.update(task, completed=step, loss=f"{loss:.4g}")


def register(app: typer.Typer) -> None:
    app.command("train-unet")(train_unet)
