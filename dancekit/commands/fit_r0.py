"""``dancekit fit-r0``: Fried parameter and seeing from adaptive-optics telemetry (Morujão et al. 2023).

One row per telemetry file (AOT standard or plain modal FITS, see :mod:`dancekit.io.aot`):
pseudo-open-loop modes -> noise per mode from the autocorrelation -> iterative chi^2 fit of the
von Kármán variances of Noll 4-15 with the remaining-error correction -> Monte-Carlo uncertainty
-> seeing at zenith (:mod:`dancekit.ao`). :func:`fit_file` is the whole per-file path; the
benchmark and the figure scripts call it so that they time and test what users run.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from dataclasses import dataclass
from typing import Annotated, Any, Optional

import numpy as np
import typer

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import InputError, ParameterError

DELAY_HELP = (
    "Loop delay in frames: the slopes of frame k are paired with the DM command logged at frame "
    "k - DELAY (the command computed DELAY frames earlier, acting while those slopes were measured). "
    "Default: the file's AOT DELAY, else loop.delay x frame rate, rounded. Turlib's pairing "
    "(slopes k with commands k + 2) is --delay -2 here; on simulated closed loops it biases r0 by ~-20 %."
)


@dataclass(frozen=True)
class FitSettings:
    """The options of one fit-r0 call that apply to every file."""

    config: Any  # AOConfig
    delay: Optional[int] = None  # frames, causal (see DELAY_HELP); None: from the file or the config
    iterations: Optional[int] = None  # exact number of iterations; None: config min..max until converged
    mc_draws: Optional[int] = None  # None: config fit.mc_draws
    frame_rate: Optional[float] = None  # Hz, used when the file lacks it (or to override it)
    airmass: Optional[float] = None  # overrides the file's elevation/AIRMASS
    frames: Optional[str] = None  # START:STOP of the series to use
    remaining_error: bool = True  # subtract the aliasing/cross-talk remaining error (eq. 15)


def fit_noll(config) -> tuple:
    """Noll indices of the fitted radial orders (config fit.radial_order_min..max)."""
    from dancekit.ao.zernike import n_modes_to_order

    first = n_modes_to_order(config.fit.radial_order_min - 1) + 1
    return tuple(range(first, n_modes_to_order(config.fit.radial_order_max) + 1))


def pseudo_open_loop(telemetry, settings: FitSettings) -> tuple[np.ndarray, tuple, dict]:
    """Pseudo-open-loop modes (T', M) [rad at 500 nm], their Noll indices, and what was assumed."""
    from dancekit.ao import pseudo_open_loop as pol

    cfg = settings.config
    flags: list[str] = []
    unit = telemetry.modal_unit or cfg.loop.modal_unit
    wavelength = telemetry.wavelength or cfg.wavefront_sensor.wavelength
    start, stop = opt.parse_range(settings.frames, telemetry.n_frames)
    delay = 0
    if telemetry.format == "modal":
        modes = pol.to_radians_at_500nm(telemetry.modes[start:stop], unit, wavelength)
    else:
        residual = pol.modes_from_slopes(telemetry.slopes[start:stop], telemetry.slopes_to_modes)
        if telemetry.closed_loop:
            if telemetry.commands is not None:
                dm = pol.modes_from_commands(telemetry.commands[start:stop], telemetry.commands_to_modes)
            else:
                dm = np.asarray(telemetry.dm_modes[start:stop], dtype=float)
            delay, how = _loop_delay(telemetry, settings)
            flags += how
            modes = pol.to_radians_at_500nm(pol.pseudo_open_loop_modes(dm, residual, -delay), unit, wavelength)
        else:
            modes = pol.to_radians_at_500nm(residual, unit, wavelength)
    noll_min = telemetry.noll_min or cfg.loop.controlled_noll_min
    return modes, tuple(range(noll_min, noll_min + modes.shape[1])), {"delay": delay, "flags": flags}


def _loop_delay(telemetry, settings: FitSettings) -> tuple[int, list[str]]:
    if settings.delay is not None:
        return int(settings.delay), []
    if telemetry.delay is not None:
        d = int(round(telemetry.delay))
        return d, ([] if d == telemetry.delay else ["delay_rounded"])
    rate = settings.frame_rate or telemetry.frame_rate
    return int(round(settings.config.loop.delay * rate)), ["delay_from_config"]


def fit_file(path: str, settings: FitSettings, seed=None) -> dict:
    """Read one telemetry file and fit it: the row fit-r0 writes (lengths in m, seeing in arcsec)."""
    from dancekit.ao.fit import estimate_turbulence
    from dancekit.ao.modal_model import naomi_cross_talk
    from dancekit.ao.seeing import r0_at_zenith, seeing_from_r0
    from dancekit.io.aot import read_telemetry

    cfg = settings.config
    telemetry = read_telemetry(path)
    frame_rate = settings.frame_rate or telemetry.frame_rate
    if frame_rate is None:
        raise InputError("no frame rate in the file (AOT FRAMERATE / modal FRAMERAT); give it with --framerate HZ")
    flags: list[str] = []
    if settings.frame_rate and telemetry.frame_rate and abs(settings.frame_rate - telemetry.frame_rate) > 1e-9:
        log.warning("%s: --framerate %g Hz replaces the file's %g Hz", telemetry.source, settings.frame_rate, telemetry.frame_rate)
        flags.append("framerate_from_option")
    modes, noll, info = pseudo_open_loop(telemetry, settings)
    flags += info["flags"]
    diameter = telemetry.diameter or cfg.telescope.diameter
    obstruction = telemetry.obstruction if telemetry.obstruction is not None else cfg.telescope.obstruction
    fitted = fit_noll(cfg)
    cross_talk = higher = None
    if settings.remaining_error:
        cross_talk, higher = naomi_cross_talk(noll, cfg.fit.remaining_error_order, diameter,
                                              n_lenslets=cfg.wavefront_sensor.lenslets, obstruction=obstruction)
    else:
        flags.append("no_remaining_error")
    iterations = (settings.iterations,) * 2 if settings.iterations else (cfg.fit.min_iterations, cfg.fit.max_iterations)
    result = estimate_turbulence(
        modes, noll=noll, diameter=diameter, max_lag=cfg.fit.noise_lags, noise_degree=cfg.fit.noise_degree,
        cross_talk=cross_talk, higher_noll=higher, correct_remaining=settings.remaining_error,
        fit_noll=fitted, outer_scale=None if cfg.fit.fit_L0 else cfg.reference.L0,
        outer_scale_bounds=(cfg.fit.L0_min, cfg.fit.L0_max), min_iterations=iterations[0],
        max_iterations=iterations[1], tol=cfg.fit.tolerance, sigma_floor=cfg.fit.sigma_floor,
        n_monte_carlo=cfg.fit.mc_draws if settings.mc_draws is None else settings.mc_draws, seed=seed)
    airmass = settings.airmass or telemetry.airmass
    if airmass is None:
        airmass = 1.0
        flags.append("airmass_assumed")
    r0_err = result.r0_err if np.isfinite(result.r0_err) else None
    seeing, seeing_err = seeing_from_r0(result.r0, r0_err, airmass, cfg.fit.seeing_wavelength)
    if result.outer_scale_flag != "fitted":
        flags.append(f"L0_{result.outer_scale_flag}")
    if not result.converged and not settings.iterations:
        flags.append("not_converged")
    return {
        "file": telemetry.source, "format": telemetry.format,
        "loop": "modal" if telemetry.format == "modal" else ("closed" if telemetry.closed_loop else "open"),
        "date": telemetry.date or "",
        "r0": result.r0, "r0_err": result.r0_err, "r0_zenith": float(r0_at_zenith(result.r0, airmass)),
        "seeing": seeing, "seeing_err": seeing_err,
        "L0": result.outer_scale if result.outer_scale_flag == "fitted" else float("nan"),
        "L0_flag": result.outer_scale_flag,
        "noise": np.asarray(result.noise_variance, dtype=float),
        "n_frames": int(modes.shape[0]), "duration": modes.shape[0] / frame_rate, "framerate": float(frame_rate),
        "delay": int(info["delay"]), "airmass": float(airmass), "diameter": float(diameter),
        "iterations": result.iterations, "converged": result.converged, "flags": ",".join(flags),
        "sim_r0": telemetry.truth.get("r0", float("nan")),
    }


# column: (FITS format given a row, unit, comment)
COLUMNS = {
    "file": ("A", "", "telemetry file"),
    "format": ("A", "", "aot or modal"),
    "loop": ("A", "", "open, closed, or modal (pseudo-open-loop)"),
    "date": ("A", "", "start of the series (DATE-BEG)"),
    "r0": ("D", "m", "line-of-sight Fried parameter at 500 nm"),
    "r0_err": ("D", "m", "Monte-Carlo standard deviation of r0"),
    "r0_zenith": ("D", "m", "r0 at zenith, 500 nm"),
    "seeing": ("D", "arcsec", "FWHM seeing at zenith"),
    "seeing_err": ("D", "arcsec", "seeing uncertainty"),
    "L0": ("D", "m", "fitted L0; NaN when fixed or at a bound"),
    "L0_flag": ("A", "", "fitted, fixed, lower_bound or upper_bound"),
    "noise": ("D", "rad2", "noise variance per fitted mode, 500 nm"),
    "n_frames": ("K", "", "frames fitted"),
    "duration": ("D", "s", "time horizon fitted"),
    "framerate": ("D", "Hz", "loop frame rate"),
    "delay": ("K", "", "loop delay used, frames (0: open loop)"),
    "airmass": ("D", "", "airmass used for zenith values"),
    "diameter": ("D", "m", "telescope diameter used"),
    "iterations": ("K", "", "fit iterations"),
    "converged": ("L", "", "r0 changed by less than fit.tolerance"),
    "flags": ("A", "", "comma-separated notes on what was assumed"),
    "sim_r0": ("D", "m", "true r0 of a simulation (NaN: real data)"),
}


def results_hdus(rows: list[dict], fitted: tuple, header_cards: dict):
    """The results as a primary HDU plus a FIT_R0 binary table, one row per file."""
    from astropy.io import fits

    columns = []
    for key, (form, unit, _) in COLUMNS.items():
        values = [row[key] for row in rows]
        if form == "A":
            width = max(1, max(len(str(v)) for v in values))
            columns.append(fits.Column(name=key.upper(), format=f"{width}A", array=np.array(values, dtype=f"U{width}")))
        elif key == "noise":
            columns.append(fits.Column(name="NOISE", format=f"{len(fitted)}D", unit=unit, array=np.array(values)))
        else:
            columns.append(fits.Column(name=key.upper(), format=form, unit=unit or None, array=np.array(values)))
    table = fits.BinTableHDU.from_columns(columns, name="FIT_R0")
    for i, (key, (_, _, comment)) in enumerate(COLUMNS.items(), start=1):
        table.header[f"TTYPE{i}"] = (key.upper(), comment)
    primary = fits.PrimaryHDU()
    for header in (primary.header, table.header):
        header["FITNOLL"] = (f"{fitted[0]}-{fitted[-1]}", "Noll modes fitted (NOISE columns in this order)")
        for key, (value, comment) in header_cards.items():
            header[key] = (value, comment)
    return fits.HDUList([primary, table])


def _json_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, np.ndarray):
            value = [None if not np.isfinite(v) else float(v) for v in value]
        elif isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out


