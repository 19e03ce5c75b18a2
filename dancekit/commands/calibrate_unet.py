"""``dancekit calibrate-unet``: measure a U-Net's flux calibration on held-out videos and store it."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from typing import Annotated

import typer

from dancekit.commands import options as opt
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import InputError, ParameterError


@cli_command
def calibrate_unet(
    model: Annotated[str, typer.Argument(help="The dancekit U-Net checkpoint to calibrate.", show_default=False)],
    videos: Annotated[list[str], typer.Argument(help="Held-out simulated videos (with TRUTH), or folders of them.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The calibrated checkpoint (may be MODEL itself with --overwrite).")],
    stride: Annotated[int, typer.Option("--stride", help="Frames between calibration windows.")] = 2,
    dihedral_mean: Annotated[bool, typer.Option("--dihedral-mean", help="Calibrate, and have infer-tiles run, the mean over the 8 rotations and flips of each tile (8x the compute).")] = False,
    domain_only: Annotated[bool, typer.Option("--domain-only", help="Only record the training domain measured on the videos; keep the model's flux calibration.")] = False,
    device: opt.Device = opt.DeviceChoice.auto,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
):
    """Measure E[true electrons | network output] of a U-Net and store it in the model.

    A U-Net trained with a mean-squared error on Anscombe-transformed targets predicts the mean
    of the transform, and inverting that mean algebraically loses flux wherever the network is
    uncertain, faint stars most. The calibration, measured on simulated videos the model was not
    trained on, replaces the inverse in infer-tiles (header ANSCINV = 'calibrated'). With
    --dihedral-mean the model is calibrated for, and infer-tiles then runs, the mean of the
    outputs over the 8 rotations and flips of each tile (header TTA = 'dihedral8').

    The model's training domain (instrument, pixel scale, exposure, noise and flux levels of
    the videos) is recorded too, or refreshed: infer-tiles compares every video with it.
    --domain-only records just that, e.g. for a model calibrated before dancekit recorded one.

    Example: dancekit calibrate-unet model.pt heldout/ -o model_calibrated.pt
    """
    if output == "-":
        raise ParameterError("a checkpoint cannot go to standard output; give a file", source="-o")
    if stride < 1:
        raise ParameterError(f"must be a positive integer, got {stride}", source="--stride")
    import os

    from dancekit.io.fits_out import check_output

    check_output(output, overwrite)
    import torch

    from dancekit.device import resolve_device
    from dancekit.io.checkpoint import read_checkpoint, write_checkpoint
    from dancekit.io.training_videos import find_videos, open_training_video
    from dancekit.io.video import video_facts
    from dancekit.unet.checkpoint import model_from_checkpoint
    from dancekit.unet.domain import domain_of_sources
    from dancekit.unet.flux_calibration import fit_flux_calibration, predictions_on_videos
    from dancekit.unet.inference import model_context
    from dancekit.unet.preprocess import network_output_to_electrons

    checkpoint = read_checkpoint(model)
    if not isinstance(checkpoint, dict) or "model_config" not in checkpoint:
        raise InputError("not a dancekit U-Net checkpoint (no model_config); DanceCam weights: convert them first",
                         source=model)
    network = model_from_checkpoint(checkpoint).to(resolve_device(device))
    context = int(checkpoint.get("context") or model_context(network))
    paths = find_videos(videos)
    sources = [open_training_video(path, gain=1.0) for path in paths]
    for source in sources:
        if source.shape[0] < context:
            raise InputError(f"has {source.shape[0]} frames, fewer than the model's context of {context}", source=source.name)
    checkpoint["domain"] = domain_of_sources(
        sources, [video_facts(p) for p in paths], context, f"calibrate-unet on {len(sources)} videos",
        instrument=checkpoint.get("instrument") if isinstance(checkpoint.get("instrument"), str) else None).to_dict()
    if domain_only:
        write_checkpoint(checkpoint, output, overwrite=overwrite)
        log.info("recorded the training domain of %d videos in %s", len(sources), output)
        if as_json:
            opt.print_json({"command": "calibrate-unet", "model": model, "output": output, "videos": len(sources),
                            "domain": checkpoint["domain"]})
        return 0
    log.info("calibrating %s on %d videos (context %d, stride %d)", model, len(sources), context, stride)
    predicted, truth = predictions_on_videos(
        network, ((s.read_frames(0, s.shape[0]), s.read_truth()) for s in sources), context, stride, dihedral_mean)
    calibration = fit_flux_calibration(predicted, truth)
    inverse = checkpoint.get("inverse", "unbiased")
    output_tensor = torch.from_numpy(predicted)[:, None]
    plain = network_output_to_electrons(output_tensor, inverse).numpy()
    calibrated = network_output_to_electrons(output_tensor, calibration=calibration).numpy()
    stars = truth > 5.0
    summary = {
        "command": "calibrate-unet", "model": model, "output": output, "videos": len(sources),
        "windows": int(predicted.shape[0]), "pixels": calibration.pixels, "knots": len(calibration.y),
        "dihedral_mean": dihedral_mean,
        "inverse": inverse, "domain": checkpoint["domain"],
        "flux_ratio_inverse": float(plain.sum() / truth.sum()),
        "flux_ratio_calibrated": float(calibrated.sum() / truth.sum()),
        "star_flux_ratio_inverse": float(plain[stars].sum() / max(truth[stars].sum(), 1e-30)),
        "star_flux_ratio_calibrated": float(calibrated[stars].sum() / max(truth[stars].sum(), 1e-30)),
    }
    checkpoint["flux_calibration"] = {**calibration.to_dict(), "videos": [os.path.basename(s.name) for s in sources],
                                      "stride": stride}
    # the calibration holds for the outputs it was measured on, so the model now prescribes them
    checkpoint["test_time_augmentation"] = "dihedral8" if dihedral_mean else "none"
    write_checkpoint(checkpoint, output, overwrite=overwrite)
    log.info("output / true flux: %s inverse %.3f, calibrated %.3f (on pixels of truth > 5 e-: %.3f, %.3f)",
             inverse, summary["flux_ratio_inverse"], summary["flux_ratio_calibrated"],
             summary["star_flux_ratio_inverse"], summary["star_flux_ratio_calibrated"])
    if as_json:
        opt.print_json({k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()})
    return 0


def register(app: typer.Typer) -> None:
    app.command("calibrate-unet")(calibrate_unet)
