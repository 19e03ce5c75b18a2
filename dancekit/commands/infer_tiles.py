"""``dancekit infer-tiles``: the turbulence-free image of a video of any size (Bialek et al. 2024 §4)."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import hashlib
import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log, progress
from dancekit.errors import InputError, ParameterError
from dancekit.io.video import VideoInput

#: the bundled C2PU model used without --model (trained by the maintainers with train-unet)
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "weights" / "c2pu_default.pt"
#: checkpoint entries that may hold the training summary (dancekit writes one of them)
SUMMARY_KEYS = ("training_summary", "training", "summary")


class Background(str, Enum):
    restore = "restore"
    subtract = "subtract"


@cli_command
def infer_tiles(
    inputs: opt.VideoInputs,
    output: opt.Output,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="U-Net checkpoint (dancekit or DanceCam .pth); default: the bundled C2PU model.")] = None,
    context: Annotated[Optional[int], typer.Option("--context", help="Frames per window; must match the model (default: the model's).")] = None,
    stride: Annotated[int, typer.Option("--stride", help="Frames between window starts (1 = every window, as the paper).")] = 1,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Tile side in pixels (default: the model's training tile, else the config's).")] = None,
    overlap: Annotated[Optional[float], typer.Option("--overlap", help="Overlap of neighbouring tiles, fraction in [0, 0.5] (default: the config's).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Tiles per forward pass.")] = 8,
    device: opt.Device = opt.DeviceChoice.auto,
    average: Annotated[bool, typer.Option("--average", help="Add the plain temporal mean as extension AVERAGE.")] = False,
    background: Annotated[Background, typer.Option("--background", help="restore: add the subtracted sky back (input flux scale); subtract: leave it out.")] = Background.restore,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Image extension holding the cube (name or index).")] = None,
    ignore_instrument: Annotated[bool, typer.Option("--ignore-instrument", "--ignore-domain", help="Run even when the video's instrument or pixel scale (missing, or > 10 % off) is not the model's; the mismatch becomes a warning, recorded in the header (--ignore-domain, as in predict-dark and zeropoint, is the same flag).")] = False,
    config: opt.Config = "c2pu",
    overrides: opt.Set = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Infer a sharp image from a short-exposure video with the residual U-Net, tile by tile.

    Every window of CONTEXT frames (every STRIDE frames) is cut into overlapping tiles; each
    tile's background is removed, the Anscombe-transformed frames go through the network, and
    the outputs are blended with linear ramps and averaged over windows. Frames are streamed
    from disk, so memory does not grow with the number of frames. Frames without any finite
    pixel are masked and reported. The output is in the input's units per frame, with its
    header and WCS, the model's sha256 and training summary, and how the sky was handled.

    The video is compared with the model's training domain first: a missing pixel scale, one
    more than 10 % off, or another INSTRUME is refused (exit 2; --ignore-instrument runs it
    anyway); another exposure, noise or flux levels far outside the training range, saturated
    pixels or a missing INSTRUME are warnings (header DOMAIN, DOMFLAGS). FLUXRAT in the header
    is the output's flux above the sky over the average stack's: about 1 for a model within its
    domain; outside [0.8, 1.25] it is a warning.

    Example: dancekit infer-tiles video.fits --stride 4 --average -o image.fits
    """
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import VideoConfig

    opt.check_json_with_output(as_json, output)
    cfg = load_config(config, VideoConfig, overrides)
    sources = VideoInput.plan(inputs, ext)  # cheap refusals (missing model, mismatched frames) before torch loads
    if len(sources) > 1:
        _target(sources[0].name, output, len(sources))  # -o must be a folder: said once, not once per input
    model_path = _model_path(model)
    from dancekit.device import resolve_device  # torch from here on

    torch_device = resolve_device(device)
    loaded = _read_model(model_path)
    settings = dict(
        context=_checked_context(context, loaded),
        stride=_positive(stride, "--stride"), batch=_positive(batch, "--batch"),
        tile=_positive(tile, "--tile") if tile is not None else int(loaded["tile"] or cfg.unet.tile),
        overlap=cfg.unet.overlap if overlap is None else overlap,
        inverse=loaded["inverse"], background=background.value, device=torch_device, average=average,
        calibration=loaded["calibration"], dihedral_mean=loaded["tta"] == "dihedral8",
    )
    run = dict(cfg=cfg, cfg_hash=config_hash(cfg), loaded=loaded, settings=settings,
               ignore_instrument=ignore_instrument, output=output, overwrite=overwrite)
    if len(sources) == 1 and sources[0].single_frames:
        ran = map_inputs([sources[0].name], lambda _: _infer_one(sources[0], output, run), scheduler, output=output)
    else:
        by_path = {s.name: s for s in sources}
        ran = map_inputs(inputs, lambda p: _infer_one(by_path[p], _target(p, output, len(inputs)), run), scheduler, output=output)
    summaries, code = ran.results, ran.code
    if as_json:
        opt.print_json({"command": "infer-tiles", "model": loaded["name"], "model_sha256": loaded["sha256"],
                        "results": summaries, "failed": len(sources) - len(summaries)})
    return code


