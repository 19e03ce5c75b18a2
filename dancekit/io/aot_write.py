"""Writing AO telemetry: AOT files (through aotpy) with one or more control loops, and modal FITS.

Writers take plain arrays and numbers, put the provenance cards on the primary header and write
atomically (``-`` = stdout) through :func:`dancekit.io.fits_out.write_hdus`. The layouts are those
:mod:`dancekit.io.aot` reads.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from dancekit.io.aot import TRUTH_UID
from dancekit.io.fits_out import write_hdus
from dancekit.io.provenance import Provenance


@dataclass(frozen=True)
class LoopRecord:
    """One control loop to write. Arrays in Python order; units are the writer's choice."""

    name: str  # loop UID
    slopes: np.ndarray  # (T, 2, S) WFS measurements
    slopes_to_modes: np.ndarray  # (M, 2, S) measurements-to-modes (the reconstructor)
    frame_rate: float  # Hz
    delay: float  # frames
    closed_loop: bool
    commands: np.ndarray | None = None  # (T, A) DM commands (closed loop)
    commands_to_modes: np.ndarray | None = None  # (M, A)
    modes_to_slopes: np.ndarray | None = None  # (S, 2, M') the sensor's modal interaction matrix
    wfs_wavelength: float | None = None  # m


@dataclass(frozen=True)
class MonitorRecord:
    """A site monitor (DIMM) row of AOT_ATMOSPHERIC_PARAMETERS: values at zenith at ``wavelength``."""

    name: str
    wavelength: float  # m
    seeing: float  # arcsec (FWHM)
    r0: float  # m
    layers_l0: tuple = ()  # outer scale per layer [m]
    layers_weight: tuple = ()  # Cn2 fraction per layer
    layers_height: tuple = ()  # m
    layers_wind_speed: tuple = ()  # m/s
    layers_wind_direction: tuple = ()  # deg


def _layer_image(aotpy, name: str, values) -> object:
    return aotpy.Image(name, np.asarray(values, dtype=float)[None, :]) if len(values) else None


def _monitor_parameters(aotpy, monitor: MonitorRecord):
    return aotpy.AtmosphericParameters(
        monitor.name, wavelength=float(monitor.wavelength), seeing=[float(monitor.seeing)], r0=[float(monitor.r0)],
        layers_l0=_layer_image(aotpy, "MONITOR L0", monitor.layers_l0),
        layers_relative_weight=_layer_image(aotpy, "MONITOR WEIGHT", monitor.layers_weight),
        layers_height=_layer_image(aotpy, "MONITOR HEIGHT", monitor.layers_height),
        layers_wind_speed=_layer_image(aotpy, "MONITOR WIND SPEED", monitor.layers_wind_speed),
        layers_wind_direction=_layer_image(aotpy, "MONITOR WIND DIRECTION", monitor.layers_wind_direction))


