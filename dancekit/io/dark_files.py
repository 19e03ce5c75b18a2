"""Files of the dark commands: raw darks, master darks and Deep-Dark-Net model files.

Raw dark (``simulate-dark``): the raw frame (rows, columns) as 16-bit unsigned integers in the
primary HDU (BUNIT adu) with ``TEMPERAT`` (set point, deg C), ``CCD-TEMP`` (temperature reached,
deg C), ``EXPTIME`` (s); the noise-free expected frame (float32 ADU) in the ``EXPECTED``
extension, for evaluation only. Real raw frames are read the same way (no ``EXPECTED``).

Master dark (``train-dark --make-master``): ``PRIMARY`` the per-pixel median of the training
active areas and ``TEMPLATE`` the 'scaled' template (dark per unit optical-black level, ADU/ADU;
all-NaN when the camera has no optical black or no frame's optical black held a measurable dark,
as with biases: a COMMENT says why), both as the trimmed image (2084 x 2084 for LAMOST; the box of
the amplifiers' data for a camera described by sections), float32; the frame layout as JSON in
``DKLAYOUT`` (``dark.frame_layout.frame_layout_to_mapping``); ``NCOMBINE``, ``BIASDEG``.

Model file (``train-dark -o``): one ``torch.save``d plain dict read back with
``torch.load(weights_only=True)`` (``dancekit.io.checkpoint``), written atomically:

    format "dancekit-dark", format_version 1, dancekit_version
    generator_config      DeepDarkGenerator.config (widths, norm, ADU affine: adu_offset, adu_scale)
    state_dict            the kept (best-validation) generator weights
    discriminator_config  PatchDiscriminator.config
    conditioning          {"mode": profile|resize, "coordinates": bool, "target": absolute|above_overscan|
                          above_scaled, "template": bool (input plane), "bias_degree": int}
    template              (when the conditioning needs it) the master template, ``dark.template_codec``
    adu                   {"offset", "scale"} ADU: network unit = (ADU - offset) / scale
    layout                dancekit.dark.cameras.layout_to_mapping of the training layout
    domain                dancekit.dark.domain.training_domain: [min, max] of the training frames'
                          bias and dark levels (ADU), temperature (deg C), exposure (s); 'frames'
    instrument, config, config_hash   the resolved dark config
    training              summary: steps, epochs, seconds, history, best epoch, validation RMSE
                          (ADU) of gan / median / scaled, the data used
    resume                (optional) latest G and D, Adam states, step, history: ``--resume``
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader
from dancekit.io.fits_out import write_hdus

FORMAT = "dancekit-dark"
FORMAT_VERSION = 1
BUNDLED_MODEL = "lamost_dark_demo.pt"
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fits.fz")


@dataclass(frozen=True)
class RawFrame:
    """A raw frame read from disk: data (rows, columns) float32 ADU, its header, the noise-free
    ``expected`` frame when the file has one (simulated darks), and the name for messages."""

    data: np.ndarray
    header: fits.Header
    expected: np.ndarray | None
    name: str


def write_raw_dark(path: str, raw: np.ndarray, expected: np.ndarray, header: fits.Header, overwrite: bool = False) -> None:
    """Write a simulated raw dark (uint16 primary + float32 EXPECTED) atomically."""
    primary = fits.PrimaryHDU(np.asarray(raw).astype(np.uint16), header=header)
    primary.header["BUNIT"] = ("adu", "raw counts")
    extra = fits.ImageHDU(np.asarray(expected, dtype=np.float32), name="EXPECTED")
    extra.header["BUNIT"] = ("adu", "noise-free expected raw frame")
    extra.header["COMMENT"] = "bias + dark + glow without read or shot noise: for evaluation only"
    write_hdus(fits.HDUList([primary, extra]), path, overwrite)


def read_raw_frame(path: str, with_expected: bool = True) -> RawFrame:
    """The first image HDU of a raw frame (2-D), its header, and EXPECTED when present."""
    with FitsReader(path) as reader:
        info = reader.image_info(None, 2)
        data = reader.image(info.index, 2)
        header = reader.header(info.index)
        expected = reader.image("EXPECTED", 2) if with_expected and reader.has("EXPECTED") else None
        name = reader.name
    if expected is not None and expected.shape != data.shape:
        raise InputError(f"EXPECTED {expected.shape} and the raw frame {data.shape} differ in shape", source=name)
    return RawFrame(np.asarray(data, dtype=np.float32), header, expected, name)


TEMPERATURE_KEYS = ("CCD-TEMP", "CCDTEMP", "DET-TEMP", "DETTEMP", "TEMPERAT")  # deg C; the temperature reached first
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "ITIME")  # s


def header_conditions(header: fits.Header) -> tuple[float | None, float | None]:
    """(detector temperature [deg C], exposure time [s]) from a raw frame's header, None when absent."""
    def first(keys):
        for key in keys:
            value = header.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    return first(TEMPERATURE_KEYS), first(EXPTIME_KEYS)