def _infer_one(source: VideoInput, target: str, run: dict) -> dict:
    from astropy.io import fits

    from dancekit.io.fits_out import check_output, write_hdus
    from dancekit.io.provenance import Provenance, carry_header
    from dancekit.unet.inference import expected_windows, infer_video

    check_output(target, run["overwrite"])
    settings, loaded = run["settings"], run["loaded"]
    with source.open() as video:
        header = video.header
        gain = _gain(header, run["cfg"])
        domain = _check_domain(loaded, video, gain, settings["context"], run["ignore_instrument"])
        total = expected_windows(video.n_frames, settings["context"], settings["stride"])
        started = time.perf_counter()
        with progress(f"infer-tiles {source.name}", total) as advance:
            result = infer_video(video.read, video.n_frames, video.shape, loaded["model"], gain=gain,
                                 progress=advance, **settings)
        seconds = time.perf_counter() - started
    if result.masked_frames:
        log.warning("%s: %d frame(s) without any finite pixel were masked: %s", source.name,
                    len(result.masked_frames), _ranges(result.masked_frames))
    if result.replaced_pixels:
        log.warning("%s: %d non-finite pixel(s) replaced by their frame's median", source.name, result.replaced_pixels)
    domain["warnings"] += _flux_warnings(result.flux_ratio)
    for message in domain["warnings"]:
        log.warning("%s: %s", source.name, message)
    out = fits.PrimaryHDU(result.image)
    carry_header(header, out.header)
    _describe(out.header, result, settings, loaded, gain)
    _describe_domain(out.header, result.flux, domain)
    Provenance.from_argv(config_hash=run["cfg_hash"]).apply(out.header)
    hdus = [out]
    if result.average is not None:
        mean = fits.ImageHDU(result.average, name="AVERAGE")
        carry_header(header, mean.header)
        mean.header["NCOMBINE"] = (result.n_frames - len(result.masked_frames), "frames averaged (plain mean)")
        hdus.append(mean)
    write_hdus(fits.HDUList(hdus), target, run["overwrite"])
    log.info("%s: %d windows x %d tiles in %.1f s (%.2f frames/s), FLUXRAT %s -> %s", source.name, result.n_windows,
             result.n_tiles, seconds, result.n_frames / seconds, _format_ratio(result.flux_ratio), target)
    return {"input": source.name, "output": target, "frames": result.n_frames, "windows": result.n_windows,
            "tiles": result.tiles_processed, "masked_frames": result.masked_frames,
            "replaced_pixels": result.replaced_pixels, "background": result.background_mode,
            "background_level": float(result.background.mean()), "flux_ratio": result.flux_ratio,
            "domain": domain["state"], "domain_warnings": domain["warnings"], "seconds": round(seconds, 3),
            "frames_per_s": result.n_frames / seconds, "tiles_per_s": result.tiles_processed / seconds}


#: bytes of frames read to measure a video's levels (at most one context of frames)
LEVEL_SAMPLE_BYTES = 64 * 2**20