def write_aot(path: str, loops, *, diameter: float, obstruction: float, elevation: float = 90.0,
              monitor: MonitorRecord | None = None, truth: dict | None = None, cards: dict | None = None,
              provenance: Provenance | None = None, overwrite: bool = False,
              system_name: str = "dancekit NAOMI simulation") -> None:
    """Write :class:`LoopRecord` control loops as an AOT file with aotpy.

    ``diameter`` [m]; ``obstruction`` diameter ratio; ``elevation`` [deg]; ``monitor`` a site
    monitor row; ``truth`` (r0 [m] at zenith at 500 nm, seeing [arcsec]) a simulation-truth row;
    ``cards`` {KEY: (value, comment)} and the provenance go to the primary header. Image extensions
    of the first loop are GRADIENTS, S2M, POSITIONS, DM2M, M2S; later loops add their number.
    """
    import aotpy

    telescope = aotpy.MainTelescope("main telescope", elevation=float(elevation), enclosing_diameter=float(diameter),
                                    inscribed_diameter=float(diameter), obstruction_diameter=float(diameter * obstruction))
    star = aotpy.NaturalGuideStar("NGS")
    sensors, mirrors, control = [], [], []
    for k, record in enumerate(loops):
        tag = "" if k == 0 else str(k + 1)
        slopes = np.asarray(record.slopes, dtype=float)
        n_frames = slopes.shape[0]
        time = aotpy.Time(f"loop time{tag}", timestamps=(np.arange(n_frames) / record.frame_rate).tolist(),
                          frame_numbers=list(range(n_frames)))
        wfs = aotpy.ShackHartmann(f"WFS{tag}", source=star, n_valid_subapertures=int(slopes.shape[2]),
                                  measurements=aotpy.Image(f"GRADIENTS{tag}", slopes, time=time),
                                  wavelength=record.wfs_wavelength)
        c2m = record.commands_to_modes
        n_act = int(np.shape(c2m)[1]) if c2m is not None else int(np.shape(record.slopes_to_modes)[0])
        mirror = aotpy.DeformableMirror(f"DM{tag}", telescope=telescope, n_valid_actuators=n_act)
        image = lambda name, a, **kw: None if a is None else aotpy.Image(f"{name}{tag}", np.asarray(a, dtype=float), **kw)
        control.append(aotpy.ControlLoop(
            record.name, commanded_corrector=mirror, input_sensor=wfs, time=time, closed=bool(record.closed_loop),
            framerate=float(record.frame_rate), delay=float(record.delay),
            measurements_to_modes=image("S2M", record.slopes_to_modes),
            commands=image("POSITIONS", record.commands, time=time), commands_to_modes=image("DM2M", c2m),
            modes_to_measurements=image("M2S", record.modes_to_slopes)))
        sensors.append(wfs)
        mirrors.append(mirror)
    atmosphere = [] if monitor is None else [_monitor_parameters(aotpy, monitor)]
    if truth:
        atmosphere.append(aotpy.AtmosphericParameters(
            TRUTH_UID, wavelength=500e-9, r0=[float(truth["r0"])],
            seeing=[float(truth["seeing"])] if "seeing" in truth else []))
    system = aotpy.AOSystem(ao_mode="SCAO", name=system_name, main_telescope=telescope, sources=[star],
                            wavefront_sensors=sensors, wavefront_correctors=mirrors, loops=control,
                            atmosphere_params=atmosphere)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        hdus = aotpy.AOTFITSWriter(system).get_hdulist()
    header = hdus[0].header
    for key, (value, comment) in (cards or {}).items():
        header[key] = (value, comment)
    if provenance is not None:
        provenance.apply(header)
    write_hdus(hdus, path, overwrite)


def write_modal_fits(path: str, modes, *, noll_min: int, unit: str, frame_rate: float, diameter: float,
                     obstruction: float, wavelength: float | None = None, airmass: float | None = None,
                     interaction=None, interaction_noll_min: int | None = None, cards: dict | None = None,
                     provenance: Provenance | None = None, overwrite: bool = False) -> None:
    """Write pseudo-open-loop modes (T, M) of Noll ``noll_min``.. as the plain modal FITS format.

    ``interaction`` (2S, K) [slope unit per modal unit, slopes x_1..x_S, y_1..y_S], columns Noll
    ``interaction_noll_min``.., is written as the ``G`` extension.
    """
    modes = np.asarray(modes, dtype=float)
    hdu = fits.PrimaryHDU(modes)
    h = hdu.header
    h["BUNIT"] = (unit, "rad (phase at WAVELEN), m, um or nm")
    if wavelength is not None:
        h["WAVELEN"] = (float(wavelength), "[m] wavelength of modes given in rad")
    h["NOLLMIN"] = (int(noll_min), "Noll index of the first column")
    h["NOLLMAX"] = (int(noll_min) + modes.shape[1] - 1, "Noll index of the last column")
    h["FRAMERAT"] = (float(frame_rate), "[Hz] loop frame rate")
    h["TELDIAM"] = (float(diameter), "[m] telescope diameter")
    h["OBSTRUCT"] = (float(obstruction), "central obstruction, diameter ratio")
    h["POL"] = (True, "pseudo-open-loop modes (DM + residual)")
    if airmass is not None:
        h["AIRMASS"] = (float(airmass), "airmass of the line of sight")
    for key, (value, comment) in (cards or {}).items():
        h[key] = (value, comment)
    if provenance is not None:
        provenance.apply(h)
    hdus = [hdu]
    if interaction is not None:
        g = fits.ImageHDU(np.asarray(interaction, dtype=float), name="G")
        g.header["NOLLMIN"] = (int(interaction_noll_min if interaction_noll_min is not None else noll_min),
                               "Noll index of the first column")
        g.header["SLOPEORD"] = ("xxyy", "rows: x_1..x_S, then y_1..y_S")
        g.header["COMMENT"] = "the wavefront sensor's slopes per unit of each Noll mode"
        hdus.append(g)
    write_hdus(fits.HDUList(hdus), path, overwrite)
