"""``dancekit predict-dark``: the dark of a raw frame's active area, from its own overscan and optical black.

Parses options, reads the frames, the model or the master dark (``dancekit.io.dark_files``),
cuts each frame by its ``FrameLayout`` (``dark.cameras.frame_layout_from_config``), checks a gan
model's training domain (``dark.domain``), calls ``dancekit.dark.inference.predict_frame_dark``
and writes the trimmed image.
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
    ignore_domain: Annotated[bool, typer.Option("--ignore-domain", help="--method gan: predict even for a frame far outside the model's training domain (warned and recorded in DKDOMAIN).")] = False,
    config: opt.Config = "lamost",
    overrides: opt.Set = None,
    device: opt.Device = opt.DeviceChoice.auto,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Predict the dark (bias included) of the active area of raw frames, or subtract it.

    The output is the trimmed active area in ADU with the input's observation keywords: the
    channels mosaicked in physical orientation (2084 x 2084 for LAMOST), or for a camera described
    by FITS sections the box of its amplifiers' data. The camera comes from the config: LAMOST's
    quadrants by default; `detector.layout: sections` lists amplifiers (each its data minus its own
    overscan level), `fits-sections` reads them from each frame's header (BIASSEC + TRIMSEC or
    DATASEC, per amplifier DATASECn/BIASSECn or ASECx/BSECx). A config may start from a shipped
    one (`base: lamost`) and give what differs:

        base: lamost
        detector:
          layout: sections
          amplifiers:
            - {data: "[1:1024,1:350]", overscan: "[2049:2080,1:350]"}
            - {data: "[1025:2048,1:350]", overscan: "[2081:2112,1:350]"}

    --method gan runs the Deep-Dark-Net model on the frame's own overscan and optical-black strips;
    a frame beyond its training domain (bias and dark level, temperature, exposure) by more than
    half the trained range is refused (--ignore-domain overrides), nearer it is warned; DKDOMAIN
    and DKDOMDST record where it lay. median and scaled need a --master; overscan subtracts the
    overscan bias only. For simulated darks (with an EXPECTED extension) --json reports the RMSE
    against the actual and the noise-free dark.

    Example: dancekit predict-dark kast.fits --config kast.yaml --method overscan --subtract -o reduced.fits
    """
    from dancekit.dark.baselines import rmse
    from dancekit.dark.cameras import frame_layout_from_config
    from dancekit.dark.frame_layout import describe_frame_layout, frame_layout_from_mapping, same_frame_geometry
    from dancekit.dark.inference import check_frame, predict_frame_dark, trimmed_active
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import DarkConfig
    from dancekit.io.dark_files import bundled_dark_model, read_dark_model, read_master_darks, read_raw_frame
    from dancekit.io.fits_out import check_output, output_for, write_hdus
    from dancekit.io.provenance import Provenance, carry_header

    opt.check_json_with_output(as_json, output)
    cfg = load_config(config, DarkConfig, overrides)
    name = method.value
    if name in ("median", "scaled") and master is None:
        raise ParameterError(f"--method {name} needs --master MASTER.fits (make one with: dancekit train-dark DARKS... "
                             "--make-master MASTER.fits)", source="--master")
    model_name = Path(model).name if model else "bundled:lamost_dark_demo.pt"
    checkpoint, masters, options = None, None, {"bias_degree": cfg.model.bias_degree}
    if name == "gan":
        checkpoint, options = _load_generator(model or bundled_dark_model(), device)
        model_layout = frame_layout_from_mapping(checkpoint["layout"])
    elif name in ("median", "scaled"):
        master_layout, masters = read_master_darks(master)

    def one(path: str) -> dict:
        target = output_for(path, output, len(inputs))
        check_output(target, overwrite)
        frame = read_raw_frame(path)
        layout = frame_layout_from_config(cfg.detector, frame.data.shape, frame.header)
        check_frame(frame.data, layout, cfg.detector.saturation)
        if checkpoint is not None and not same_frame_geometry(model_layout, layout):
            raise InputError(f"the model {model_name} was made for layout {describe_frame_layout(model_layout)}; "
                             f"this frame has layout {describe_frame_layout(layout)} (train a model on this camera's darks "
                             "with dancekit train-dark, or use --method overscan)")
        if masters is not None and not same_frame_geometry(master_layout, layout):
            raise InputError(f"the master dark {master} was made for layout {describe_frame_layout(master_layout)}; "
                             f"this frame has layout {describe_frame_layout(layout)}")
        domain_cards = _domain_cards(checkpoint, frame, layout.single, ignore_domain, model_name) if checkpoint else []
        dark = predict_frame_dark(name, frame.data, layout, masters=masters, **options)
        active = trimmed_active(frame.data, layout)
        image = (active - dark if subtract else dark).astype(np.float32)
        out = fits.PrimaryHDU(image)
        carry_header(frame.header, out.header, with_wcs=False)
        for key in CARRIED_DARK_KEYS:
            if key in frame.header:
                out.header[key] = (frame.header[key], frame.header.comments[key])
        _carry_trimmed_wcs(frame.header, out.header, layout)
        out.header["BUNIT"] = ("adu", "dark-subtracted active area" if subtract else "predicted dark, bias included")
        out.header["DKMETHOD"] = (name, "dark prediction method")
        out.header["DKDARK"] = ("subtracted" if subtract else "prediction", "what this image holds")
        out.header["DKNAMP"] = (sum(p.layout.n_channels for p in layout.parts), "readout channels / amplifiers")
        if name == "gan":
            out.header["DKMODEL"] = (model_name, "dark model file")
        for card in domain_cards:
            out.header.append(card)
        if master:
            out.header["DKMASTER"] = (Path(master).name, "master dark file")
        Provenance.from_argv(config_hash=config_hash(cfg)).apply(out.header)
        write_hdus(fits.HDUList([out]), target, overwrite)
        record = {"input": path, "output": target, "method": name, "shape": list(image.shape)}
        if frame.expected is not None:
            ok = np.isfinite(dark)
            record["rmse_actual_adu"] = rmse(dark[ok], active[ok])
            record["rmse_expected_adu"] = rmse(dark[ok], trimmed_active(frame.expected, layout)[ok])
        log.info("%s: %s dark -> %s%s", path, name, target,
                 f" (RMSE {record['rmse_actual_adu']:.3f} ADU vs actual, {record['rmse_expected_adu']:.3f} vs noise-free)"
                 if "rmse_actual_adu" in record else "")
        return record

    ran = map_inputs(inputs, one, scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "predict-dark", "method": name, "results": summaries, "failed": len(inputs) - len(summaries)})
    return code


