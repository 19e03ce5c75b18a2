"""``dancekit train-zeropoint``: train the learned zero-point correction (AZP-RC) on generated exposures.

Generates exposures with a known zero point from two surveys (``photometry.exposures``), runs the
classical robust fit on each (``photometry.learned_data.classical_calibration``), trains the
network to predict ZP_true − ZP_classical (``photometry.learned_training``), and writes the model
file (a plain dict, ``torch.load(weights_only=True)``) atomically.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import secrets
import time
from typing import Annotated, Optional

import numpy as np
import typer

from dancekit.commands import options as opt
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import InputError, ParameterError

DATA_STREAM, SPLIT_STREAM, INIT_STREAM, ORDER_STREAM = 0, 1, 2, 3


@cli_command
def train_zeropoint(
    output: Annotated[str, typer.Option("--output", "-o", help="Model file to write (.pt).")],
    exposures: Annotated[int, typer.Option("--exposures", help="Exposures to generate (half from each survey).")] = 400,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training exposures.")] = 15,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Exposures per step.")] = 16,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="Adam step size.")] = 1e-3,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of the exposures held out to measure the model against the classical fit.")] = 0.2,
    adversarial_weight: Annotated[float, typer.Option("--adversarial-weight", help="Weight of the domain-adversarial term between the two surveys (seed 003: 0.01; 0 = off).")] = 0.0,
    device: opt.Device = opt.DeviceChoice.auto,
    seed: opt.Seed = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
):
    """Train the learned zero-point correction on generated exposures with a known zero point.

    Each exposure (256x256, two surveys with their own extinction, cloud statistics, flat-field
    residuals and seeing) is calibrated by the classical robust fit with the zeropoint command's
    defaults; the network (CNN on the image, bidirectional GRU with attention on the matched
    stars, MLP on airmass/temperature/humidity/wind) learns ZP_true - ZP_classical with MSE +
    0.1 x ranking penalty. A held-out share measures it against the classical fit: the RMSE of
    both is logged and stored in the model file, with the training domain (telemetry, magnitude,
    colour, seeing and pixel-scale ranges) that zeropoint --model checks every exposure against.
    Use the file with: dancekit zeropoint --model.

    Example: dancekit train-zeropoint --exposures 400 --epochs 15 --seed 1 -o zp_model.pt
    """
    import torch

    from dancekit.device import resolve_device
    from dancekit.io.checkpoint import write_checkpoint
    from dancekit.io.fits_out import check_output
    from dancekit.photometry.exposures import generate_exposures
    from dancekit.photometry.learned import count_parameters
    from dancekit.photometry.learned_data import CLASSICAL_SETTINGS, classical_calibration, exposure_inputs, stack_inputs
    from dancekit.photometry.learned_training import (
        Normalisation, TrainingSettings, model_from_checkpoint, new_model, paired_rmse_verdict, predict, train_model,
        zeropoint_checkpoint,
    )

    opt.check_json_with_output(as_json, output)
    if output == "-":
        raise ParameterError("a model file cannot go to standard output; give a file name", source="-o")
    if exposures < 10:
        raise ParameterError(f"--exposures must be >= 10, got {exposures}", source="--exposures")
    if not 0.0 < val_fraction < 1.0:
        raise ParameterError(f"--val-fraction must be in (0, 1), got {val_fraction}", source="--val-fraction")
    settings_check = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                          adversarial_weight=adversarial_weight)
    try:
        TrainingSettings(**settings_check)
    except ParameterError as exc:
        raise ParameterError(exc.message, source="--epochs/--batch-size/--learning-rate/--adversarial-weight") from None
    check_output(output, overwrite)
    torch_device = resolve_device(device)
    if seed is None:
        seed = secrets.randbits(31)
    streams = np.random.SeedSequence(seed).spawn(4)

    start = time.perf_counter()
    generated = generate_exposures(exposures, streams[DATA_STREAM])
    items, deltas, surveys, zp_err = [], [], [], []
    for exposure in generated:
        calibration = classical_calibration(exposure)
        if calibration is None:
            continue
        items.append(exposure_inputs(exposure.image, calibration, exposure.telemetry))
        deltas.append(exposure.zeropoint_true - calibration.zeropoint.zp)
        surveys.append(exposure.survey)
        zp_err.append(calibration.zeropoint.zp_err)
    n_failed = exposures - len(items)
    log.info("generated and calibrated %d exposures in %.1f s (%d without a classical zero point left out)",
             exposures, time.perf_counter() - start, n_failed)
    if len(items) < 10:
        raise InputError(f"only {len(items)} exposures have a classical zero point; generate more (--exposures)")
    inputs, deltas, surveys = stack_inputs(items), np.array(deltas), np.array(surveys)
    order = np.random.default_rng(streams[SPLIT_STREAM]).permutation(len(items))
    n_val = max(2, int(round(val_fraction * len(items))))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    train_inputs, val_inputs = inputs.subset(train), inputs.subset(val)
    normalisation = Normalisation.fit(train_inputs, deltas[train])
    config = {"domain_classes": 2 if adversarial_weight > 0 else 0}
    model = new_model(config, int(streams[INIT_STREAM].generate_state(1)[0]))
    settings = TrainingSettings(**settings_check, seed=int(streams[ORDER_STREAM].generate_state(1)[0]))
    log.info("training AZP-RC (%d parameters) on %d exposures (+%d held out), %d epochs, on %s, seed %d",
             count_parameters(model), len(train), len(val), epochs, torch_device, seed)

    def on_epoch(record):
        log.info("epoch %d: loss %.4f, train RMSE %.4f mag (%.1f s)", record["epoch"], record["loss"],
                 np.sqrt(record["mse_mag2"]), record["seconds"])

    history = train_model(model, train_inputs, deltas[train], normalisation, settings, domains=surveys[train],
                          device=torch_device, on_epoch=on_epoch)
    model.cpu()
    corrected = deltas[val] - predict(model, val_inputs, normalisation)
    classical_rmse = float(np.sqrt(np.mean(deltas[val] ** 2)))
    learned_rmse = float(np.sqrt(np.mean(corrected**2)))
    verdict = {"better": "beats", "worse": "is worse than", "indistinguishable": "does not measurably beat"}[
        paired_rmse_verdict(corrected, deltas[val])]
    log.info("held-out RMSE of the zero point: classical %.4f mag, classical + learned correction %.4f mag "
             "(%d exposures): the learned correction %s the classical fit", classical_rmse, learned_rmse, len(val), verdict)
    summary = {"exposures": exposures, "calibrated": len(items), "train": len(train), "val": len(val), "seed": seed,
               "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
               "adversarial_weight": adversarial_weight, "val_rmse_classical_mag": classical_rmse,
               "val_rmse_learned_mag": learned_rmse, "verdict": verdict, "seconds": time.perf_counter() - start,
               "history": history, "data": "generated (dancekit.photometry.exposures, two surveys)"}
    checkpoint = zeropoint_checkpoint(model, normalisation, classical={**CLASSICAL_SETTINGS, "colour_term": "survey value"},
                                      training=summary)
    model_from_checkpoint(checkpoint)  # refuse to write what we could not read back
    write_checkpoint(checkpoint, output, overwrite)
    log.info("wrote %s", output)
    if as_json:
        opt.print_json({"command": "train-zeropoint", "output": output,
                        **{k: v for k, v in summary.items() if k != "history"}})
    return 0


def register(app: typer.Typer) -> None:
    app.command("train-zeropoint")(train_zeropoint)
