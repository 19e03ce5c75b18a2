"""Reading adaptive-optics telemetry: the AOT standard (through aotpy) and a plain modal FITS.

The two inputs of ``fit-r0`` (writers: :mod:`dancekit.io.aot_write`):

* **AOT** (Gomes et al. 2024, A&A 686, A7), read with ``aotpy``. Every control loop is one
  :class:`Telemetry`: its WFS measurements (T, 2, S), measurements-to-modes matrix (M, 2, S), DM
  commands (T, A) and commands-to-modes matrix (M, A) (or logged modal coefficients), the sensor's
  modal interaction matrix when the file has it (``MODES_TO_MEASUREMENTS`` (S, 2, M'), or the
  zonal ``INTERACTION_MATRIX`` times ``MODES_TO_COMMANDS``), the frame rate [Hz], the delay
  [frames] and open/closed state. From the system: the main telescope's diameter [m], central
  obstruction and elevation [deg], and the site monitor (DIMM / ASM) in ``AOT_ATMOSPHERIC_PARAMETERS``:
  seeing [arcsec] and r0 [m] at zenith at its reference wavelength, layer L0 [m] and weights.
  Modal units are not stated in AOT files (the aotpy NAOMI translator leaves them blank); NAOMI's
  SPARTA works in micron of wavefront, so the unit is the config's (``loop.modal_unit``) unless the
  primary header says ``MODUNIT``; the modes are Noll ``NOLLMIN``.. (header) or the config's.
* **Modal FITS**: a primary image (n_frames, n_modes) of pseudo-open-loop Noll modes
  ``NOLLMIN..NOLLMAX``, ``BUNIT`` 'rad' (phase at ``WAVELEN`` m) or 'm'/'um'/'nm' of wavefront,
  ``FRAMERAT`` [Hz], ``TELDIAM`` [m], ``OBSTRUCT`` (diameter ratio), ``POL = T``, optionally
  ``AIRMASS``, and optionally the sensor's interaction matrix as an image extension ``G`` (layout:
  :mod:`dancekit.io.interaction_matrix`).

Readers return plain arrays in the file's own units; conversions belong to :mod:`dancekit.ao`.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import STDIN, FitsReader, _spool_stdin, display_name
from dancekit.io.interaction_matrix import InteractionMatrix, interaction_from_array

AOT_TABLES = ("AOT_LOOPS", "AOT_LOOPS_CONTROL", "AOT_WAVEFRONT_SENSORS")
TRUTH_UID = "dancekit simulation truth"  # AOT_ATMOSPHERIC_PARAMETERS row written by simulate-telemetry
MODAL_KEYS = ("NOLLMIN", "NOLLMAX")


@dataclass(frozen=True)
class SiteMonitor:
    """A site monitor's values as the AOT file gives them (at zenith, at ``wavelength``); medians
    over the entries in time, NaN when absent."""

    name: str
    wavelength: float | None  # m; None: not stated
    seeing: float  # arcsec
    r0: float  # m
    layers_l0: np.ndarray  # (L,) outer scale per layer [m], median over time (empty: none)
    layers_weight: np.ndarray  # (L,) Cn2 fractions (empty: none)


@dataclass(frozen=True)
class Telemetry:
    """One control loop of a telemetry file, in the file's own units (None: not in the file)."""

    source: str  # file name as shown in messages
    format: str  # 'aot' or 'modal'
    loop_name: str  # AOT loop UID; 'modal' for a modal FITS
    closed_loop: bool
    n_frames: int
    slopes: np.ndarray | None = None  # (T, 2, S) WFS measurements (aot)
    slopes_to_modes: np.ndarray | None = None  # (M, 2, S) measurements-to-modes (aot)
    commands: np.ndarray | None = None  # (T, A) DM commands (aot, closed loop)
    commands_to_modes: np.ndarray | None = None  # (M, A)
    dm_modes: np.ndarray | None = None  # (T, M) logged modal DM coefficients when no commands (aot)
    modes: np.ndarray | None = None  # (T, M) pseudo-open-loop modes (modal FITS)
    interaction: InteractionMatrix | None = None  # the sensor's modal interaction matrix, when present
    modal_unit: str | None = None  # 'rad', 'm', 'um', 'nm'; None: not stated
    wavelength: float | None = None  # m, wavelength of modal coefficients given in rad
    noll_min: int | None = None  # first Noll index of the modes, when stated
    frame_rate: float | None = None  # Hz
    delay: float | None = None  # frames (AOT DELAY)
    diameter: float | None = None  # m
    obstruction: float | None = None  # central obstruction, diameter ratio
    elevation: float | None = None  # deg
    airmass: float | None = None
    date: str | None = None  # start of the series (DATE-BEG / DATE-OBS)
    monitor: SiteMonitor | None = None  # site monitor (DIMM/ASM) of the file, when present
    truth: dict = field(default_factory=dict)  # simulation truth (r0, L0, S/N...) when recorded
    wfs_kind: str | None = None  # the AOT wavefront sensor's class: 'ShackHartmann', 'Pyramid' (aot)
    wfs_lenslets: int | None = None  # subapertures across the AOT SUBAPERTURE_MASK, when the file has one


