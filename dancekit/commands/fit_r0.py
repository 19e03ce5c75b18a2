"""``dancekit fit-r0``: Fried parameter and seeing from adaptive-optics telemetry (Morujão et al. 2023).

One row per control loop of each telemetry file (AOT standard or plain modal FITS, see
:mod:`dancekit.io.aot`): pseudo-open-loop modes -> noise per mode from the autocorrelation ->
iterative chi^2 fit of the von Kármán variances of Noll 4-15 with the remaining-error correction
(the sensor's own interaction matrix when there is one, else the built-in Shack-Hartmann model)
-> Monte-Carlo uncertainty of r0 (and L0) -> seeing at zenith, beside the site monitor's
(:mod:`dancekit.ao`). :func:`fit_loops` is the whole per-file path; the benchmark and the figure
scripts call it (or :func:`fit_file`) so that they time and test what users run.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Optional

import numpy as np
import typer

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, log, report_error
from dancekit.errors import DancekitError, InputError, ParameterError

DELAY_HELP = (
    "Loop delay in frames: the slopes of frame k are paired with the DM command logged at frame "
    "k - DELAY (the command computed DELAY frames earlier, acting while those slopes were measured). "
    "Default: the file's AOT DELAY, else loop.delay x frame rate, rounded. Turlib's pairing "
    "(slopes k with commands k + 2) is --delay -2 here; on simulated closed loops it biases r0 by ~-20 %."
)
MATRIX_HELP = (
    "The wavefront sensor's modal interaction matrix, FILE[EXT] (default EXT: G, else the first image): "
    "(slopes, modes) with SLOPEORD 'xxyy' or 'xyxy' and NOLLMIN, or AOT-like (subapertures, 2, modes); "
    "it must include modes above the reconstructed ones. Used for the remaining-error correction instead "
    "of the built-in 4x4 Shack-Hartmann model. Default: the file's own (AOT MODES_TO_MEASUREMENTS, or the "
    "G extension of a modal FITS) when present; 'builtin' forces the built-in model."
)

L0_HELP = (
    "Fit L0 (ln L0 within fit.L0_min..fit.L0_max; its Monte-Carlo spread is in r0_err and L0_ERR; flag "
    "L0_upper_bound/L0_lower_bound at a bound) or hold it at reference.L0 (flag L0_fixed; the site's L0 spread "
    "reference.L0_spread propagated into r0_err as R0_ERR_L0). Default: fit.L0_mode, 'auto': fitted when the "
    "remaining error comes from the sensor's own interaction matrix, held with the built-in sensor model. Why: on 80 "
    "independent files (true L0 25 m, reference 18.9 m) the median |r0 bias| is 0.7 % fitted against 1.4 % held "
    "with the sensor's G, but 3.2 % fitted against 2.5 % held with the built-in model, whose mismatch with the "
    "sensor grows with the radial order as a smaller L0 would."
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
    interaction_matrix: Any = None  # None: the file's when present, else built in; 'builtin'; or an InteractionMatrix
    fit_outer_scale: Optional[bool] = None  # True: fit L0, False: hold reference.L0, None: config fit.L0_mode
    mc_spread: str = "blocks"  # 'blocks' (time-block jackknife covariance) or 'orders' (the paper's eq. 21)
    noise: str = "autocorrelation"  # per-mode noise: 'autocorrelation' or 'propagated' (one slope noise through R)


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


def fits_outer_scale(config, choice: Optional[bool], sensor: str) -> bool:
    """Whether L0 is fitted: ``choice`` (--fit-L0/--fixed-L0), else fit.L0_mode; 'auto' fits it
    only when the remaining error comes from the sensor's own interaction matrix (``sensor`` is
    neither 'builtin' nor 'none')."""
    mode = config.fit.L0_mode if choice is None else ("fit" if choice else "fixed")
    return mode == "fit" or (mode == "auto" and sensor not in ("builtin", "none"))


def _loop_delay(telemetry, settings: FitSettings) -> tuple[int, list[str]]:
    if settings.delay is not None:
        return int(settings.delay), []
    if telemetry.delay is not None:
        d = int(round(telemetry.delay))
        return d, ([] if d == telemetry.delay else ["delay_rounded"])
    rate = settings.frame_rate or telemetry.frame_rate
    return int(round(settings.config.loop.delay * rate)), ["delay_from_config"]


def fit_loops(path: str, settings: FitSettings, seed=None) -> tuple[list[dict], list[DancekitError]]:
    """Read one telemetry file and fit every control loop: the rows fit-r0 writes (lengths in m,
    seeing in arcsec), and an error naming each loop that could not be fitted."""
    from dancekit.io.aot import read_telemetry

    loops, errors = read_telemetry(path)
    rng = np.random.default_rng(seed)
    rows = []
    for telemetry in loops:
        try:
            rows.append(_fit_loop(telemetry, settings, rng))
        except DancekitError as exc:
            if telemetry.format != "aot":
                raise
            errors.append(type(exc)(f"loop '{telemetry.loop_name}': {exc.message}", source=telemetry.source))
    return rows, errors


def fit_file(path: str, settings: FitSettings, seed=None) -> dict:
    """The row of a single-loop file (the first loop of an AOT file with several); raises the
    first loop error."""
    rows, errors = fit_loops(path, settings, seed)
    if errors:
        raise errors[0]
    return rows[0]


def _sensor(telemetry, settings: FitSettings, noll: tuple, modes_shape: tuple, diameter: float, obstruction: float):
    """(C, higher Noll, diag(R R^T), name) of the sensor: the chosen or the file's interaction
    matrix (not one that holds only the controlled modes, like NAOMI's REF_IM), else built in."""
    from dancekit.ao.sensor_matrix import sensor_model

    choice = settings.interaction_matrix
    matrix = telemetry.interaction if choice is None else (None if choice == "builtin" else choice)
    if matrix is not None and choice is None and matrix.noll(noll[0])[-1] <= noll[-1]:
        matrix = None
    reconstructor = None
    if telemetry.format == "aot":
        reconstructor = telemetry.slopes_to_modes.reshape(telemetry.slopes_to_modes.shape[0], -1)
        if matrix is not None and matrix.matrix.shape[0] != reconstructor.shape[1]:
            raise InputError(f"the interaction matrix {matrix.name} {matrix.matrix.shape} has {matrix.matrix.shape[0]} "
                             f"slopes but the WFS measurements {telemetry.slopes.shape} have {reconstructor.shape[1]}: "
                             "it is not this sensor's matrix")
    lenslets = settings.config.wavefront_sensor.lenslets
    if matrix is None and settings.remaining_error:  # without the correction the model's C is not used
        lenslets = builtin_lenslets(telemetry, lenslets, obstruction)
    geometry = {"n_lenslets": lenslets, "obstruction": obstruction}
    try:
        c, higher, gain = sensor_model(noll, settings.config.fit.remaining_error_order, diameter,
                                       None if matrix is None else matrix.matrix,
                                       None if matrix is None else matrix.noll(noll[0]), reconstructor, **geometry)
    except InputError as exc:
        if matrix is None:
            raise
        raise InputError(f"{matrix.name}: {exc.message}; the telemetry's pseudo-open-loop modes are {modes_shape} "
                         f"(Noll {noll[0]}-{noll[-1]})") from None
    return c, higher, gain, "builtin" if matrix is None else matrix.name, lenslets


def builtin_lenslets(telemetry, configured: int, obstruction: float) -> int:
    """Lenslets across the pupil for the built-in Shack-Hartmann model of an AOT file's sensor: the
    config's when its valid subapertures are as many as the file's, else the grid of the file's
    SUBAPERTURE_MASK, else the grid that has that many. Another kind of sensor, or a count no square
    grid gives, is refused: the built-in model would correct the wrong aliasing without a word (a
    4x4 model on an 8x8 sensor's file gave r0 25 % high)."""
    from dancekit.ao.shack_hartmann import lenslets_for, valid_subapertures

    if telemetry.format != "aot":
        return configured
    give = "give the sensor's interaction matrix (--interaction-matrix FILE[EXT])"
    if telemetry.wfs_kind not in (None, "ShackHartmann"):
        raise InputError(f"the file's wavefront sensor is a {telemetry.wfs_kind}, the built-in model a Shack-Hartmann: {give}")
    n_valid = telemetry.slopes.shape[2]
    configured_valid = int(valid_subapertures(configured, obstruction).sum())
    if configured_valid == n_valid:
        return configured
    if telemetry.wfs_lenslets:
        return telemetry.wfs_lenslets
    found = lenslets_for(n_valid, obstruction)
    if found is None:
        raise InputError(f"the file's Shack-Hartmann has {n_valid} valid subapertures, which no square grid of the built-in "
                         f"model gives (>= 50 % lit, obstruction {obstruction:g}; the config's {configured}x{configured} "
                         f"has {configured_valid}): {give}, or its grid with --set wavefront_sensor.lenslets=N")
    return found


def _monitor(telemetry) -> dict:
    from dancekit.ao.seeing import effective_outer_scale, site_monitor_at_500nm

    m = telemetry.monitor
    if m is None:
        return {"monitor": "", "mon_seeing": float("nan"), "mon_r0": float("nan"), "mon_L0": float("nan")}
    seeing, r0 = site_monitor_at_500nm(m.seeing, m.r0, m.wavelength)
    return {"monitor": m.name, "mon_seeing": seeing, "mon_r0": r0,
            "mon_L0": effective_outer_scale(m.layers_l0, m.layers_weight if m.layers_weight.size else None)}


def _fit_loop(telemetry, settings: FitSettings, rng) -> dict:
    from dancekit.ao.fit import estimate_turbulence
    from dancekit.ao.seeing import r0_at_zenith, seeing_from_r0

    cfg = settings.config
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
    cross_talk, higher, gain, sensor, lenslets = _sensor(telemetry, settings, noll, modes.shape, diameter, obstruction)
    if sensor == "builtin" and lenslets != cfg.wavefront_sensor.lenslets:
        log.warning("%s: the built-in Shack-Hartmann takes the file's %dx%d lenslets (the config has %dx%d)",
                    telemetry.source, lenslets, lenslets, cfg.wavefront_sensor.lenslets, cfg.wavefront_sensor.lenslets)
        flags.append(f"builtin_{lenslets}x{lenslets}")
    if not settings.remaining_error:
        cross_talk, higher, sensor = None, None, "none"
        flags.append("no_remaining_error")
    fit_l0 = fits_outer_scale(cfg, settings.fit_outer_scale, sensor)
    iterations = (settings.iterations,) * 2 if settings.iterations else (cfg.fit.min_iterations, cfg.fit.max_iterations)
    result = estimate_turbulence(
        modes, noll=noll, diameter=diameter, max_lag=cfg.fit.noise_lags, noise_degree=cfg.fit.noise_degree,
        cross_talk=cross_talk, higher_noll=higher, correct_remaining=settings.remaining_error,
        fit_noll=fitted, outer_scale=None if fit_l0 else cfg.reference.L0,
        outer_scale_bounds=(cfg.fit.L0_min, cfg.fit.L0_max), min_iterations=iterations[0],
        max_iterations=iterations[1], tol=cfg.fit.tolerance, sigma_floor=cfg.fit.sigma_floor,
        n_monte_carlo=cfg.fit.mc_draws if settings.mc_draws is None else settings.mc_draws,
        mc_spread=settings.mc_spread, seed=rng, outer_scale_spread=cfg.reference.L0_spread,
        remaining_error_uncertainty=cfg.fit.sensor_model_error if sensor == "builtin" else 0.0,
        noise_gain=gain if settings.noise == "propagated" else None)
    airmass = settings.airmass or telemetry.airmass
    elevation = telemetry.elevation if not settings.airmass else float(np.degrees(np.arcsin(1.0 / settings.airmass)))
    if airmass is None:
        airmass = 1.0
        flags.append("airmass_assumed")
    r0_err = result.r0_err_total if np.isfinite(result.r0_err_total) else None
    seeing, seeing_err = seeing_from_r0(result.r0, r0_err, airmass, cfg.fit.seeing_wavelength)
    if result.outer_scale_flag != "fitted":
        flags.append(f"L0_{result.outer_scale_flag}")
    elif result.outer_scale_bound_fraction > 0.16:
        flags.append("L0_mc_at_bound")  # the 68 % interval reaches fit.L0_min or fit.L0_max
    if result.n_monte_carlo and result.mc_spread != settings.mc_spread:
        flags.append(f"mc_spread_{result.mc_spread}")
    if not result.converged and not settings.iterations:
        flags.append("not_converged")
    fitted_l0 = result.outer_scale_flag == "fitted"
    evidence = _evidence(result)
    return {
        "file": telemetry.source, "loop_name": telemetry.loop_name, "format": telemetry.format,
        "loop": "modal" if telemetry.format == "modal" else ("closed" if telemetry.closed_loop else "open"),
        "date": telemetry.date or "",
        "r0": result.r0, "r0_err": result.r0_err_total, "r0_err_mc": result.r0_err,
        "r0_err_sys": result.r0_err_model, "r0_err_L0": result.r0_err_outer_scale, "r0_zenith": float(r0_at_zenith(result.r0, airmass)),
        "seeing": seeing, "seeing_err": seeing_err,
        "L0": result.outer_scale if fitted_l0 else float("nan"),
        "L0_err": result.outer_scale_err if fitted_l0 else float("nan"),
        "L0_lo": result.outer_scale_interval[0], "L0_hi": result.outer_scale_interval[1],
        "L0_flag": result.outer_scale_flag, **_monitor(telemetry), "sensor": sensor,
        "noise": np.asarray(result.noise_variance, dtype=float),
        "n_frames": int(modes.shape[0]), "duration": modes.shape[0] / frame_rate, "framerate": float(frame_rate),
        "delay": int(info["delay"]), "elevation": float("nan") if elevation is None else float(elevation),
        "airmass": float(airmass), "diameter": float(diameter),
        "iterations": result.iterations, "converged": result.converged, "flags": ",".join(flags),
        "sim_r0": telemetry.truth.get("r0", float("nan")), "modes": evidence,
    }


def _evidence(result) -> dict:
    """Per-mode variances of every reconstructed mode (the R0_MODES columns of one row) [rad^2]."""
    measured = np.asarray(result.mode_variance, dtype=float)
    noise_corrected = measured - result.mode_noise
    return {"noll": np.asarray(result.noll, dtype=np.int64), "fitted": np.isin(result.noll, result.fit_noll),
            "measured": measured, "noise": np.asarray(result.mode_noise, dtype=float),
            "noise_corrected": noise_corrected, "remaining": np.asarray(result.mode_remaining, dtype=float),
            "corrected": noise_corrected - result.mode_remaining, "model": np.asarray(result.mode_model, dtype=float)}


def _json_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            value = _json_row(value)
        elif isinstance(value, np.ndarray):
            value = [None if isinstance(v, float) and not np.isfinite(v) else v for v in value.tolist()]
        elif isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out


class MonteCarloSpread(str, Enum):
    blocks = "blocks"
    orders = "orders"


class NoiseModel(str, Enum):
    autocorrelation = "autocorrelation"
    propagated = "propagated"


@cli_command
def fit_r0(
    inputs: opt.Inputs,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Results FITS table (one row per control loop of each input, and the R0_MODES per-mode table), or '-' for standard output.")] = None,
    config: opt.Config = "naomi",
    overrides: opt.Set = None,
    interaction_matrix: Annotated[Optional[str], typer.Option("--interaction-matrix", help=MATRIX_HELP)] = None,
    fit_l0: Annotated[Optional[bool], typer.Option("--fit-L0/--fixed-L0", help=L0_HELP)] = None,
    delay: Annotated[Optional[int], typer.Option("--delay", help=DELAY_HELP)] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Exactly N fit iterations (1: no remaining-error correction). Default: at least fit.min_iterations, until converged.")] = None,
    mc: Annotated[Optional[int], typer.Option("--mc", min=0, help="Monte-Carlo draws for r0_err and L0_err (0: none). Default: fit.mc_draws.")] = None,
    mc_spread: Annotated[MonteCarloSpread, typer.Option("--mc-spread", help="How the Monte Carlo redraws the variances: blocks (their covariance measured by a 20-block jackknife of the time series) or orders (each mode within the spread of its radial order, the paper's eq. 21; 0.6-0.7 times the real file-to-file scatter on independent telemetry).")] = MonteCarloSpread.blocks,
    noise: Annotated[NoiseModel, typer.Option("--noise", help="Noise variance of each mode: autocorrelation (its own, extrapolated to lag 0; the paper) or propagated (one white slope-noise level, pooled over all modes, through the reconstructor: the file's measurements-to-modes, else least squares on the sensor's matrix).")] = NoiseModel.autocorrelation,
    seed: opt.Seed = None,
    framerate: Annotated[Optional[float], typer.Option("--framerate", help="Loop frame rate in Hz, for files that lack it.")] = None,
    airmass: Annotated[Optional[float], typer.Option("--airmass", help="Airmass of the line of sight (default: from the file's elevation, else 1 with a flag).")] = None,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frames to use, START:STOP (0-based, stop excluded).")] = None,
    remaining_error: Annotated[bool, typer.Option("--remaining-error/--no-remaining-error", help="Subtract the aliasing/cross-talk remaining error (the paper's correction).")] = True,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw the per-mode variances against the Noll index (measured, - noise, - remaining error, and the fitted model), one panel per row (the first 12), as a PNG.")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Fit the Fried parameter r0, the seeing and L0 from AO telemetry, one row per control loop.

    Inputs are AOT files (read with aotpy: every control loop's WFS measurements, DM commands and
    matrices to modes; NAOMI modal units are micron, see loop.modal_unit) or plain FITS of
    pseudo-open-loop Noll modes (NOLLMIN/NOLLMAX, BUNIT, FRAMERAT, TELDIAM, POL = T). r0 and seeing
    are at 500 nm; r0 along the line of sight, r0_zenith and seeing at zenith (from the telescope
    elevation). The remaining-error correction uses the sensor's own interaction matrix when the
    file has one with modes above the reconstructed ones (AOT MODES_TO_MEASUREMENTS, a modal FITS'
    G extension) or --interaction-matrix gives it; SENSOR names the model used. A site monitor
    (DIMM) in the file's AOT atmospheric parameters is reported beside the fit (MON_SEEING, MON_R0,
    MON_L0, at zenith and 500 nm). L0 is fitted with the sensor's own matrix and held at
    reference.L0 with the built-in model (fit.L0_mode auto; see --fit-L0). R0_ERR is the
    Monte-Carlo spread (R0_ERR_MC) and two systematic terms in quadrature: R0_ERR_SYS, the
    built-in sensor model's uncertainty when it stands in for the sensor (every fitted mode's
    remaining error uncertain by fit.sensor_model_error = 0.15 of its size; 0 with the sensor's own
    matrix), and R0_ERR_L0, a held L0's spread (reference.L0_spread) propagated. The R0_MODES table holds every mode's measured, noise-corrected and
    remaining-error-corrected variance and the fitted model's. FLAGS lists what was assumed:
    L0_fixed, L0_upper_bound/L0_lower_bound, L0_mc_at_bound, airmass_assumed, delay_from_config,
    delay_rounded, framerate_from_option, mc_spread_orders, no_remaining_error, not_converged. A bad
    file (or loop) is reported and skipped; the good rows are still written and the exit code is 2.

    Example: dancekit fit-r0 night/*.fits --mc 1000 --seed 1 --plot r0_modes.png -o r0_night.fits
    """
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import AOConfig
    from dancekit.io.fits_out import check_output, write_hdus
    from dancekit.io.interaction_matrix import read_interaction_matrix
    from dancekit.io.provenance import Provenance
    from dancekit.io.r0_results import results_hdus

    opt.check_json_with_output(as_json, output or "")
    if output is None and not as_json:
        raise ParameterError("nowhere to put the results: give -o FILE (FITS table) and/or --json", source="-o")
    for name, value in (("--framerate", framerate), ("--airmass", airmass)):
        if value is not None and not (np.isfinite(value) and value > 0 and (name != "--airmass" or value >= 1)):
            raise ParameterError(f"{value} is not allowed ({'>= 1' if name == '--airmass' else 'a positive number of Hz'})", source=name)
    if mc == 1:
        raise ParameterError("1 draw gives no spread; use 0 (no Monte Carlo) or >= 2", source="--mc")
    if plot is not None and (plot == "-" or not plot.lower().endswith(".png")):
        raise ParameterError(f"'{plot}' is not a .png file name (the figure is never written to standard output)", source="--plot")
    check_output(output, overwrite)
    check_output(plot, overwrite)
    cfg = load_config(config, AOConfig, overrides)
    matrix = interaction_matrix
    if matrix is not None and matrix != "builtin":
        try:
            matrix = read_interaction_matrix(matrix)
        except DancekitError as exc:
            raise exc.with_source("--interaction-matrix")
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    children = np.random.SeedSequence(seed).spawn(len(inputs))
    settings = FitSettings(cfg, delay=delay, iterations=iterations, mc_draws=mc, frame_rate=framerate, airmass=airmass,
                           frames=frames, remaining_error=remaining_error, interaction_matrix=matrix,
                           fit_outer_scale=fit_l0, mc_spread=mc_spread.value, noise=noise.value)

    def one(item: tuple) -> tuple[str, list[dict], list[str]]:
        """The file, the rows of its loops that could be fitted, and one message per loop that could not."""
        path, child = item
        done, errors = fit_loops(path, settings, np.random.default_rng(child))
        if errors and not done:
            raise type(errors[0])("; ".join(e.message for e in errors), source=errors[0].source)
        for row in done:
            log.info("%s [%s]: r0 = %.4f +- %.4f m, seeing %.3f\" (%d frames, %s)", row["file"], row["loop_name"],
                     row["r0"], row["r0_err"], row["seeing"], row["n_frames"], row["flags"] or "no flags")
        return path, done, [str(e.with_source(e.source or path)) for e in errors]

    ran = map_inputs(list(zip(inputs, children)), one, scheduler, names=inputs)
    rows, failed, code = [], list(ran.failed), ran.code
    for path, done, errors in ran.results:
        rows.extend(done)
        for message in errors:  # a loop that could not be fitted: its file's other loops are still written
            report_error(message)
        if errors:
            failed.append(path)
            code = 2
    fitted = fit_noll(cfg)
    if output is not None and rows:
        mode = cfg.fit.L0_mode if fit_l0 is None else ("fit" if fit_l0 else "fixed")
        cards = {"L0MODE": (mode, "L0 fit, fixed, or auto (fitted with the sensor's own G)"),
                 "L0REF": (cfg.reference.L0, "[m] L0 where it is held (reference.L0)"),
                 "L0SPRD": (cfg.reference.L0_spread, "ln L0 spread of a held L0 -> R0_ERR_L0"),
                 "SENSERR": (cfg.fit.sensor_model_error, "built-in sensor model error fraction -> R0_ERR_SYS"),
                 "MCSPREAD": (mc_spread.value, "Monte-Carlo draws: blocks (jackknife) or orders (eq. 21)"),
                 "NOISEMOD": (noise.value, "modal noise: autocorrelation or propagated"),
                 "NFAILED": (len(failed), "inputs that could not be fitted (wholly or one loop)")}
        hdus = results_hdus(rows, fitted, cards)
        for hdu in hdus:
            Provenance.from_argv(config_hash=config_hash(cfg), seed=seed).apply(hdu.header)
        write_hdus(hdus, output, overwrite)
        log.info("%d row(s) -> %s", len(rows), output)
    if plot is not None and rows:
        _save_plot(rows, plot, overwrite)
    if as_json:
        opt.print_json({"command": "fit-r0", "seed": seed, "fit_noll": list(fitted),
                        "results": [_json_row(r) for r in rows], "failed": failed})
    return code


def _save_plot(rows: list[dict], path: str, overwrite: bool, most: int = 12) -> None:
    from dancekit.io.fits_out import atomic_path
    from dancekit.plots.r0_modes import modal_variances_figure

    if len(rows) > most:
        log.warning("--plot: drawing the first %d of %d rows", most, len(rows))
    panels = [(f"{r['file']} [{r['loop_name']}]: r0 = {100 * r['r0']:.2f} cm", r["modes"]) for r in rows[:most]]
    figure = modal_variances_figure(panels)
    with atomic_path(path, overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    log.info("per-mode variances -> %s", path)


def register(app: typer.Typer) -> None:
    app.command("fit-r0")(fit_r0)
