"""``dancekit simulate-dark``: synthetic raw dark frames of a guide camera, with their noise-free dark.

Parses options, builds the layout and camera model from the dark config, calls
``dancekit.dark.simulate`` and writes each frame with ``dancekit.io.dark_files.write_raw_dark``.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import secrets
from typing import Annotated, Optional

import numpy as np
import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs, product_folder
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import ParameterError

FolderOutput = Annotated[str, typer.Option("--output", "-o", help="Folder for the frames (created if its parent exists).")]


def parse_temperatures(text: str) -> list[float]:
    """'-25,-15,-10,-5' -> [-25.0, -15.0, -10.0, -5.0] (deg C)."""
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ParameterError(f"'{text}' is not a comma-separated list of temperatures in deg C", source="--temperature") from None
    if not values or not all(np.isfinite(v) and -120 <= v <= 60 for v in values):
        raise ParameterError(f"'{text}': need one or more temperatures in [-120, 60] deg C", source="--temperature")
    return values


def camera_model(cfg):
    """The simulator's camera parameters from the dark config (operation, dark_current, pattern)."""
    from dancekit.dark.simulate import DarkCameraModel

    p, o, d = cfg.pattern, cfg.operation, cfg.dark_current
    return DarkCameraModel(
        gain=o.gain, read_noise=o.read_noise, bias=o.bias, bias_channel_spread=p.bias_channel_spread,
        bias_drift=p.bias_drift, bias_row_drift=p.bias_row_drift, dark_reference=d.reference_electrons,
        reference_temperature=d.reference_temperature, reference_exposure=d.reference_exptime,
        doubling_temperature=d.doubling_temperature, temperature_jitter=d.temperature_jitter,
        ring_amplitude=p.ring_amplitude, ring_period=p.ring_period, dark_nonuniformity=p.dark_nonuniformity,
        hot_pixel_fraction=p.hot_pixel_fraction, hot_pixel_factor=tuple(p.hot_pixel_factor),
        hot_columns_per_channel=p.hot_columns_per_channel, hot_column_factor=tuple(p.hot_column_factor),
        glow=p.glow, glow_scale=p.glow_scale, saturation=cfg.detector.saturation,
    )


def frame_name(temperature: float, index: int) -> str:
    return f"dark_T{temperature:+05.1f}_{index:04d}.fits"


