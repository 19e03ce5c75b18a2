"""``dancekit simulate-telemetry``: synthetic NAOMI telemetry with a known r0, written as AOT.

Two turbulence models (``--model``, default ``simulation.model``):

* ``screens``: moving multi-layer von Kármán phase screens (``simulation.layers``, frozen flow at
  the loop rate, :mod:`dancekit.ao.telemetry_screens`), so every Zernike order reaches the
  sensor (real aliasing);
* ``exact``: modes Noll 2..45 (radial order ``simulation.max_radial_order``) drawn exactly from
  the von Kármán covariance with a frozen-flow-like time correlation (:mod:`dancekit.ao.synthetic`).

Either way: the geometric 4x4 Shack-Hartmann slopes plus white slope noise at a chosen S/N,
reconstructed into Noll 2-15 with the library reconstructor; optionally a closed loop (modal
integrator with gain and delay) logging DM commands and residual slopes. Written with aotpy like the NAOMI translator writes real
data (modal unit ``loop.modal_unit``, not stated in the file), so fit-r0 reads it the same way.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from enum import Enum
from typing import Annotated, Optional

import numpy as np
import typer

from dancekit.commands import options as opt
from dancekit.commands.execution import make_products, product_index
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import ParameterError


class TelemetryFormat(str, Enum):
    aot = "aot"
    modal = "modal"


class TurbulenceModel(str, Enum):
    screens = "screens"
    exact = "exact"


@cli_command
def simulate_telemetry(
    output: opt.Output,
    config: opt.Config = "naomi",
    overrides: opt.Set = None,
    r0: Annotated[Optional[float], typer.Option("--r0", help="Line-of-sight Fried parameter at 500 nm, m (default reference.r0).")] = None,
    outer_scale: Annotated[Optional[float], typer.Option("--L0", help="Outer scale in m (default reference.L0; 'inf' for Kolmogorov).")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Length of the series, s.")] = 20.0,
    framerate: Annotated[Optional[float], typer.Option("--framerate", help="Loop frame rate, Hz (default loop.frame_rate).")] = None,
    snr: Annotated[Optional[float], typer.Option("--snr", help="Modal S/N: turbulence / noise variance summed over Noll 4-15 (default simulation.snr).")] = None,
    slope_noise: Annotated[Optional[float], typer.Option("--slope-noise", help="White slope noise in rad/m (replaces --snr; 0 = noise-free).")] = None,
    closed_loop: Annotated[bool, typer.Option("--closed-loop", help="Close the loop with a modal integrator (logs DM commands and residual slopes).")] = False,
    gain: Annotated[Optional[float], typer.Option("--gain", help="Integrator gain of the closed loop (default loop.gain).")] = None,
    delay: Annotated[Optional[int], typer.Option("--delay", min=1, help="Loop delay in frames: the command logged at frame k acts from frame k + DELAY (default loop.delay x frame rate, rounded).")] = None,
    wind: Annotated[Optional[float], typer.Option("--wind", help="Effective wind speed, m/s: model exact's speed (default simulation.wind_speed); model screens scales the layers' winds to this Cn2-weighted 5/3-moment (default: the layers' own).")] = None,
    airmass: Annotated[float, typer.Option("--airmass", help="Airmass written as the telescope elevation.")] = 1.0,
    monitor_seeing: Annotated[Optional[float], typer.Option("--monitor-seeing", help="Seeing in arcsec (zenith, 500 nm) of the simulated site monitor (DIMM) written to the AOT file; default: the true seeing (a real DIMM sees other air).")] = None,
    file_format: Annotated[TelemetryFormat, typer.Option("--format", help="aot (the AOT standard) or modal (plain FITS of pseudo-open-loop modes in rad).")] = TelemetryFormat.aot,
    model: Annotated[Optional[TurbulenceModel], typer.Option("--model", help="screens (moving multi-layer phase screens, simulation.layers) or exact (modes drawn from the von Kármán covariance); default simulation.model.")] = None,
    seed: opt.Seed = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    count: opt.Count = None,
    scheduler: opt.Scheduler = None,
):
    """Simulate NAOMI-like AO telemetry with a known r0 and L0, as an AOT file.

    By default the turbulence is moving multi-layer von Kármán phase screens (the config's
    simulation.layers, frozen flow at the loop rate) seen by a geometric Shack-Hartmann, so all
    Zernike orders alias into the 14 reconstructed modes as on the sky; --model exact draws the
    modes exactly from the von Kármán covariance instead (no aliasing above Noll 45). The r0, L0,
    S/N, slope noise, wind, model and seed are recorded in the primary header (SIM* cards) and the
    true zenith r0 in an AOT_ATMOSPHERIC_PARAMETERS row, so fit-r0 can be checked against them. The
    AOT file also carries a simulated site monitor (DIMM: zenith seeing and r0 at 500 nm, the layers'
    L0, Cn2 fractions, heights and winds) and the telescope elevation (from --airmass), and, like
    NAOMI's REF_IM, the sensor's response to the controlled modes (MODES_TO_MEASUREMENTS).
    With --count N, -o is a folder of N series (telemetry_0000.fits ...) of the same turbulence,
    each drawn from its own seed spawned from --seed (DKINDEX in its header).

    Example: dancekit simulate-telemetry --r0 0.12 --L0 25 --snr 5 --closed-loop --seed 1 -o telemetry.fits
    """
    from dancekit.ao import pseudo_open_loop as pol
    from dancekit.ao.seeing import seeing_from_r0
    from dancekit.ao.shack_hartmann import interaction_matrix, reconstructor
    from dancekit.ao.synthetic import modal_correlation_frames, simulate_telemetry as simulate, slope_noise_for_snr
    from dancekit.ao.telemetry_screens import (TurbulentLayer, effective_wind_speed, simulate_screen_telemetry,
                                                with_effective_wind_speed)
    from dancekit.ao.zernike import n_modes_to_order
    from dancekit.commands.fit_r0 import fit_noll
    from dancekit.io.aot_write import LoopRecord, write_aot, write_modal_fits
    from dancekit.io.config import config_hash, load_config
    from dancekit.io.config_schema import AOConfig
    from dancekit.io.fits_out import check_output
    from dancekit.io.provenance import Provenance

    if count is None:
        opt.check_json_with_output(as_json, output)
        check_output(output, overwrite)
    cfg = load_config(config, AOConfig, overrides)
    r0 = cfg.reference.r0 if r0 is None else r0
    outer_scale = cfg.reference.L0 if outer_scale is None else outer_scale
    rate = cfg.loop.frame_rate if framerate is None else framerate
    model = TurbulenceModel(cfg.simulation.model) if model is None else model
    gain = cfg.loop.gain if gain is None else gain
    for name, value in (("--r0", r0), ("--L0", outer_scale), ("--duration", duration), ("--framerate", rate),
                        ("--wind", cfg.simulation.wind_speed if wind is None else wind)):
        if not value > 0 or (name != "--L0" and not np.isfinite(value)):
            raise ParameterError(f"must be a positive number, got {value}", source=name)
    if not (np.isfinite(airmass) and airmass >= 1):
        raise ParameterError(f"airmass must be >= 1, got {airmass}", source="--airmass")
    if monitor_seeing is not None and not (np.isfinite(monitor_seeing) and monitor_seeing > 0):
        raise ParameterError(f"must be a positive number of arcsec, got {monitor_seeing}", source="--monitor-seeing")
    if closed_loop and not 0 < gain < 2:
        raise ParameterError(f"integrator gain must be in (0, 2), got {gain}", source="--gain")
    n_frames = int(round(duration * rate))
    if n_frames < 2:
        raise ParameterError(f"{duration} s at {rate} Hz is {n_frames} frame(s); need at least 2", source="--duration")
    loop_delay = delay if delay is not None else max(1, int(round(cfg.loop.delay * rate)))
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])

    controlled = tuple(range(cfg.loop.controlled_noll_min, cfg.loop.controlled_noll_max + 1))
    geometry = {"n_lenslets": cfg.wavefront_sensor.lenslets, "obstruction": cfg.telescope.obstruction}
    diameter = cfg.telescope.diameter
    max_noll = n_modes_to_order(cfg.simulation.max_radial_order)
    if slope_noise is None:
        snr = cfg.simulation.snr if snr is None else snr
        slope_noise = slope_noise_for_snr(snr, r0, outer_scale, diameter=diameter, controlled_noll=controlled,
                                          fit_noll=fit_noll(cfg), **geometry)
    elif not (np.isfinite(slope_noise) and slope_noise >= 0):
        raise ParameterError(f"must be >= 0 rad/m, got {slope_noise}", source="--slope-noise")
    else:
        snr = None
    if model is TurbulenceModel.exact:
        wind = cfg.simulation.wind_speed if wind is None else wind
        correlation = modal_correlation_frames(range(2, max_noll + 1), wind, diameter, rate)
        n_layers = 0

        def draw(random):
            return simulate(r0, outer_scale, n_frames=n_frames, diameter=diameter, controlled_noll=controlled,
                            max_noll=max_noll, correlation_frames=correlation, slope_noise=slope_noise,
                            loop_gain=gain if closed_loop else 0.0, loop_delay=loop_delay, seed=random, **geometry)
    else:
        layers = _turbulent_layers(cfg.simulation, TurbulentLayer)
        if wind is not None:
            layers = with_effective_wind_speed(layers, wind)
        wind, n_layers = effective_wind_speed(layers), len(layers)

        def draw(random):
            return simulate_screen_telemetry(
                r0, outer_scale, layers, n_frames=n_frames, frame_rate=rate, diameter=diameter,
                controlled_noll=controlled, true_noll=range(2, max_noll + 1), slope_noise=slope_noise,
                loop_gain=gain if closed_loop else 0.0, loop_delay=loop_delay,
                samples_per_subaperture=cfg.simulation.samples_per_subaperture, seed=random, **geometry)

    truth_seeing = seeing_from_r0(r0, None, airmass)[0]
    cards = {
        "SIMR0": (float(r0), "[m] true line-of-sight r0 at 500 nm"),
        "SIML0": (float(outer_scale) if np.isfinite(outer_scale) else -1.0, "[m] true outer scale (-1: infinite)"),
        "SIMSNR": (float(snr) if snr is not None else -1.0, "modal S/N, Noll 4-15 (-1: from slope noise)"),
        "SIMSNOI": (float(slope_noise), "[rad/m] white slope noise rms"),
        "SIMWIND": (float(wind), "[m/s] effective wind speed"),
        "SIMMODEL": (model.value, "turbulence: screens (phase screens) or exact"),
        "SIMNLAY": (int(n_layers), "frozen-flow layers (0: model exact)"),
        "SIMGAIN": (float(gain) if closed_loop else 0.0, "integrator gain (0: open loop)"),
        "SIMNOLL": (int(max_noll), "highest Noll drawn (exact) or kept as truth (screens)"),
    }
    unit = cfg.loop.modal_unit

    def one(job: tuple) -> dict:
        """One series: job = (target, its SeedSequence, index in --count or None: then --seed as before)."""
        target, sequence, index = job
        sim = draw(seed if index is None else np.random.default_rng(sequence))
        provenance = Provenance.from_argv(config_hash=config_hash(cfg), seed=seed, **product_index(index))
        if file_format is TelemetryFormat.aot:
            n_sub = sim.slopes.shape[1] // 2
            wavelength = cfg.wavefront_sensor.wavelength
            g_f = interaction_matrix(controlled, diameter=diameter, **geometry)  # rad/m per rad
            s2m = pol.from_radians_at_500nm(reconstructor(g_f), unit, wavelength).reshape(len(controlled), 2, n_sub)
            m2s = (g_f * pol.to_radians_at_500nm(1.0, unit, wavelength)).reshape(2, n_sub, len(controlled)).transpose(1, 0, 2)
            loop = LoopRecord(
                "main loop", slopes=sim.slopes.reshape(n_frames, 2, n_sub), slopes_to_modes=s2m, frame_rate=rate,
                delay=float(loop_delay), closed_loop=closed_loop,
                commands=pol.from_radians_at_500nm(sim.dm_modes, unit, wavelength) if closed_loop else None,
                commands_to_modes=np.eye(len(controlled)) if closed_loop else None, modes_to_slopes=m2s)
            monitor = _site_monitor(truth_seeing if monitor_seeing is None else monitor_seeing, outer_scale,
                                    layers if model is TurbulenceModel.screens else None, wind)
            write_aot(target, [loop], diameter=diameter, obstruction=cfg.telescope.obstruction,
                      elevation=float(np.degrees(np.arcsin(1.0 / airmass))), monitor=monitor,
                      truth={"r0": float(r0 * airmass ** 0.6), "seeing": truth_seeing},
                      cards=cards, provenance=provenance, overwrite=overwrite)
        else:
            modes = pol.pseudo_open_loop_modes(sim.dm_modes, sim.residual_modes, -loop_delay) if closed_loop else sim.reconstructed
            write_modal_fits(target, modes, noll_min=controlled[0], unit="rad", wavelength=500e-9, frame_rate=rate,
                             diameter=diameter, obstruction=cfg.telescope.obstruction, airmass=airmass,
                             cards=cards, provenance=provenance, overwrite=overwrite)
        log.info("simulated %d frames (%s loop, r0 = %.3f m, L0 = %g m, slope noise %.3g rad/m) -> %s",
                 n_frames, "closed" if closed_loop else "open", r0, outer_scale, slope_noise, target)
        return {
            "command": "simulate-telemetry", "output": target, "format": file_format.value, "r0": r0, "L0": outer_scale,
            "seeing": truth_seeing, "snr": snr, "slope_noise": slope_noise, "n_frames": n_frames, "frame_rate": rate,
            "closed_loop": closed_loop, "gain": gain if closed_loop else 0.0, "delay": loop_delay, "seed": seed,
            **({} if index is None else {"index": index}), "model": model.value, "wind": wind, "n_layers": n_layers,
            "monitor_seeing": (truth_seeing if monitor_seeing is None else monitor_seeing) if file_format is TelemetryFormat.aot else None,
            "noise_variance": [float(v) for v in sim.noise_variance],
        }

    return make_products(one, output, "telemetry", count, seed, overwrite, scheduler, as_json)


def _site_monitor(seeing: float, outer_scale: float, layers, wind: float):
    """A simulated DIMM row: zenith seeing [arcsec] and r0 [m] at 500 nm, and the layers' L0 [m],
    Cn2 fractions, heights [m] and winds [m/s, deg from +x] (one ground layer for model exact)."""
    import math

    from dancekit.ao.seeing import r0_from_seeing
    from dancekit.io.aot_write import MonitorRecord

    if layers is None:
        profile = [(0.0, 1.0, wind, 0.0)]
    else:
        total = sum(la.cn2_fraction for la in layers)
        profile = [(la.altitude, la.cn2_fraction / total, math.hypot(*la.wind), math.degrees(math.atan2(la.wind[1], la.wind[0])))
                   for la in layers]
    l0 = float(outer_scale) if np.isfinite(outer_scale) else 1e6
    return MonitorRecord(
        "DIMM (simulated)", wavelength=500e-9, seeing=float(seeing), r0=float(r0_from_seeing(seeing)),
        layers_l0=tuple(l0 for _ in profile), layers_weight=tuple(p[1] for p in profile),
        layers_height=tuple(p[0] for p in profile), layers_wind_speed=tuple(p[2] for p in profile),
        layers_wind_direction=tuple(p[3] for p in profile))


def _turbulent_layers(simulation, layer_type) -> tuple:
    """The config's frozen-flow layers as library layers (wind vector from speed and direction in
    degrees); one ground layer at simulation.wind_speed when the config lists none."""
    import math

    if not simulation.layers:
        return (layer_type(0.0, 1.0, (simulation.wind_speed, 0.0)),)
    return tuple(layer_type(la.altitude, la.cn2_fraction,
                            (la.wind_speed * math.cos(math.radians(la.wind_direction)),
                             la.wind_speed * math.sin(math.radians(la.wind_direction))))
                 for la in simulation.layers)


def register(app: typer.Typer) -> None:
    app.command("simulate-telemetry")(simulate_telemetry)