def _local_path(path: str) -> str:
    return _spool_stdin() if str(path) == STDIN else str(path)


def read_telemetry(path: str) -> tuple[list[Telemetry], list[InputError]]:
    """Read an AOT file (one :class:`Telemetry` per control loop) or a modal FITS (one).

    Returns the readable loops and an ``InputError`` (naming the loop) for each loop that cannot be
    used; a file that is not telemetry at all raises ``InputError``.
    """
    name = display_name(str(path))
    with FitsReader(path) as reader:  # FITS signature, truncation and readability checks
        names = {h.name for h in reader.hdus}
        primary = reader.header(0, kind=reader.hdus[0].kind) if reader.hdus else fits.Header()
    if "AOT-VERS" in primary or names & set(AOT_TABLES):
        return _read_aot(_local_path(path), name, primary, names)
    if all(k in primary for k in MODAL_KEYS) or "POL" in primary:
        return [_read_modal(_local_path(path), name, primary, names)], []
    raise InputError(
        "not AO telemetry: neither an AOT file (no AOT-VERS keyword, no AOT_LOOPS table) nor a "
        "modal FITS (primary (frames, modes) image with NOLLMIN/NOLLMAX and POL = T)", source=name)


# ---------------------------------------------------------------- AOT (aotpy)
def _read_aot(local: str, name: str, primary: fits.Header, names: set) -> tuple[list[Telemetry], list[InputError]]:
    import aotpy

    missing = [t for t in AOT_TABLES if t not in names]
    if missing:
        raise InputError(f"AOT file without the {', '.join(missing)} table(s): no loop telemetry to fit", source=name)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            system = aotpy.AOSystem.read_from_file(local)
    except Exception as exc:  # aotpy raises many kinds on malformed files
        text = " ".join(str(exc).split())[:200]
        raise InputError(f"not a readable AOT file ({type(exc).__name__}: {text})", source=name) from None
    loops = [loop for loop in system.loops if isinstance(loop, aotpy.ControlLoop)]
    if not loops:
        raise InputError("AOT file has no control loop (AOT_LOOPS_CONTROL is empty)", source=name)
    tel = system.main_telescope
    diameter = _positive(getattr(tel, "enclosing_diameter", None)) or _positive(getattr(tel, "inscribed_diameter", None))
    obstruction = _positive(getattr(tel, "obstruction_diameter", None))
    elevation = _finite(getattr(tel, "elevation", None))
    common = dict(
        source=name, format="aot", modal_unit=str(primary["MODUNIT"]).strip() if primary.get("MODUNIT") else None,
        wavelength=_positive(primary.get("WAVELEN")), noll_min=_int(primary.get("NOLLMIN")), diameter=diameter,
        obstruction=(obstruction / diameter if obstruction and diameter else None), elevation=elevation,
        airmass=_airmass(elevation), date=system.date_beginning.isoformat() if system.date_beginning else None,
        monitor=_site_monitor(system), truth=_truth(system, primary))
    good, bad = [], []
    for loop in loops:
        try:
            good.append(_read_loop(loop, common))
        except InputError as exc:
            bad.append(InputError(f"loop '{loop.uid}': {exc.message}", source=name))
    return good, bad