DOMAIN_FRAMES = 64  # training frames, evenly spread over the sorted list (all set points), that make a model's domain


def measure_domain(paths: list[str], layout, bias_degree: int | None = 3, max_frames: int = DOMAIN_FRAMES) -> dict:
    """``dark.domain.training_domain`` of raw frames: at most ``max_frames`` of ``paths``, evenly
    spread over the list (so that every set point of a sorted list counts), read one at a time."""
    from dancekit.dark.domain import frame_conditions, training_domain

    spread = np.unique(np.linspace(0, len(paths) - 1, min(max_frames, len(paths))).round().astype(int)) if paths else []
    conditions = []
    for i in spread:
        frame = read_raw_frame(paths[i], with_expected=False)
        try:
            conditions.append(frame_conditions(frame.data, layout, *header_conditions(frame.header), bias_degree=bias_degree))
        except InputError as exc:
            raise exc.with_source(paths[i])
    return training_domain(conditions)


def find_raw_frames(paths: list[str]) -> list[str]:
    """Files given, and the FITS files inside folders given (sorted), in order; '-' is not allowed."""
    found: list[str] = []
    for p in paths:
        if p == "-":
            raise InputError("training frames must be files or folders, not standard input", source="-")
        if Path(p).is_dir():
            inside = sorted(str(f) for f in Path(p).iterdir() if f.name.lower().endswith(FITS_SUFFIXES) and not f.name.startswith("."))
            if not inside:
                raise InputError("folder holds no FITS files", source=p)
            found += inside
        else:
            found.append(p)
    return found


# ------------------------------------------------------------------ master darks
def write_master(path: str, median_mosaic: np.ndarray, template_mosaic: np.ndarray, layout_mapping: dict,
                 header: fits.Header, overwrite: bool = False) -> None:
    """Write a master dark (PRIMARY median, TEMPLATE scaled template; mosaics, float32) atomically."""
    primary = fits.PrimaryHDU(np.asarray(median_mosaic, dtype=np.float32), header=header)
    primary.header["BUNIT"] = ("adu", "per-pixel median of the training darks")
    primary.header["DKLAYOUT"] = (json.dumps(layout_mapping, separators=(",", ":")), "raw-frame layout (JSON)")
    template = fits.ImageHDU(np.asarray(template_mosaic, dtype=np.float32), name="TEMPLATE")
    template.header["BUNIT"] = ("adu/adu", "dark above bias per unit optical-black level")
    write_hdus(fits.HDUList([primary, template]), path, overwrite)


def read_master(path: str) -> tuple[np.ndarray, np.ndarray, dict, fits.Header]:
    """(median mosaic, template mosaic, layout mapping, header) of a master dark file."""
    with FitsReader(path) as reader:
        median = reader.image(0, 2)
        header = reader.header(0)
        if not reader.has("TEMPLATE") or "DKLAYOUT" not in header:
            raise InputError("not a dancekit master dark (no TEMPLATE extension or DKLAYOUT keyword); "
                             "make one with dancekit train-dark DARKS... --make-master MASTER.fits", source=reader.name)
        template = reader.image("TEMPLATE", 2)
        name = reader.name
    try:
        layout = json.loads(header["DKLAYOUT"])
    except (TypeError, ValueError):
        raise InputError("DKLAYOUT is not valid JSON", source=name) from None
    return median, template, layout, header