def _check_domain(loaded: dict, video: Any, gain: float, context: int, ignore_instrument: bool) -> dict:
    """Refuse a video outside the model's domain (unless ``ignore_instrument``); otherwise return
    ``{"state", "flags", "warnings"}`` for the log and the header. Refusals come from the header
    alone, before any pixel is read; the levels are measured on the first frames."""
    from dancekit.io.video import header_facts, saturation_level
    from dancekit.unet.domain import Mismatch, compare, measure_levels

    domain, facts = loaded["domain"], header_facts(video.header)
    refusals = [m for m in compare(domain, facts, None) if m.refuse]
    if refusals and not ignore_instrument:
        raise InputError(f"outside the domain of the model {loaded['name']}: {'; '.join(m.message for m in refusals)}; "
                         "pass --ignore-instrument to run it anyway")
    n_sample = max(1, min(context, video.n_frames, LEVEL_SAMPLE_BYTES // (4 * video.shape[0] * video.shape[1])))
    saturation = saturation_level(video.header)
    levels = measure_levels(video.read(0, n_sample) * gain, None if saturation is None else saturation * gain)
    found = compare(domain, facts, levels)
    header = video.header
    if isinstance(header.get("BITPIX"), int) and header["BITPIX"] > 0 and not {"BUNIT", "GAIN"} & set(header):
        found.append(Mismatch("gain", "integer pixels (raw counts?) with neither BUNIT nor GAIN in the header: "
                                      "taken as electrons; add GAIN [e-/ADU] and BUNIT = 'adu'"))
    warnings = [f"outside the model's domain{' (--ignore-instrument)' if m.refuse else ''}: {m.message}" for m in found]
    if not domain.known:
        warnings.append(f"the model {loaded['name']} records no training domain (made before dancekit recorded one, "
                        "or DanceCam's format): the video cannot be checked against it; calibrate-unet adds one")
    state = "forced" if refusals else "outside" if found else "inside" if domain.known else "unknown"
    return {"state": state, "flags": [m.what for m in found], "warnings": warnings}


def _flux_warnings(ratio: Optional[float]) -> list[str]:
    from dancekit.unet.domain import flux_ratio_warning

    message = flux_ratio_warning(ratio)
    return [message] if message else []


def _describe_domain(header: Any, flux: Any, domain: dict) -> None:
    if flux.ratio is None:
        header["FLUXRAT"] = (None, "undefined: the average stack has no flux above the sky")
    else:
        header["FLUXRAT"] = (float(flux.ratio), "output / average-stack flux above the sky")
    header["FLUXSKY"] = (float(flux.sky), "sky of the stack under the blurred output [BUNIT]")
    header["DOMAIN"] = (domain["state"], "video vs model training domain (inside/outside/forced/unknown)")
    header["DOMFLAGS"] = (",".join(domain["flags"])[:68], "what lies outside the model's domain")
    for message in domain["warnings"]:
        header.add_history(f"warning: {message}")


def _format_ratio(ratio: Optional[float]) -> str:
    return "undefined" if ratio is None else f"{ratio:.3f}"


def _describe(header: Any, result: Any, settings: dict, loaded: dict, gain: float) -> None:
    header["MODEL"] = (loaded["name"][-68:], "U-Net checkpoint file")
    header["MODELSHA"] = loaded["sha256"]
    header["MODELFMT"] = (loaded["format"], "checkpoint format")
    header["CONTEXT"] = (result.context, "frames per inference window")
    header["TSTRIDE"] = (result.stride, "frames between window starts")
    header["NWINDOW"] = (result.n_windows, "windows averaged")
    header["TILE"] = (settings["tile"], "tile side [pixels]")
    header["OVERLAP"] = (float(settings["overlap"]), "tile overlap fraction (linear-ramp blending)")
    header["NTILES"] = (result.n_tiles, "tiles per window")
    header["NCOMBINE"] = (result.n_frames - len(result.masked_frames), "frames used")
    header["NMASKED"] = (len(result.masked_frames), "frames masked (no finite pixel)")
    header["NPIXREPL"] = (result.replaced_pixels, "non-finite pixels replaced by the frame median")
    calibrated = loaded["calibration"] is not None
    header["ANSCINV"] = ("calibrated" if calibrated else loaded["inverse"], "inverse Anscombe transform of the model")
    header["FLUXCAL"] = (calibrated, "output via the model's measured E[e- | output]")
    header["TTA"] = (loaded["tta"], "test-time augmentation: mean over 8 rot/flips")
    header["GAINUSED"] = (float(gain), "e-/unit used to reach electrons for Anscombe")
    header["BKGMODE"] = (result.background_mode, "sky: restored (included) or subtracted")
    header["BKGSUB"] = (result.background_mode == "subtract", "True: the sky level is NOT in the data")
    header["BKGLEVEL"] = (float(result.background.mean()), "mean per-tile sky level removed [BUNIT]")
    if result.masked_frames:
        header.add_history(f"masked frames (no finite pixel): {_ranges(result.masked_frames)}")
    for key, value in loaded["summary"].items():
        header.add_history(f"model training {key}: {value}"[:72])


def _model_path(path: Optional[str]) -> str:
    if path is None:
        if not BUNDLED_MODEL.exists():
            raise InputError(f"no bundled model at {BUNDLED_MODEL}; pass --model PATH "
                             "(a dancekit checkpoint from train-unet or DanceCam's .pth)", source="--model")
        return str(BUNDLED_MODEL)
    if not os.path.isfile(path):
        raise InputError("no such model file", source=path)
    return path


def _read_model(path: str) -> dict:
    """Hash and load a checkpoint (``torch.load(weights_only=True)``: nothing in it is executed)."""
    import torch

    from dancekit.unet.checkpoint import load_state_dict_any
    from dancekit.unet.model import build_unet
    from dancekit.unet.flux_calibration import FluxCalibration
    from dancekit.unet.preprocess import INVERSES

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, zip errors: the file is not a safe checkpoint
        raise InputError(f"not a loadable torch checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})",
                         source=path) from None
    try:
        config, state_dict = load_state_dict_any(obj)
    except InputError as exc:
        raise exc.with_source(path)
    network = build_unet(config)
    network.load_state_dict(state_dict, strict=True)
    is_dancekit = isinstance(obj, dict) and "model_config" in obj
    inverse = obj.get("inverse", "unbiased") if isinstance(obj, dict) else "unbiased"
    if inverse not in INVERSES:
        raise InputError(f"checkpoint names an unknown Anscombe inverse '{inverse}' (allowed: {', '.join(INVERSES)})", source=path)
    calibration = None
    if isinstance(obj, dict) and obj.get("flux_calibration") is not None:
        try:
            calibration = FluxCalibration.from_dict(obj["flux_calibration"])
        except (InputError, ParameterError) as exc:
            raise InputError(str(exc), source=path) from None
    tta = obj.get("test_time_augmentation", "none") if isinstance(obj, dict) else "none"
    if tta not in ("none", "dihedral8"):
        raise InputError(f"checkpoint asks for an unknown test-time augmentation '{tta}' (allowed: none, dihedral8)", source=path)
    stored_context = obj.get("context") if isinstance(obj, dict) else None
    if stored_context is not None and int(stored_context) != config.in_channels:
        raise InputError(f"checkpoint says context {stored_context} but its network takes {config.in_channels} frames", source=path)
    summary = next((obj[k] for k in SUMMARY_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), {})
    domain = _stored_domain(obj if isinstance(obj, dict) else {}, path)
    return {"model": network, "name": os.path.basename(path), "path": path, "sha256": digest.hexdigest(),
            "format": "dancekit" if is_dancekit else "DanceCam", "inverse": inverse, "calibration": calibration, "tta": tta,
            "domain": domain,
            "tile": obj.get("tile") if isinstance(obj, dict) and isinstance(obj.get("tile"), int) else None,
            "context": config.in_channels, "summary": summary}


def _stored_domain(obj: dict, path: str) -> Any:
    """The checkpoint's training domain; for a model without one, only its config's instrument."""
    from dancekit.unet.domain import TrainingDomain

    if obj.get("domain") is not None:
        try:
            return TrainingDomain.from_dict(obj["domain"])
        except InputError as exc:
            raise exc.with_source(path)
    instrument = obj.get("instrument")
    if isinstance(instrument, dict):
        instrument = instrument.get("instrument") or instrument.get("name")
    return TrainingDomain(instruments=(str(instrument),) if instrument else ())


def _checked_context(context: Optional[int], loaded: dict) -> int:
    if context is None:
        return loaded["context"]
    if context != loaded["context"]:
        raise ParameterError(f"--context {context} but the model {loaded['name']} was trained on windows of "
                             f"{loaded['context']} frames", source="--context")
    return context


def _gain(header: Any, cfg: Any) -> float:
    """Electrons per input unit: 1 for BUNIT electron; the header's GAIN (else the config's) for ADU."""
    unit = str(header.get("BUNIT", "electron")).strip().lower()
    if unit in ("adu", "count", "counts", "dn"):
        if "GAIN" in header:
            return float(header["GAIN"])
        log.warning("BUNIT is %s and the header has no GAIN: using the config's camera.gain = %g e-/ADU",
                    unit, cfg.camera.gain)
        return float(cfg.camera.gain)
    return 1.0


def _positive(value: int, option: str) -> int:
    if value < 1:
        raise ParameterError(f"must be a positive integer, got {value}", source=option)
    return value


def _target(path: str, output: str, n_inputs: int) -> str:
    from dancekit.io.fits_out import output_for

    return output_for(path, output, n_inputs)


def _ranges(indices: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], None
    for i, value in enumerate(indices):
        if start is None:
            start = value
        if i + 1 == len(indices) or indices[i + 1] != value + 1:
            parts.append(f"{start}" if start == value else f"{start}-{value}")
            start = None
    return ", ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("infer-tiles")(infer_tiles)
