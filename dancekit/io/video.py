"""The video data product: a (T, H, W) cube, its ``TRUTH`` image and ``CATALOG`` table.

Layout (DESIGN.md, Data products): primary HDU = float32 cube (BUNIT electron or adu) with the
simulation parameters, WCS and provenance in its header; extension ``TRUTH`` = (H, W) float32,
noise-free and turbulence-free, in the same units per frame; extension ``CATALOG`` = binary table
of the sources (x, y 0-based pixels, flux per frame, mag, ra/dec when a WCS is set).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader
from dancekit.io.fits_out import write_hdus

TRUTH = "TRUTH"
CATALOG = "CATALOG"


def video_hdus(cube: np.ndarray, header: fits.Header, truth: np.ndarray | None = None,
               catalog: dict[str, np.ndarray] | None = None) -> fits.HDUList:
    """Assemble the HDUs of a video product (the header is used as given: add provenance first)."""
    hdus = [fits.PrimaryHDU(np.asarray(cube, dtype=np.float32), header=header)]
    if truth is not None:
        truth_hdu = fits.ImageHDU(np.asarray(truth, dtype=np.float32), name=TRUTH)
        truth_hdu.header["BUNIT"] = header.get("BUNIT", "electron")
        truth_hdu.header["COMMENT"] = "noise-free, turbulence-free image per frame (same optics and pixels)"
        hdus.append(truth_hdu)
    if catalog is not None:
        columns = [fits.Column(name=k, format="D", array=np.asarray(v, float)) for k, v in catalog.items()]
        table = fits.BinTableHDU.from_columns(columns, name=CATALOG)
        table.header["COMMENT"] = "x, y: 0-based pixel coordinates (centre of the first pixel = 0, 0)"
        hdus.append(table)
    return fits.HDUList(hdus)


def write_video(path: str, cube, header, truth=None, catalog=None, overwrite: bool = False) -> None:
    write_hdus(video_hdus(cube, header, truth, catalog), path, overwrite)


def read_truth(reader: FitsReader, video_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The ``TRUTH`` image of an open video, checked against the cube's (H, W)."""
    if not reader.has(TRUTH):
        raise InputError("has no TRUTH extension (a training video must come from simulate-video)", source=reader.name)
    truth = reader.image(TRUTH, ndim=2)
    if video_shape is not None and truth.shape != tuple(video_shape[-2:]):
        raise InputError(f"TRUTH is {truth.shape} but the frames are {tuple(video_shape[-2:])}", source=reader.name)
    return truth