@cli_command
def fit_r0(
    inputs: opt.Inputs,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Results FITS table (one row per input), or '-' for standard output.")] = None,
    config: opt.Config = "naomi",
    overrides: opt.Set = None,
    delay: Annotated[Optional[int], typer.Option("--delay", help=DELAY_HELP)] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Exactly N fit iterations (1: no remaining-error correction). Default: at least fit.min_iterations, until converged.")] = None,
    mc: Annotated[Optional[int], typer.Option("--mc", min=0, help="Monte-Carlo draws for r0_err (0: none). Default: fit.mc_draws.")] = None,
    seed: opt.Seed = None,
    framerate: Annotated[Optional[float], typer.Option("--framerate", help="Loop frame rate in Hz, for files that lack it.")] = None,
    airmass: Annotated[Optional[float], typer.Option("--airmass", help="Airmass of the line of sight (default: from the file's elevation, else 1 with a flag).")] = None,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frames to use, START:STOP (0-based, stop excluded).")] = None,
    remaining_error: Annotated[bool, typer.Option("--remaining-error/--no-remaining-error", help="Subtract the aliasing/cross-talk remaining error (the paper's correction).")] = True,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Fit the Fried parameter r0, the seeing and L0 from AO telemetry, one row per file.

    Inputs are AOT files (read with aotpy: WFS measurements, DM commands and the matrices to
    modes; NAOMI modal units are micron, see loop.modal_unit) or plain FITS of pseudo-open-loop
    Noll modes (NOLLMIN/NOLLMAX, BUNIT, FRAMERAT, TELDIAM, POL = T). r0 and seeing are at 500 nm;
    r0 along the line of sight, r0_zenith and seeing at zenith. L0 is fixed at reference.L0 (NaN
    with flag 'fixed') unless --set fit.fit_L0=true. FLAGS lists what was assumed: L0_fixed,
    L0_upper_bound/L0_lower_bound, airmass_assumed, delay_from_config, delay_rounded,
    framerate_from_option, no_remaining_error, not_converged. A bad file is reported and
    skipped; the good rows are still written and the exit code is 2.

    Example: dancekit fit-r0 night/*.fits --mc 1000 --seed 1 -o r0_night.fits
    """
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import AOConfig
    from dancekit.io.fits_out import check_output, write_hdus
    from dancekit.io.provenance import Provenance

    opt.check_json_with_output(as_json, output or "")
    if output is None and not as_json:
        raise ParameterError("nowhere to put the results: give -o FILE (FITS table) and/or --json", source="-o")
    for name, value in (("--framerate", framerate), ("--airmass", airmass)):
        if value is not None and not (np.isfinite(value) and value > 0 and (name != "--airmass" or value >= 1)):
            raise ParameterError(f"{value} is not allowed ({'>= 1' if name == '--airmass' else 'a positive number of Hz'})", source=name)
    if mc == 1:
        raise ParameterError("1 draw gives no spread; use 0 (no Monte Carlo) or >= 2", source="--mc")
    check_output(output, overwrite)
    cfg = load_config(config, AOConfig, overrides)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    children = np.random.SeedSequence(seed).spawn(len(inputs))
    settings = FitSettings(cfg, delay, iterations, mc, framerate, airmass, frames, remaining_error)

    def one(item: tuple) -> dict:
        path, child = item
        row = fit_file(path, settings, np.random.default_rng(child))
        log.info("%s: r0 = %.4f +- %.4f m, seeing %.3f\" (%d frames, %s)", row["file"], row["r0"], row["r0_err"],
                 row["seeing"], row["n_frames"], row["flags"] or "no flags")
        return row

    ran = map_inputs(list(zip(inputs, children)), one, scheduler, names=inputs)
    rows, failed, code = ran.results, ran.failed, ran.code
    fitted = fit_noll(cfg)
    if output is not None and rows:
        cards = {"L0FIX": (cfg.reference.L0 if not cfg.fit.fit_L0 else -1.0, "[m] fixed L0 of the fit (-1: L0 fitted)"),
                 "NFAILED": (len(failed), "inputs that could not be fitted")}
        hdus = results_hdus(rows, fitted, cards)
        for hdu in hdus:
            Provenance.from_argv(config_hash=config_hash(cfg), seed=seed).apply(hdu.header)
        write_hdus(hdus, output, overwrite)
        log.info("%d row(s) -> %s", len(rows), output)
    if as_json:
        opt.print_json({"command": "fit-r0", "seed": seed, "fit_noll": list(fitted),
                        "results": [_json_row(r) for r in rows], "failed": failed})
    return code


def register(app: typer.Typer) -> None:
    app.command("fit-r0")(fit_r0)
