"""Adaptive-optics telemetry files: the AOT standard (through aotpy) and a plain modal FITS.

Two inputs of ``fit-r0`` (issue 6):

* **AOT** (Gomes et al. 2024, A&A 686, A7), read and written with ``aotpy``: the first control loop
  gives the WFS measurements (T, 2, S), the measurements-to-modes matrix (M, 2, S), the DM commands
  (T, A) and commands-to-modes matrix (M, A) (or logged modal coefficients), the frame rate [Hz],
  the delay [frames], open/closed state; the main telescope gives the diameter [m], the central
  obstruction and the elevation [deg]. Modal units are not stated in AOT files (the aotpy NAOMI
  translator leaves them blank); NAOMI's SPARTA works in micron of wavefront, so the unit is
  taken from the config (``loop.modal_unit``) unless the primary header says ``MODUNIT``.
* **Modal FITS**: a primary image (n_frames, n_modes) of pseudo-open-loop Noll modes
  ``NOLLMIN..NOLLMAX``, ``BUNIT`` 'rad' (phase at ``WAVELEN`` m) or 'm'/'um'/'nm' of wavefront,
  ``FRAMERAT`` [Hz], ``TELDIAM`` [m], ``OBSTRUCT`` (diameter ratio), ``POL = T``, optionally
  ``AIRMASS``.

Readers return plain arrays in the file's own units (:class:`Telemetry`); the conversion to
radians and the pseudo-open-loop sum belong to :mod:`dancekit.ao.pseudo_open_loop`. Writers take
plain arrays and numbers, put the provenance cards on the primary header and write atomically
(``-`` = stdout) through :func:`dancekit.io.fits_out.write_hdus`.
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
from dancekit.io.fits_out import write_hdus
from dancekit.io.provenance import Provenance

AOT_TABLES = ("AOT_LOOPS", "AOT_LOOPS_CONTROL", "AOT_WAVEFRONT_SENSORS")
TRUTH_UID = "dancekit simulation truth"  # AOT_ATMOSPHERIC_PARAMETERS row written by simulate-telemetry
MODAL_KEYS = ("NOLLMIN", "NOLLMAX")


@dataclass(frozen=True)
class Telemetry:
    """What one telemetry file holds, in its own units (None: not in the file)."""

    source: str  # file name as shown in messages
    format: str  # 'aot' or 'modal'
    closed_loop: bool
    n_frames: int
    slopes: np.ndarray | None = None  # (T, 2, S) WFS measurements (aot)
    slopes_to_modes: np.ndarray | None = None  # (M, 2, S) measurements-to-modes (aot)
    commands: np.ndarray | None = None  # (T, A) DM commands (aot, closed loop)
    commands_to_modes: np.ndarray | None = None  # (M, A)
    dm_modes: np.ndarray | None = None  # (T, M) logged modal DM coefficients when no commands (aot)
    modes: np.ndarray | None = None  # (T, M) pseudo-open-loop modes (modal FITS)
    modal_unit: str | None = None  # 'rad', 'm', 'um', 'nm'; None: not stated
    wavelength: float | None = None  # m, wavelength of modal coefficients given in rad
    noll_min: int | None = None  # first Noll index of the modes, when stated
    frame_rate: float | None = None  # Hz
    delay: float | None = None  # frames (AOT DELAY)
    diameter: float | None = None  # m
    obstruction: float | None = None  # central obstruction, diameter ratio
    airmass: float | None = None
    date: str | None = None  # start of the series (DATE-BEG / DATE-OBS)
    truth: dict = field(default_factory=dict)  # simulation truth (r0, L0, S/N...) when recorded


def _local_path(path: str) -> str:
    return _spool_stdin() if str(path) == STDIN else str(path)


def read_telemetry(path: str) -> Telemetry:
    """Read an AOT file or a modal FITS; anything else is an ``InputError`` naming what is missing."""
    name = display_name(str(path))
    with FitsReader(path) as reader:  # FITS signature, truncation and readability checks
        names = {h.name for h in reader.hdus}
        primary = reader.header(0, kind=reader.hdus[0].kind) if reader.hdus else fits.Header()
    if "AOT-VERS" in primary or names & set(AOT_TABLES):
        return _read_aot(_local_path(path), name, primary, names)
    if all(k in primary for k in MODAL_KEYS) or "POL" in primary:
        return _read_modal(_local_path(path), name, primary)
    raise InputError(
        "not AO telemetry: neither an AOT file (no AOT-VERS keyword, no AOT_LOOPS table) nor a "
        "modal FITS (primary (frames, modes) image with NOLLMIN/NOLLMAX and POL = T)", source=name)


# ---------------------------------------------------------------- AOT (aotpy)
def _read_aot(local: str, name: str, primary: fits.Header, names: set) -> Telemetry:
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
    loop = loops[0]
    sensor = loop.input_sensor
    slopes = _image(getattr(sensor, "measurements", None))
    if slopes is None:
        raise InputError(f"loop '{loop.uid}' has no WFS measurements (AOT_WAVEFRONT_SENSORS MEASUREMENTS)", source=name)
    if slopes.ndim != 3 or slopes.shape[1] != 2:
        raise InputError(f"WFS measurements must be (frames, 2, subapertures), got {slopes.shape}", source=name)
    s2m = _image(loop.measurements_to_modes)
    if s2m is None:
        raise InputError(f"loop '{loop.uid}' has no measurements-to-modes matrix (AOT_LOOPS_CONTROL MEASUREMENTS_TO_MODES)", source=name)
    if s2m.ndim == 2:
        s2m = s2m.reshape(s2m.shape[0], 2, -1)
    if s2m.shape[1:] != slopes.shape[1:]:
        raise InputError(f"measurements-to-modes {s2m.shape} does not match the measurements {slopes.shape[1:]}", source=name)
    n_frames = slopes.shape[0]
    closed = bool(loop.closed) if loop.closed is not None else True
    commands = c2m = dm_modes = None
    if closed:
        commands, c2m = _image(loop.commands), _image(loop.commands_to_modes)
        if commands is not None and c2m is not None:
            if commands.ndim != 2 or c2m.ndim != 2 or c2m.shape != (s2m.shape[0], commands.shape[1]):
                raise InputError(
                    f"commands {commands.shape} and commands-to-modes {None if c2m is None else c2m.shape} do not fit "
                    f"{s2m.shape[0]} modes", source=name)
            if commands.shape[0] != n_frames:
                raise InputError(f"{commands.shape[0]} frames of DM commands but {n_frames} of WFS measurements", source=name)
        else:
            commands = c2m = None
            dm_modes = _image(loop.modal_coefficients)
            if dm_modes is None:
                raise InputError(
                    f"closed loop '{loop.uid}' without DM commands + COMMANDS_TO_MODES or MODAL_COEFFICIENTS: "
                    "the pseudo-open-loop modes cannot be formed", source=name)
            if dm_modes.shape != (n_frames, s2m.shape[0]):
                raise InputError(f"modal coefficients {dm_modes.shape} do not match ({n_frames}, {s2m.shape[0]})", source=name)
    tel = system.main_telescope
    diameter = _positive(getattr(tel, "enclosing_diameter", None)) or _positive(getattr(tel, "inscribed_diameter", None))
    obstruction = _positive(getattr(tel, "obstruction_diameter", None))
    elevation = _finite(getattr(tel, "elevation", None))
    airmass = 1.0 / np.sin(np.radians(elevation)) if elevation is not None and 0 < elevation <= 90 else None
    unit = primary.get("MODUNIT")
    return Telemetry(
        source=name, format="aot", closed_loop=closed, n_frames=n_frames, slopes=slopes,
        slopes_to_modes=s2m, commands=commands, commands_to_modes=c2m, dm_modes=dm_modes,
        modal_unit=str(unit).strip() if unit else None, wavelength=_positive(primary.get("WAVELEN")),
        noll_min=_int(primary.get("NOLLMIN")), frame_rate=_positive(loop.framerate), delay=_finite(loop.delay),
        diameter=diameter, obstruction=(obstruction / diameter if obstruction and diameter else None),
        airmass=float(airmass) if airmass is not None else None,
        date=system.date_beginning.isoformat() if system.date_beginning else None,
        truth=_truth(system, primary))


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


def _truth(system, primary: fits.Header) -> dict:
    """The simulation truth written by simulate-telemetry (empty for real data)."""
    truth = {}
    for params in system.atmosphere_params:
        if params.uid == TRUTH_UID and len(params.r0):
            truth["r0"] = float(params.r0[0])
    for key, name in (("SIMR0", "r0"), ("SIML0", "L0"), ("SIMSNR", "snr"), ("SIMSNOI", "slope_noise")):
        if key in primary:
            truth[name] = float(primary[key])
    return truth


def write_aot(path: str, *, slopes, slopes_to_modes, frame_rate: float, delay: float, closed_loop: bool,
              commands=None, commands_to_modes=None, diameter: float, obstruction: float,
              elevation: float = 90.0, wfs_wavelength: float | None = None, truth: dict | None = None,
              cards: dict | None = None, provenance: Provenance | None = None, overwrite: bool = False,
              system_name: str = "dancekit NAOMI simulation") -> None:
    """Write loop telemetry as an AOT file with aotpy.

    ``slopes`` (T, 2, S) [any slope unit]; ``slopes_to_modes`` (M, 2, S); ``commands`` (T, A) and
    ``commands_to_modes`` (M, A) for a closed loop; ``frame_rate`` [Hz]; ``delay`` [frames];
    ``diameter`` [m]; ``obstruction`` diameter ratio; ``elevation`` [deg]. ``truth`` (r0 [m] at
    500 nm, seeing [arcsec]) goes to an AOT_ATMOSPHERIC_PARAMETERS row; ``cards`` {KEY: (value,
    comment)} and the provenance to the primary header.
    """
    import aotpy

    slopes = np.asarray(slopes, dtype=float)
    n_frames = slopes.shape[0]
    time = aotpy.Time("loop time", timestamps=(np.arange(n_frames) / frame_rate).tolist(),
                      frame_numbers=list(range(n_frames)))
    telescope = aotpy.MainTelescope("main telescope", elevation=float(elevation), enclosing_diameter=float(diameter),
                                    inscribed_diameter=float(diameter), obstruction_diameter=float(diameter * obstruction))
    star = aotpy.NaturalGuideStar("NGS")
    wfs = aotpy.ShackHartmann("WFS", source=star, n_valid_subapertures=int(slopes.shape[2]),
                              measurements=aotpy.Image("GRADIENTS", slopes, time=time), wavelength=wfs_wavelength)
    n_act = int(np.shape(commands_to_modes)[1]) if commands_to_modes is not None else int(np.shape(slopes_to_modes)[0])
    mirror = aotpy.DeformableMirror("DM", telescope=telescope, n_valid_actuators=n_act)
    loop = aotpy.ControlLoop(
        "main loop", commanded_corrector=mirror, input_sensor=wfs, time=time, closed=bool(closed_loop),
        framerate=float(frame_rate), delay=float(delay),
        measurements_to_modes=aotpy.Image("S2M", np.asarray(slopes_to_modes, dtype=float)),
        commands=None if commands is None else aotpy.Image("POSITIONS", np.asarray(commands, dtype=float), time=time),
        commands_to_modes=None if commands_to_modes is None else aotpy.Image("DM2M", np.asarray(commands_to_modes, dtype=float)))
    atmosphere = []
    if truth:
        atmosphere.append(aotpy.AtmosphericParameters(
            TRUTH_UID, wavelength=500e-9, r0=[float(truth["r0"])],
            seeing=[float(truth["seeing"])] if "seeing" in truth else []))
    system = aotpy.AOSystem(ao_mode="SCAO", name=system_name, main_telescope=telescope, sources=[star],
                            wavefront_sensors=[wfs], wavefront_correctors=[mirror], loops=[loop],
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


# ---------------------------------------------------------------- modal FITS
def _read_modal(local: str, name: str, header: fits.Header) -> Telemetry:
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
    n_min, n_max = int(header["NOLLMIN"]), int(header["NOLLMAX"])
    if n_max - n_min + 1 != modes.shape[1]:
        raise InputError(f"NOLLMIN..NOLLMAX = {n_min}..{n_max} is {n_max - n_min + 1} modes but the image has {modes.shape[1]} columns", source=name)
    unit = str(header.get("BUNIT", "")).strip() or None
    if unit is None:
        raise InputError("modal FITS without BUNIT: say 'rad' (with WAVELEN in m) or 'm'/'um'/'nm' of wavefront", source=name)
    return Telemetry(
        source=name, format="modal", closed_loop=False, n_frames=modes.shape[0], modes=modes, modal_unit=unit,
        wavelength=_positive(header.get("WAVELEN")), noll_min=n_min, frame_rate=_positive(header.get("FRAMERAT")),
        diameter=_positive(header.get("TELDIAM")), obstruction=_finite(header.get("OBSTRUCT")),
        airmass=_positive(header.get("AIRMASS")), date=header.get("DATE-OBS"),
        truth={name: float(header[key]) for key, name in (("SIMR0", "r0"), ("SIML0", "L0"), ("SIMSNR", "snr")) if key in header})


def write_modal_fits(path: str, modes, *, noll_min: int, unit: str, frame_rate: float, diameter: float,
                     obstruction: float, wavelength: float | None = None, airmass: float | None = None,
                     cards: dict | None = None, provenance: Provenance | None = None, overwrite: bool = False) -> None:
    """Write pseudo-open-loop modes (T, M) of Noll ``noll_min``.. as the plain modal FITS format."""
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
    write_hdus(fits.HDUList([hdu]), path, overwrite)
