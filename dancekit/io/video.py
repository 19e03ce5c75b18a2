"""The video data product: a (T, H, W) cube, its ``TRUTH`` image and ``CATALOG`` table; and
videos as commands read them: one cube per file, or single-frame files forming one video.

Layout (DESIGN.md, Data products): primary HDU = float32 cube (BUNIT electron or adu) with the
simulation parameters, WCS and provenance in its header; extension ``TRUTH`` = (H, W) float32,
noise-free and turbulence-free, in the same units per frame; extension ``CATALOG`` = binary table
of the sources (x, y 0-based pixels, flux per frame, mag, ra/dec when a WCS is set).

``VideoInput.plan`` turns a command's positional inputs into videos (several 2-D files are the
frames of one video, in the order given); ``header_facts`` reads what a header says about the
instrument (INSTRUME, pixel scale, EXPTIME) and ``saturation_level`` where its pixels saturate.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader
from dancekit.io.fits_out import write_hdus
from dancekit.unet.domain import ARCSEC, VideoFacts

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


class VideoInput:
    """A video to read frames from: one (T, H, W) cube, or single-frame (H, W) files in order."""

    def __init__(self, name: str, paths: list[str], ext: Optional[str], single_frames: bool):
        self.name, self.paths, self.ext, self.single_frames = name, paths, ext, single_frames

    @classmethod
    def plan(cls, inputs: list[str], ext: Optional[str]) -> list["VideoInput"]:
        """All 2-D inputs (more than one) form one video; otherwise each input is a cube. A bad
        cube is reported when it is processed; a bad file among single frames refuses the video."""
        if len(inputs) < 2:
            return [cls(p, [p], ext, False) for p in inputs]
        dims, errors = {}, {}
        for path in inputs:
            try:
                with FitsReader(path) as reader:
                    dims[path] = reader.image_info(ext, (2, 3)).shape
            except InputError as exc:
                errors[path] = exc
        flat = [p for p in dims if len(dims[p]) == 2]
        cubes = [p for p in dims if len(dims[p]) == 3]
        if flat and cubes:
            raise InputError(f"{flat[0]} is a single frame but {cubes[0]} is a cube; give either cubes "
                             "(one output each) or single frames (one video)")
        if not flat:
            return [cls(p, [p], ext, False) for p in inputs]
        if errors:  # a frame of a one-file-per-frame video is missing: the video is unusable
            path, exc = next(iter(errors.items()))
            raise exc.with_source(path)
        first = dims[inputs[0]]
        for path in inputs[1:]:
            if dims[path] != first:
                raise InputError(f"frame {path} is {dims[path][0]}x{dims[path][1]} px but the first frame "
                                 f"{inputs[0]} is {first[0]}x{first[1]} px; all frames of a video must match")
        return [cls(inputs[0], list(inputs), ext, True)]

    def open(self, single_image: bool = False) -> "OpenVideo":
        """Open for reading; ``single_image``: a lone 2-D image is a one-frame video (else refused)."""
        return OpenVideo(self, single_image)


class OpenVideo:
    """An open ``VideoInput``: ``header`` (of the first frame), ``shape`` (H, W), ``n_frames``,
    ``read(start, stop)`` -> (n, H, W) float frames. Use as a context manager."""

    def __init__(self, source: VideoInput, single_image: bool = False):
        self.source = source
        self.reader = FitsReader(source.paths[0])
        try:
            info = self.reader.image_info(source.ext, 2 if source.single_frames else (2, 3))
            if len(info.shape) != 3 and not (source.single_frames or single_image):
                raise InputError(f"is a single {info.shape[0]}x{info.shape[1]} image, not a (T, H, W) video; "
                                 "give several frames to form a video")
            self.header = self.reader.header(info.index)
        except BaseException:
            self.reader.close()
            raise
        self.index = info.index
        self.is_cube = len(info.shape) == 3
        self.shape = tuple(info.shape[-2:])
        self.n_frames = info.shape[0] if self.is_cube else len(source.paths)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.is_cube:
            return self.reader.frames(start, stop, self.index)
        if not self.source.single_frames:
            return self.reader.image(self.index)[None]
        frames = []
        for path in self.source.paths[start:stop]:
            with FitsReader(path) as reader:
                frame = reader.image(self.source.ext, 2)
            if frame.shape != self.shape:
                raise InputError(f"frame {path} is {frame.shape} but the first frame {self.source.paths[0]} is {self.shape}")
            frames.append(frame)
        return np.stack(frames)

    def __enter__(self) -> "OpenVideo":
        return self

    def __exit__(self, *exc) -> None:
        self.reader.close()


#: header keywords holding a pixel scale in arcsec/pixel, tried in order before the WCS
PIXEL_SCALE_KEYS = ("PIXSCALE", "PIXSCAL1", "SECPIX", "SECPIX1")


def header_facts(header: fits.Header) -> VideoFacts:
    """INSTRUME, pixel scale [rad/pixel] (PIXSCALE-like keywords, else a celestial WCS) and
    EXPTIME [s] of a header; each None when absent or not a positive number."""
    instrument = str(header.get("INSTRUME", "")).strip() or None
    return VideoFacts(instrument=instrument, pixel_scale=pixel_scale(header),
                      exposure=_positive_number(header.get("EXPTIME")))


def video_facts(path: str) -> VideoFacts:
    """``header_facts`` of a video file's image HDU (the cube)."""
    with FitsReader(path) as reader:
        return header_facts(reader.header())


def pixel_scale(header: fits.Header) -> float | None:
    """Pixel scale [rad/pixel]: a PIXSCALE-like keyword [arcsec/pixel], else the geometric mean
    of a celestial WCS's two axes (CDELT or CD/PC); None when neither is there."""
    for key in PIXEL_SCALE_KEYS:
        value = _positive_number(header.get(key))
        if value is not None:
            return value * ARCSEC
    if not any(k in header for k in ("CDELT1", "CD1_1", "PC1_1", "CDELT2", "CD2_2")):
        return None
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            celestial = WCS(header).celestial
            if not celestial.has_celestial:
                return None
            scales = proj_plane_pixel_scales(celestial)  # degrees per pixel
    except Exception:  # a malformed WCS is the same as none: the guard asks for a pixel scale
        return None
    scale = float(np.sqrt(np.prod(np.abs(scales)))) * math.pi / 180
    return scale if math.isfinite(scale) and scale > 0 else None


def saturation_level(header: fits.Header) -> float | None:
    """The pixel value [input units] at which a detector saturates: SATURATE, else the largest
    value an integer image (BITPIX > 0, with its BSCALE/BZERO) can hold; None for float data."""
    value = _positive_number(header.get("SATURATE"))
    if value is not None:
        return value
    bitpix = header.get("BITPIX")
    if not isinstance(bitpix, int) or bitpix <= 0:
        return None
    largest = 2**bitpix - 1 if bitpix == 8 else 2 ** (bitpix - 1) - 1  # BITPIX 8 is unsigned
    return float(largest * float(header.get("BSCALE", 1.0)) + float(header.get("BZERO", 0.0)))


def _positive_number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