def _load_generator(model_path: str, device) -> tuple[dict, dict]:
    """(checkpoint, options of predict_active_dark) of a dark model file, its generator ready."""
    import torch

    from dancekit.dark.networks import DeepDarkGenerator
    from dancekit.device import resolve_device
    from dancekit.io.dark_files import read_dark_model

    checkpoint = read_dark_model(model_path)
    try:
        generator = DeepDarkGenerator(**checkpoint["generator_config"])
        generator.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError, KeyError) as exc:
        raise InputError(f"the weights do not fit the stored generator config ({' '.join(str(exc).split())[:160]})", source=model_path) from None
    generator.to(resolve_device(device)).eval()
    torch.set_grad_enabled(False)
    template = None
    if "template" in checkpoint:
        from dancekit.dark.template_codec import decode_template

        try:
            template = decode_template(checkpoint["template"])
        except InputError as exc:
            raise exc.with_source(model_path)
    c = checkpoint["conditioning"]
    return checkpoint, {"generator": generator, "mode": c["mode"], "coordinates": c["coordinates"], "target": c.get("target", "absolute"),
                        "template": template, "template_plane": bool(c.get("template", False)), "bias_degree": c.get("bias_degree", 3)}


def _domain_cards(checkpoint: dict, frame, layout, ignore: bool, model_name: str) -> list[tuple]:
    """Compare the frame with the model's training domain: refuse it (InputError) beyond
    ``domain.REFUSE_BEYOND`` range widths unless ``ignore``, warn when outside; the header cards
    that record where it lay."""
    from dancekit.dark.domain import REFUSE_BEYOND, domain_excursions, frame_conditions
    from dancekit.io.dark_files import header_conditions

    domain = checkpoint.get("domain")
    if not domain:
        log.warning("%s: the model %s records no training domain (a file from before dancekit recorded it): this frame "
                    "cannot be checked against what it was trained on", frame.name, model_name)
        return [("DKDOMAIN", "unknown", "the model records no training domain")]
    temperature, exptime = header_conditions(frame.header)
    conditions = frame_conditions(frame.data, layout, temperature, exptime, checkpoint["conditioning"].get("bias_degree", 3))
    excursions = domain_excursions(domain, conditions)
    worst = excursions[0] if excursions else None
    distance = worst.distance if worst else 0.0
    if distance > REFUSE_BEYOND and not ignore:
        raise InputError(f"outside the training domain of the dark model {model_name}: {worst.describe()} (refused beyond "
                         f"{REFUSE_BEYOND:g}); use --method scaled or overscan, train a model on such darks, or pass --ignore-domain")
    state = "inside" if distance == 0 else ("outside" if distance > REFUSE_BEYOND else "near")
    if distance > 0:
        log.warning("%s: outside the training domain of the dark model %s: %s%s", frame.name, model_name, worst.describe(),
                    " (--ignore-domain)" if distance > REFUSE_BEYOND else "")
    cards = [("DKDOMAIN", state, "inside/near/outside the model's training domain"),
             ("DKDOMDST", round(distance, 4), "[range widths] furthest excursion beyond the trained range"),
             ("DKDOMQTY", worst.quantity if distance > 0 else "none", "quantity of that excursion")]
    return cards + [("HISTORY", f"DKDOMAIN {e.brief()}") for e in excursions]


def _carry_trimmed_wcs(source: fits.Header, target: fits.Header, frame_layout) -> None:
    """Channels read without mirroring (one channel per part: BIASSEC / section amplifiers): the
    trimmed image is a box of the raw frame, so the input's WCS holds with CRPIX moved to it.
    Mirrored channels: the trimmed mosaic drops the strips between channels, so no single linear
    WCS holds; none is written."""
    from dancekit.io.provenance import carry_header

    if any(p.layout.n_channels != 1 for p in frame_layout.parts) or "CRPIX1" not in source:
        return
    part = frame_layout.parts[0]
    rs, cs = part.layout.region_slices("active")
    carry_header(source, target, with_wcs=True)
    target["CRPIX1"] = source["CRPIX1"] - (cs.start - part.origin[1])
    target["CRPIX2"] = source["CRPIX2"] - (rs.start - part.origin[0])


def register(app: typer.Typer) -> None:
    app.command("predict-dark")(predict_dark)
