"""A wavefront sensor's modal interaction matrix from FITS (``fit-r0 --interaction-matrix FILE[EXT]``).

Accepted layouts, in Python (numpy) order:

* 2-D ``(n_slopes, n_modes)`` [slope unit per modal unit]: rows are slopes in the order named by
  ``SLOPEORD``: 'xxyy' (x_1..x_S, y_1..y_S, the AOT ``(2, S)`` measurement order flattened; the
  default) or 'xyxy' (x_1, y_1, x_2, ..., ESO SPARTA's order); columns are Noll modes ``NOLLMIN``,
  ``NOLLMIN + 1``, ... (without NOLLMIN: the telemetry's first reconstructed mode);
* 3-D ``(S, 2, n_modes)``: the AOT ``MODES_TO_MEASUREMENTS`` layout.

The matrix is returned with its slopes in the 'xxyy' order. Any slope unit and any modal unit
will do for the remaining-error correction (it does not change under one overall scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import InputError
from dancekit.io.fits_in import FitsReader, display_name

SLOPE_ORDERS = ("xxyy", "xyxy")


@dataclass(frozen=True)
class InteractionMatrix:
    """A sensor's response to Noll modes: ``matrix`` (2S, K), slopes x_1..x_S, y_1..y_S."""

    matrix: np.ndarray
    noll_min: int | None  # Noll index of the first column; None: not stated
    name: str  # where it came from (shown in messages and in the SENSOR column)

    def noll(self, default_min: int) -> tuple:
        first = self.noll_min if self.noll_min is not None else int(default_min)
        return tuple(range(first, first + self.matrix.shape[1]))


def interaction_from_array(data, name: str, noll_min=None, slope_order: str | None = None) -> InteractionMatrix:
    """Normalise a 2-D (slopes, modes) or 3-D (S, 2, modes) array to an :class:`InteractionMatrix`."""
    arr = np.asarray(data, dtype=float)
    order = (slope_order or "xxyy").strip().lower()
    if order not in SLOPE_ORDERS:
        raise InputError(f"SLOPEORD = '{slope_order}' is not one of {', '.join(SLOPE_ORDERS)}", source=name)
    if arr.ndim == 3:
        if arr.shape[1] != 2:
            raise InputError(f"a 3-D interaction matrix must be (subapertures, 2, modes), got {arr.shape}", source=name)
        arr = arr.transpose(1, 0, 2).reshape(2 * arr.shape[0], arr.shape[2])
    elif arr.ndim == 2:
        if arr.shape[0] % 2:
            raise InputError(f"an interaction matrix (slopes, modes) needs an even number of slopes (x and y), "
                             f"got {arr.shape}", source=name)
        if order == "xyxy":
            arr = np.concatenate([arr[0::2], arr[1::2]], axis=0)
    else:
        raise InputError(f"an interaction matrix must be 2-D (slopes, modes) or 3-D (subapertures, 2, modes), "
                         f"got {arr.ndim}-D {arr.shape}", source=name)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"the interaction matrix {arr.shape} contains NaN/inf values", source=name)
    if not np.any(arr):
        raise InputError(f"the interaction matrix {arr.shape} is all zeros", source=name)
    if noll_min is not None and (int(noll_min) != noll_min or noll_min < 1):
        raise InputError(f"NOLLMIN = {noll_min!r} must be a Noll index >= 1", source=name)
    arr.setflags(write=False)
    return InteractionMatrix(arr, None if noll_min is None else int(noll_min), name)


def split_extension(spec: str) -> tuple[str, str | None]:
    """``file.fits[EXT]`` -> ('file.fits', 'EXT'); a plain path -> (path, None)."""
    if spec.endswith("]") and "[" in spec:
        path, _, ext = spec[:-1].rpartition("[")
        if path and ext:
            return path, ext
    return spec, None


def read_interaction_matrix(spec: str) -> InteractionMatrix:
    """Read ``FILE[EXT]`` (default EXT: ``G`` when the file has it, else the first image)."""
    path, ext = split_extension(str(spec))
    with FitsReader(path) as reader:
        if ext is None and reader.has("G"):
            ext = "G"
        header = reader.header(ext)
        data = reader.image(ext, ndim=(2, 3))
    name = display_name(path) + (f"[{ext}]" if ext is not None else "")
    return interaction_from_array(data, name, header.get("NOLLMIN"), header.get("SLOPEORD"))
