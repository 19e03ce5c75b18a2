"""``dancekit predict-dark``: the dark of a raw frame's active area, from its own overscan and optical black.

Parses options, reads the frames, the model or the master dark (``dancekit.io.dark_files``),
calls ``dancekit.dark.inference.predict_active_dark`` and writes the trimmed image.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import InputError, ParameterError

CARRIED_DARK_KEYS = ("TEMPERAT", "CCD-TEMP", "IMAGETYP", "DETECTOR", "GAIN", "RDNOISE")


class Method(str, Enum):
    gan = "gan"
    median = "median"
    scaled = "scaled"
    overscan = "overscan"


@cli_command
def predict_dark(
    inputs: opt.Inputs,
    output: opt.Output,
    method: Annotated[Method, typer.Option("--method", help="gan: Deep-Dark-Net; median: the master median dark; scaled: overscan bias + optical-black level x master template; overscan: bias only.")] = Method.gan,
    model: Annotated[Optional[str], typer.Option("--model", help="Dark model file from train-dark (default: the bundled LAMOST demo model).")] = None,
    master: Annotated[Optional[str], typer.Option("--master", help="Master dark from train-dark --make-master (for --method median and scaled).")] = None,
    subtract: Annotated[bool, typer.Option("--subtract", help="Write the active area minus the predicted dark instead of the dark.")] = False,
    config: opt.Config = "lamost",
    overrides: opt.Set = None,
    device: opt.Device = opt.DeviceChoice.auto,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Predict the dark (bias included) of the active area of raw frames, or subtract it.

    The output is the trimmed active area (channels mosaicked in physical orientation; 2084 x 2084
    for LAMOST) in ADU, with the input's observation keywords. --method gan runs the Deep-Dark-Net
    model on the frame's own overscan and optical-black strips; median and scaled need a
    --master; overscan subtracts the overscan bias only. For simulated darks (with an EXPECTED
    extension) --json reports the RMSE against the actual and the noise-free dark.

    Example: dancekit predict-dark raw.fits --method gan --subtract -o reduced.fits
    """
    from dancekit.dark.baselines import ScaledDark, rmse
    from dancekit.dark.cameras import describe_layout, layout_from_config, layout_from_mapping, same_geometry
    from dancekit.dark.inference import MasterDark, check_raw_frame, predict_active_dark
    from dancekit.dark.layout import assemble_active, mosaic_to_channels, region_stack
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import DarkConfig
    from dancekit.io.dark_files import bundled_dark_model, read_dark_model, read_master, read_raw_frame
    from dancekit.io.fits_out import check_output, output_for, write_hdus
    from dancekit.io.provenance import Provenance, carry_header

    opt.check_json_with_output(as_json, output)
    cfg = load_config(config, DarkConfig, overrides)
    name = method.value
    if name in ("median", "scaled") and master is None:
        raise ParameterError(f"--method {name} needs --master MASTER.fits (make one with: dancekit train-dark DARKS... "
                             "--make-master MASTER.fits)", source="--master")
    generator, checkpoint, master_file, model_template = None, None, None, None
    if name == "gan":
        import torch

        from dancekit.dark.networks import DeepDarkGenerator
        from dancekit.device import resolve_device

        model_path = model or bundled_dark_model()
        checkpoint = read_dark_model(model_path)
        try:
            generator = DeepDarkGenerator(**checkpoint["generator_config"])
            generator.load_state_dict(checkpoint["state_dict"])
        except (TypeError, RuntimeError, KeyError) as exc:
            raise InputError(f"the weights do not fit the stored generator config ({' '.join(str(exc).split())[:160]})", source=model_path) from None
        generator.to(resolve_device(device)).eval()
        torch.set_grad_enabled(False)
        model_layout = layout_from_mapping(checkpoint["layout"])
        if "template" in checkpoint:
            from dancekit.dark.template_codec import decode_template

            try:
                model_template = decode_template(checkpoint["template"])
            except InputError as exc:
                raise exc.with_source(model_path)
    elif name in ("median", "scaled"):
        median_mosaic, template_mosaic, master_layout_map, master_header = read_master(master)
        master_layout = layout_from_mapping(master_layout_map)
        try:
            master_file = MasterDark(mosaic_to_channels(median_mosaic, master_layout),
                                     ScaledDark(mosaic_to_channels(template_mosaic, master_layout), master_header.get("BIASDEG", 3)),
                                     int(master_header.get("NCOMBINE", 0)))
        except InputError as exc:
            raise exc.with_source(master)

    def one(path: str) -> dict:
        target = output_for(path, output, len(inputs))
        check_output(target, overwrite)
        frame = read_raw_frame(path)
        layout = layout_from_config(cfg.detector, frame.header)
        check_raw_frame(frame.data, layout, cfg.detector.saturation)
        if generator is not None and not same_geometry(model_layout, layout):
            raise InputError(f"the model {Path(model or 'bundled').name} was made for layout {describe_layout(model_layout)}; "
                             f"this frame has layout {describe_layout(layout)} (train a model on this camera's darks)")
        if master_file is not None and not same_geometry(master_layout, layout):
            raise InputError(f"the master dark {master} was made for layout {describe_layout(master_layout)}; "
                             f"this frame has layout {describe_layout(layout)}")
        conditioning = checkpoint["conditioning"] if checkpoint else {"mode": "profile", "coordinates": False}
        dark = predict_active_dark(name, frame.data, layout, master=master_file, generator=generator,
                                   mode=conditioning["mode"], coordinates=conditioning["coordinates"],
                                   target=conditioning.get("target", "absolute"), template=model_template,
                                   template_plane=bool(conditioning.get("template", False)),
                                   bias_degree=conditioning.get("bias_degree", cfg.model.bias_degree) if checkpoint
                                   else cfg.model.bias_degree)
        active = region_stack(frame.data, layout, "active")
        image = assemble_active(active - dark if subtract else dark, layout).astype(np.float32)
        out = fits.PrimaryHDU(image)
        carry_header(frame.header, out.header, with_wcs=False)
        for key in CARRIED_DARK_KEYS:
            if key in frame.header:
                out.header[key] = (frame.header[key], frame.header.comments[key])
        _carry_trimmed_wcs(frame.header, out.header, layout)
        out.header["BUNIT"] = ("adu", "dark-subtracted active area" if subtract else "predicted dark, bias included")
        out.header["DKMETHOD"] = (name, "dark prediction method")
        out.header["DKDARK"] = ("subtracted" if subtract else "prediction", "what this image holds")
        if name == "gan":
            out.header["DKMODEL"] = (Path(model).name if model else "bundled:lamost_dark_demo.pt", "dark model file")
        if master:
            out.header["DKMASTER"] = (Path(master).name, "master dark file")
        Provenance.from_argv(config_hash=config_hash(cfg)).apply(out.header)
        write_hdus(fits.HDUList([out]), target, overwrite)
        record = {"input": path, "output": target, "method": name, "shape": list(image.shape)}
        if frame.expected is not None:
            record["rmse_actual_adu"] = rmse(dark, active)
            record["rmse_expected_adu"] = rmse(dark, region_stack(frame.expected, layout, "active"))
        log.info("%s: %s dark -> %s%s", path, name, target,
                 f" (RMSE {record['rmse_actual_adu']:.3f} ADU vs actual, {record['rmse_expected_adu']:.3f} vs noise-free)"
                 if "rmse_actual_adu" in record else "")
        return record

    ran = map_inputs(inputs, one, scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "predict-dark", "method": name, "results": summaries, "failed": len(inputs) - len(summaries)})
    return code


def _carry_trimmed_wcs(source: fits.Header, target: fits.Header, layout) -> None:
    """One channel: the input's WCS with CRPIX moved to the trimmed grid. Several channels: the
    trimmed mosaic drops the strips between channels, so no single linear WCS holds; none is written."""
    from dancekit.io.provenance import carry_header

    if layout.n_channels != 1 or "CRPIX1" not in source:
        return
    rs, cs = layout.region_slices("active")
    carry_header(source, target, with_wcs=True)
    target["CRPIX1"] = source["CRPIX1"] - cs.start
    target["CRPIX2"] = source["CRPIX2"] - rs.start


def register(app: typer.Typer) -> None:
    app.command("predict-dark")(predict_dark)