def _read_loop(loop, common: dict) -> Telemetry:
    sensor = loop.input_sensor
    slopes = _image(getattr(sensor, "measurements", None))
    if slopes is None:
        raise InputError("no WFS measurements (AOT_WAVEFRONT_SENSORS MEASUREMENTS)")
    if slopes.ndim != 3 or slopes.shape[1] != 2:
        raise InputError(f"WFS measurements must be (frames, 2, subapertures), got {slopes.shape}")
    s2m = _image(loop.measurements_to_modes)
    if s2m is None:
        raise InputError("no measurements-to-modes matrix (AOT_LOOPS_CONTROL MEASUREMENTS_TO_MODES)")
    if s2m.ndim == 2:
        s2m = s2m.reshape(s2m.shape[0], 2, -1)
    if s2m.shape[1:] != slopes.shape[1:]:
        raise InputError(f"measurements-to-modes {s2m.shape} does not match the measurements {slopes.shape[1:]}")
    n_frames = slopes.shape[0]
    closed = bool(loop.closed) if loop.closed is not None else True
    commands = c2m = dm_modes = None
    if closed:
        commands, c2m = _image(loop.commands), _image(loop.commands_to_modes)
        if commands is not None and c2m is not None:
            if commands.ndim != 2 or c2m.ndim != 2 or c2m.shape != (s2m.shape[0], commands.shape[1]):
                raise InputError(f"commands {commands.shape} and commands-to-modes {c2m.shape} do not fit {s2m.shape[0]} modes")
            if commands.shape[0] != n_frames:
                raise InputError(f"{commands.shape[0]} frames of DM commands but {n_frames} of WFS measurements")
        else:
            commands = c2m = None
            dm_modes = _image(loop.modal_coefficients)
            if dm_modes is None:
                raise InputError("closed loop without DM commands + COMMANDS_TO_MODES or MODAL_COEFFICIENTS: "
                                 "the pseudo-open-loop modes cannot be formed")
            if dm_modes.shape != (n_frames, s2m.shape[0]):
                raise InputError(f"modal coefficients {dm_modes.shape} do not match ({n_frames}, {s2m.shape[0]})")
    mask = _image(getattr(sensor, "subaperture_mask", None))
    lenslets = mask.shape[0] if mask is not None and mask.ndim == 2 and mask.shape[0] == mask.shape[1] else None
    return Telemetry(
        wfs_kind=type(sensor).__name__, wfs_lenslets=lenslets,
        loop_name=str(loop.uid), closed_loop=closed, n_frames=n_frames, slopes=slopes, slopes_to_modes=s2m,
        commands=commands, commands_to_modes=c2m, dm_modes=dm_modes,
        interaction=_loop_interaction(loop, slopes.shape[1:], common["noll_min"]),
        frame_rate=_positive(loop.framerate), delay=_finite(loop.delay), **common)


def _loop_interaction(loop, slope_shape: tuple, noll_min) -> InteractionMatrix | None:
    """The loop's modal interaction matrix (S, 2, M'), from MODES_TO_MEASUREMENTS or from the zonal
    INTERACTION_MATRIX (S, 2, A) times MODES_TO_COMMANDS (A, M')."""
    m2s = _image(loop.modes_to_measurements)
    what = "modes-to-measurements"
    if m2s is None:
        zonal, m2c = _image(loop.interaction_matrix), _image(loop.modes_to_commands)
        if zonal is None or m2c is None:
            return None
        if zonal.ndim != 3 or m2c.ndim != 2 or zonal.shape[2] != m2c.shape[0]:
            raise InputError(f"interaction matrix {zonal.shape} and modes-to-commands {m2c.shape} do not fit together")
        m2s, what = zonal @ m2c, "interaction matrix x modes-to-commands"
    if m2s.ndim != 3 or m2s.shape[:2] != (slope_shape[1], 2):
        raise InputError(f"{what} {m2s.shape} does not match the measurements (2, {slope_shape[1]}): "
                         f"need ({slope_shape[1]}, 2, modes)")
    return interaction_from_array(m2s, f"AOT {what}", noll_min)


def _airmass(elevation: float | None) -> float | None:
    return float(1.0 / np.sin(np.radians(elevation))) if elevation is not None and 0 < elevation <= 90 else None


