"""Files of the dark commands: raw darks, master darks and Deep-Dark-Net model files.

Raw dark (``simulate-dark``): the raw frame (rows, columns) as 16-bit unsigned integers in the
primary HDU (BUNIT adu) with ``TEMPERAT`` (set point, deg C), ``CCD-TEMP`` (temperature reached,
deg C), ``EXPTIME`` (s); the noise-free expected frame (float32 ADU) in the ``EXPECTED``
extension, for evaluation only. Real raw frames are read the same way (no ``EXPECTED``).

Master dark (``train-dark --make-master``): ``PRIMARY`` the per-pixel median of the training
active areas and ``TEMPLATE`` the 'scaled' template (dark per unit optical-black level, ADU/ADU;
all-NaN when the camera has no optical black), both as the trimmed mosaic in physical
orientation (2084 x 2084 for LAMOST), float32; the layout as JSON in ``DKLAYOUT``; ``NCOMBINE``,
``BIASDEG``.

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