@cli_command
def simulate_dark(
    output: FolderOutput,
    config: opt.Config = "lamost",
    overrides: opt.Set = None,
    count: Annotated[int, typer.Option("--count", "--n", help="Frames per temperature (--n: the former name).")] = 10,
    temperature: Annotated[Optional[str], typer.Option("--temperature", help="Set points in deg C, comma-separated (default: config operation.temperature).")] = None,
    exptime: Annotated[Optional[float], typer.Option("--exptime", help="Exposure time [s] (default: config operation.exptime).")] = None,
    camera_seed: Annotated[int, typer.Option("--camera-seed", help="Seed of the camera's fixed dark pattern: keep it to simulate more frames of the same camera.")] = 0,
    seed: opt.Seed = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Simulate raw dark frames of a multi-channel CCD, with their noise-free expected dark.

    Per channel: bias with per-frame and along-row drift and read noise in every sample; dark
    current in the photosites (active and optical black) doubling every 6.4 deg C (240 e- in 30 s
    at -15 deg C for the LAMOST camera) times the camera's fixed pattern (polishing rings, hot
    pixels and columns, amplifier glow) with shot noise; the temperature jitters by +-1 deg C.
    Each frame is written as FOLDER/dark_T<set point>_<index>.fits (uint16 raw, EXPECTED extension,
    TEMPERAT, CCD-TEMP, EXPTIME). The same --camera-seed gives the same camera, so training and
    test sets from different --seed values match. Frame k of the set (temperatures in the order
    given, then index) is seeded with SeedSequence(--seed).spawn(frames)[k], whatever --scheduler.

    Example: dancekit simulate-dark --count 200 --temperature -25,-15,-10,-5 --seed 1 -o darks/
    """
    from dancekit.dark.cameras import layout_from_config
    from dancekit.dark.simulate import camera_pattern, simulate_dark_frame
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import DarkConfig
    from dancekit.io.dark_files import write_raw_dark
    from dancekit.io.fits_out import check_output
    from dancekit.io.provenance import Provenance

    if output == "-":
        raise ParameterError("simulate-dark writes many frames: give a folder", source="-o")
    cfg = load_config(config, DarkConfig, overrides)
    if cfg.detector.layout != "quadrants":
        raise ParameterError(f"simulate-dark simulates cameras of detector.layout quadrants, not '{cfg.detector.layout}' "
                             "(a camera described by sections has no optical-black rows or mirrored channels to simulate)", source=config)
    if count < 1:
        raise ParameterError(f"need at least 1 frame per temperature, got {count}", source="--count")
    temperatures = parse_temperatures(temperature) if temperature is not None else [cfg.operation.temperature]
    exposure = cfg.operation.exptime if exptime is None else exptime
    if not exposure >= 0:
        raise ParameterError(f"exposure time must be >= 0 s, got {exposure}", source="--exptime")
    folder = product_folder(output)
    jobs = [(t, i) for t in temperatures for i in range(count)]
    targets = [str(folder / frame_name(t, i)) for t, i in jobs]
    if len(set(targets)) != len(targets):
        raise ParameterError("two set points give the same file name; give distinct temperatures (0.1 deg C apart)", source="--temperature")
    folder.mkdir(exist_ok=True)
    for target in targets:
        check_output(target, overwrite)

    seed = secrets.randbits(31) if seed is None else seed
    layout = layout_from_config(cfg.detector)
    model = camera_model(cfg)
    pattern = camera_pattern(layout, model, camera_seed)
    streams = np.random.SeedSequence(seed).spawn(len(jobs))
    chash = config_hash(cfg)
    log.info("simulating %d raw darks of %s (%dx%d) at %s deg C, %.1f s, camera seed %d, seed %d",
             len(jobs), cfg.detector.name, *layout.frame_shape, ",".join(f"{t:g}" for t in temperatures), exposure, camera_seed, seed)

    def one(job: tuple) -> dict:
        (t, i), target, stream = job
        frame = simulate_dark_frame(layout, pattern, t, exposure, np.random.default_rng(stream), model, dtype="uint16")
        header = fits.Header()
        header["INSTRUME"] = (cfg.instrument, "instrument")
        header["DETECTOR"] = (cfg.detector.name, "sensor")
        header["IMAGETYP"] = ("dark", "simulated raw dark frame")
        header["EXPTIME"] = (exposure, "[s] exposure time")
        header["TEMPERAT"] = (t, "[deg C] detector temperature set point")
        header["CCD-TEMP"] = (round(frame.temperature, 4), "[deg C] detector temperature reached")
        header["GAIN"] = (model.gain, "[e-/ADU] gain")
        header["RDNOISE"] = (model.read_noise, "[e-] read noise")
        header["DARKELEC"] = (round(frame.dark_electrons, 4), "[e-/pixel] mean dark charge before pattern")
        header["CAMSEED"] = (camera_seed, "seed of the camera's fixed dark pattern")
        header["FRAMEIDX"] = (i, "index of this frame at its set point")
        Provenance.from_argv(config_hash=chash, seed=seed).apply(header)
        write_raw_dark(target, frame.raw, frame.expected, header, overwrite)
        return {"file": target, "temperature": t, "ccd_temp": frame.temperature}

    ran = map_inputs(list(zip(jobs, targets, streams)), one, scheduler, names=targets, output=output)
    written = ran.results
    log.info("wrote %d frames to %s", len(written), output)
    if as_json:
        opt.print_json({"command": "simulate-dark", "output": output, "frames": len(written), "seed": seed,
                        "camera_seed": camera_seed, "exptime": exposure, "files": written, "failed": ran.failed})
    return ran.code


def register(app: typer.Typer) -> None:
    app.command("simulate-dark")(simulate_dark)