def _image(image) -> np.ndarray | None:
    data = getattr(image, "data", None) if image is not None else None
    if data is None:
        return None
    arr = np.asarray(data)
    if arr.size == 0:
        return None
    if arr.dtype.kind not in "iuf":
        return None
    return arr.astype(float, copy=False)


def _positive(value) -> float | None:
    v = _finite(value)
    return v if v is not None and v > 0 else None


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else None


def _median(values) -> float:
    v = np.asarray([x for x in (values or []) if _finite(x) is not None], dtype=float)
    v = v[v > 0]
    return float(np.median(v)) if v.size else float("nan")


def _site_monitor(system) -> SiteMonitor | None:
    """The first AOT_ATMOSPHERIC_PARAMETERS row other than the simulation truth with a seeing, r0
    or layer L0 (DIMM, MASS-DIMM, ESO ASM)."""
    for params in system.atmosphere_params:
        if params.uid == TRUTH_UID:
            continue
        l0 = _image(params.layers_l0)
        weight = _image(params.layers_relative_weight)
        layers = np.nanmedian(np.atleast_2d(l0), axis=0) if l0 is not None else np.zeros(0)
        weights = np.nanmedian(np.atleast_2d(weight), axis=0) if weight is not None else np.zeros(0)
        monitor = SiteMonitor(str(params.uid), _positive(params.wavelength), _median(params.seeing),
                              _median(params.r0), layers, weights if weights.shape == layers.shape else np.zeros(0))
        if np.isfinite(monitor.seeing) or np.isfinite(monitor.r0) or layers.size:
            return monitor
    return None


def _truth(system, primary: fits.Header) -> dict:
    """The simulation truth written by simulate-telemetry (empty for real data)."""
    truth = {}
    for key, name in (("SIMR0", "r0"), ("SIML0", "L0"), ("SIMSNR", "snr"), ("SIMSNOI", "slope_noise")):
        if key in primary:
            truth[name] = float(primary[key])
    return truth


# ---------------------------------------------------------------- modal FITS
def _read_modal(local: str, name: str, header: fits.Header, names: set) -> Telemetry:
    for key in MODAL_KEYS:
        if key not in header:
            raise InputError(f"modal FITS without {key} (Noll indices of the columns)", source=name)
    if header.get("POL") is not True:
        raise InputError("modal FITS with POL != T: fit-r0 needs pseudo-open-loop modes (DM + residual), not residuals", source=name)
    with FitsReader(local) as reader:
        info = reader.hdus[0]
        if info.kind != "image" or len(info.shape) != 2:
            raise InputError(f"modal FITS primary must be a (frames, modes) image, got {info.kind} {info.shape}", source=name)
        modes = reader.image(0).astype(float)
        interaction = None
        if "G" in names:
            g_header = reader.header("G")
            interaction = interaction_from_array(reader.image("G", ndim=(2, 3)), f"{name}[G]",
                                                 g_header.get("NOLLMIN"), g_header.get("SLOPEORD"))
    n_min, n_max = int(header["NOLLMIN"]), int(header["NOLLMAX"])
    if n_max - n_min + 1 != modes.shape[1]:
        raise InputError(f"NOLLMIN..NOLLMAX = {n_min}..{n_max} is {n_max - n_min + 1} modes but the image has {modes.shape[1]} columns", source=name)
    unit = str(header.get("BUNIT", "")).strip() or None
    if unit is None:
        raise InputError("modal FITS without BUNIT: say 'rad' (with WAVELEN in m) or 'm'/'um'/'nm' of wavefront", source=name)
    airmass = _positive(header.get("AIRMASS"))
    return Telemetry(
        source=name, format="modal", loop_name="modal", closed_loop=False, n_frames=modes.shape[0], modes=modes,
        interaction=interaction, modal_unit=unit, wavelength=_positive(header.get("WAVELEN")), noll_min=n_min,
        frame_rate=_positive(header.get("FRAMERAT")), diameter=_positive(header.get("TELDIAM")),
        obstruction=_finite(header.get("OBSTRUCT")), airmass=airmass,
        elevation=float(np.degrees(np.arcsin(1.0 / airmass))) if airmass and airmass >= 1 else None,
        date=header.get("DATE-OBS"),
        truth={name: float(header[key]) for key, name in (("SIMR0", "r0"), ("SIML0", "L0"), ("SIMSNR", "snr")) if key in header})
