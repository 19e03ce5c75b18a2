"""Training videos on disk: found in folders, checked once, then read a window at a time.

A training video is the video product of ``dancekit simulate-video`` (``dancekit.io.video``):
a (T, H, W) cube in electrons or ADU with a ``TRUTH`` extension (H, W). ``open_training_video``
checks it without reading the cube and returns a ``unet.data.VideoSource`` whose readers open
the file for each sample, so thousands of videos can be used with bounded memory and files.
Cubes in ADU are converted to electrons with the header's GAIN (e-/ADU) or the config's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader
from dancekit.io.video import TRUTH, read_truth
from dancekit.unet.data import VideoSource

SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fits.fz")


def find_videos(paths: list[str]) -> list[str]:
    """The given files, and the FITS files inside the given folders (sorted, not recursive)."""
    found: list[str] = []
    for path in paths:
        if path == "-":
            raise InputError("training reads its videos many times; give files or folders, not standard input", source="-")
        p = Path(path)
        if p.is_dir():
            inside = sorted(str(f) for f in p.iterdir() if f.is_file() and f.name.lower().endswith(SUFFIXES))
            if not inside:
                raise InputError(f"folder holds no FITS files ({', '.join(SUFFIXES)})", source=path)
            found += inside
        else:
            found.append(path)
    return found


def open_training_video(path: str, gain: float) -> VideoSource:
    """Check one video (3-D cube, TRUTH of the frames' shape, unit) and return its source."""
    with FitsReader(path) as reader:
        info = reader.image_info(0 if reader.hdus[0].kind == "image" else None, ndim=3)
        truth_info = reader.image_info(TRUTH) if reader.has(TRUTH) else None
        if truth_info is None:
            read_truth(reader)  # raises the standard "has no TRUTH extension" error
        if len(truth_info.shape) != 2 or truth_info.shape != info.shape[1:]:
            raise InputError(f"TRUTH is {truth_info.shape} but the frames are {info.shape[1:]}; "
                             "every frame and the truth must share one shape", source=reader.name)
        header = reader.header(info.index)
    unit = str(header.get("BUNIT", "electron")).strip().lower()
    if unit in ("electron", "electrons", "e-"):
        scale = 1.0
    elif unit == "adu":
        scale = float(header.get("GAIN", gain))
        if not scale > 0:
            raise InputError(f"GAIN = {scale} e-/ADU is not positive", source=path)
    else:
        raise InputError(f"BUNIT '{unit}' is neither electron nor adu; training needs counts", source=path)
    return VideoSource(reader.name, tuple(info.shape), _FitsFrames(path, info.index, scale), _FitsTruth(path, scale))


class _FitsFrames:
    """Frames start:stop of the cube, read from disk each call (picklable for DataLoader workers)."""

    def __init__(self, path: str, index: int, scale: float):
        self.path, self.index, self.scale = path, index, scale

    def __call__(self, start: int, stop: int) -> np.ndarray:
        with FitsReader(self.path) as reader:
            frames = reader.frames(start, stop, self.index)
        return frames * np.float32(self.scale) if self.scale != 1.0 else frames


class _FitsTruth:
    def __init__(self, path: str, scale: float):
        self.path, self.scale = path, scale

    def __call__(self) -> np.ndarray:
        with FitsReader(self.path) as reader:
            truth = reader.image(TRUTH, ndim=2)
        return truth * np.float32(self.scale) if self.scale != 1.0 else truth