def write_master_darks(path: str, frame_layout, masters: list, header: fits.Header, overwrite: bool = False) -> None:
    """Write the masters of each part of a ``FrameLayout`` as one master dark file (trimmed images)."""
    from dancekit.dark.frame_layout import frame_layout_to_mapping

    header = header.copy()
    notes = [m.template_note for m in masters if m.template_note]
    if notes:
        header["COMMENT"] = f"TEMPLATE: {notes[0]}"
    write_master(path, frame_layout.assemble([m.median for m in masters]),
                 frame_layout.assemble([m.scaled.template for m in masters]), frame_layout_to_mapping(frame_layout), header, overwrite)


def read_master_darks(path: str) -> tuple[Any, list]:
    """(``FrameLayout``, one ``MasterDark`` per part) of a master dark file."""
    from dancekit.dark.baselines import ScaledDark
    from dancekit.dark.frame_layout import frame_layout_from_mapping
    from dancekit.dark.inference import MasterDark
    from dancekit.errors import ConfigError

    median, template, mapping, header = read_master(path)
    try:
        frame_layout = frame_layout_from_mapping(mapping)
        medians, templates = frame_layout.split(median), frame_layout.split(template)
    except (ConfigError, InputError) as exc:
        raise InputError(f"its layout (DKLAYOUT) does not fit its images: {exc.message}", source=path) from None
    degree, count = header.get("BIASDEG", 3), int(header.get("NCOMBINE", 0))
    return frame_layout, [MasterDark(m, ScaledDark(t, degree), count) for m, t in zip(medians, templates)]


# ------------------------------------------------------------------ model files
def write_dark_model(checkpoint: dict[str, Any], path: str | os.PathLike, overwrite: bool = False) -> None:
    """Save a dark model dict atomically (temporary file renamed into place when complete)."""
    from dancekit.io.checkpoint import write_checkpoint

    write_checkpoint(checkpoint, path, overwrite)


def read_dark_model(path: str | os.PathLike, need_resume: bool = False) -> dict[str, Any]:
    """A dark model file, loaded safely (``weights_only=True``) and checked for its format."""
    from dancekit.io.checkpoint import read_checkpoint

    name = str(path)
    checkpoint = read_checkpoint(name)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise InputError(f"not a dancekit dark model (format {found!r}; expected a file written by dancekit train-dark)", source=name)
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise InputError(f"dark model format version {checkpoint.get('format_version')!r} is not supported "
                         f"(this dancekit reads {FORMAT_VERSION})", source=name)
    for key in ("generator_config", "state_dict", "layout", "conditioning"):
        if key not in checkpoint:
            raise InputError(f"dark model file lacks '{key}'", source=name)
    conditioning = checkpoint["conditioning"]
    needs = isinstance(conditioning, dict) and (conditioning.get("template") or conditioning.get("target") == "above_scaled")
    if needs and not isinstance(checkpoint.get("template"), dict):
        raise InputError("the model was made with the master template (input plane or target 'above_scaled') but the "
                         "file lacks it ('template'); use the complete file written by dancekit train-dark", source=name)
    if need_resume and not isinstance(checkpoint.get("resume"), dict):
        raise InputError("cannot resume from it: it holds a final model without its training state", source=name)
    return checkpoint


def bundled_dark_model() -> str:
    """Path of the demo model shipped in ``dancekit/weights`` (trained on the simulated LAMOST camera)."""
    path = resources.files("dancekit.weights").joinpath(BUNDLED_MODEL)
    if not path.is_file():
        raise InputError(f"the bundled dark model {BUNDLED_MODEL} is missing (rebuild it with make weights), or give --model",
                         source="--model")
    return str(path)
