"""Reading FITS: whole images, single frames of large cubes, headers and tables.

Pixels go through fitsio (fast, and able to read a slice of a cube without loading it, so a
video bigger than RAM is read frame by frame); headers through astropy, which the rest of the
code uses for WCS and keywords. ``-`` means FITS bytes on standard input: they are spooled to a
temporary file once, so every reader below works the same on a pipe and on a disk file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import fitsio
import numpy as np
from astropy.io import fits

from dancekit.errors import InputError
from dancekit.io.fits_out import signals_deferred, temporary_file

STDIN = "-"
_spooled_stdin: str | None = None


def display_name(path: str) -> str:
    """How an input is named in messages."""
    return "<stdin>" if path == STDIN else str(path)


def _spool_stdin() -> str:
    """Copy standard input to a temporary file once and return its path."""
    global _spooled_stdin
    if _spooled_stdin is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no FITS data on standard input (pipe a file in, or give a path)", source="<stdin>")
        with signals_deferred():
            name = temporary_file(None, "dancekit-stdin-", ".fits")
            atexit.register(lambda: os.path.exists(name) and os.remove(name))
        try:
            with open(name, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, length=1 << 22)
        except BaseException:
            os.remove(name)
            raise
        _spooled_stdin = name
    if os.path.getsize(_spooled_stdin) == 0:
        raise InputError("standard input is empty (no FITS data was piped in)", source="<stdin>")
    return _spooled_stdin


@dataclass(frozen=True)
class HduInfo:
    """What one HDU holds, without reading its data."""

    index: int
    name: str
    kind: str  # "image", "table" or "empty"
    shape: tuple[int, ...]
    dtype: str


class FitsReader:
    """A FITS file opened for reading (use as a context manager).

    Extensions are named by index (0-based) or EXTNAME. The image HDU used by default is the
    first one holding data, so tile-compressed files (whose image lives in extension 1) read
    like plain ones.
    """

    def __init__(self, path: str | os.PathLike):
        self.name = display_name(str(path))
        local = _spool_stdin() if str(path) == STDIN else str(path)
        if not os.path.exists(local):
            raise InputError("no such file", source=self.name)
        if os.path.isdir(local):
            raise InputError("is a folder, not a FITS file", source=self.name)
        self._path = local
        _check_fits_signature(local, self.name)
        try:
            self._fits = fitsio.FITS(local, "r")
            self.hdus = [self._describe(i) for i in range(len(self._fits))]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"not a readable FITS file ({_short(exc)})", source=self.name) from None

    @property
    def local_path(self) -> str:
        """The file on disk behind this reader (the spooled copy for standard input)."""
        return self._path

    def __enter__(self) -> "FitsReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._fits.close()

    def _describe(self, index: int) -> HduInfo:
        hdu = self._fits[index]
        name = (hdu.get_extname() or ("PRIMARY" if index == 0 else "")).upper()
        if hdu.get_exttype() == "IMAGE_HDU":
            dims = tuple(int(n) for n in hdu.get_dims())
            if not dims or 0 in dims:
                return HduInfo(index, name, "empty", (), "")
            return HduInfo(index, name, "image", dims, str(hdu.get_info().get("img_equiv_type", "")))
        return HduInfo(index, name, "table", (hdu.get_nrows(),), "")

    def find(self, ext: int | str | None = None, kind: str = "image") -> HduInfo:
        """The HDU named ``ext`` (index or EXTNAME); by default the first HDU of ``kind``."""
        if ext is None:
            for info in self.hdus:
                if info.kind == kind:
                    return info
            raise InputError(f"holds no {kind} HDU", source=self.name)
        if isinstance(ext, int) or (isinstance(ext, str) and ext.isdigit()):
            index = int(ext)
            if index >= len(self.hdus):
                raise InputError(f"has no HDU {index} (it has {len(self.hdus)})", source=self.name)
            info = self.hdus[index]
        else:
            matches = [h for h in self.hdus if h.name == str(ext).upper()]
            if not matches:
                names = ", ".join(h.name for h in self.hdus if h.name) or "none"
                raise InputError(f"has no '{ext}' extension (extensions: {names})", source=self.name)
            info = matches[0]
        if info.kind != kind:
            raise InputError(f"HDU '{info.name or info.index}' holds no {kind} data", source=self.name)
        return info

    def has(self, ext: str) -> bool:
        return any(h.name == ext.upper() for h in self.hdus)

    def header(self, ext: int | str | None = None, kind: str = "image") -> fits.Header:
        """The astropy header of an HDU (for compressed images, the image's header)."""
        info = self.find(ext, kind)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fits.getheader(self._path, info.index)
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable header in HDU {info.index} ({_short(exc)})", source=self.name) from None

    def image(self, ext: int | str | None = None, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
        """The whole image of an HDU as float32 (or its own float64), checked for dimensionality."""
        info = self.image_info(ext, ndim)
        try:
            data = self._fits[info.index].read()
        except (OSError, ValueError) as exc:
            raise InputError(f"truncated or corrupt image data in HDU {info.index} ({_short(exc)})", source=self.name) from None
        return _as_float(data, self.name)

    def image_info(self, ext: int | str | None = None, ndim: int | tuple[int, ...] | None = None) -> HduInfo:
        """Describe an image HDU and check its dimensionality without reading pixels."""
        info = self.find(ext, "image")
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if allowed is not None and len(info.shape) not in allowed:
            want = " or ".join(f"{n}-D" for n in allowed)
            raise InputError(f"HDU '{info.name or info.index}' is {len(info.shape)}-D {info.shape}, expected {want}", source=self.name)
        return info

    def frames(self, start: int, stop: int, ext: int | str | None = None) -> np.ndarray:
        """Frames ``start:stop`` of a (T, H, W) cube, read from disk without loading the rest."""
        info = self.image_info(ext, 3)
        if not 0 <= start < stop <= info.shape[0]:
            raise InputError(f"frames {start}:{stop} outside the cube's {info.shape[0]} frames", source=self.name)
        try:
            data = self._fits[info.index][start:stop, :, :]
        except (OSError, ValueError) as exc:
            raise InputError(f"truncated or corrupt cube in HDU {info.index} ({_short(exc)})", source=self.name) from None
        return _as_float(data, self.name)

    def table(self, ext: int | str | None = None) -> np.ndarray:
        """A binary or ASCII table as a numpy structured array."""
        info = self.find(ext, "table")
        try:
            return self._fits[info.index].read()
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable table in HDU {info.index} ({_short(exc)})", source=self.name) from None


def _check_fits_signature(path: str, name: str) -> None:
    """Refuse files that are not FITS before a C library prints its own messages about them."""
    with open(path, "rb") as handle:
        head = handle.read(30)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh":
        return  # gzip/bzip2-compressed FITS: fitsio reads them
    if not head.startswith(b"SIMPLE  =") or len(head) < 30:
        raise InputError("not a FITS file (it does not start with 'SIMPLE  =')", source=name)
    if os.path.getsize(path) % 2880 != 0:
        raise InputError(f"truncated FITS file ({os.path.getsize(path)} bytes is not a multiple of 2880)", source=name)


def _as_float(data: np.ndarray, name: str) -> np.ndarray:
    if data.dtype.kind not in "iuf":
        raise InputError(f"image holds non-numeric data ({data.dtype})", source=name)
    if data.dtype.kind == "f" and data.dtype.itemsize == 8:
        return data.astype(np.float64, copy=False)
    out = data.astype(np.float32, copy=False)
    return out.astype(out.dtype.newbyteorder("="), copy=False)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:160]


def read_image(path: str | Path, ext: int | str | None = None, ndim=None) -> tuple[np.ndarray, fits.Header]:
    """Image data and header of one HDU of a FITS file in one call."""
    with FitsReader(path) as reader:
        return reader.image(ext, ndim), reader.header(ext)
