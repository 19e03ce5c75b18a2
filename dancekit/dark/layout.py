"""Raw-frame layout of a CCD: readout channels, column/row segments, named regions.

A raw frame is a mosaic of readout channels (a grid of 1x1, 1x2, 2x1 or 2x2). Readout is
mirror-symmetric: every channel is read from its own outer corner, so the channel in the second
grid column is the left-right mirror of the first, and the channel in the second grid row the
up-down mirror of the first. Inside one channel, in *readout order* (starting at the readout
corner), the columns are a sequence of segments and the rows are a sequence of segments. A named
region is the product of one row segment and one column segment.

LAMOST guide camera (KAF-4320, Qu et al. 2024, Progress in Astronomy 42(4), sec. 2.2, fig. 3):
raw frame 2094 rows x 2200 columns, 2x2 channels of 1047 x 1100. Columns from the readout corner:
prescan 3 | invalid 1 | amplifier signal 4 | optical black 4 | active 1042 | overscan 46
(= 1100). Rows from the readout corner: optical black 4 | active 1042 | discarded middle row 1
(= 1047; the paper's "F" regions, removed). Which of the 4 + 1 non-active rows are masked and which
is the discarded middle row is our reading of the figure (the paper does not give row counts);
it is a layout parameter.

Functions return read-only *views* oriented in readout order (the pixel nearest the readout corner
is ``[0, 0]`` for every channel); ``channels_to_mosaic`` undoes the mirroring. Only numbers go in:
the command layer builds a ``RawLayout`` from YAML (``cameras.layout_from_mapping``); the
LAMOST and FITS BIASSEC/TRIMSEC layouts are built in ``cameras``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import InputError, ParameterError

#: Standard region names: region name -> (row segment, column segment).
STANDARD_REGIONS = (
    ("active", "active", "active"),
    ("overscan", "active", "overscan"),
    ("ob_columns", "active", "optical_black"),
    ("ob_rows", "optical_black", "active"),
)


@dataclass(frozen=True)
class Segment:
    """A run of rows or columns of one channel, in readout order.

    name : e.g. "prescan", "optical_black", "active", "overscan".
    size : number of pixels (>= 1).
    collects_charge : True for CCD photosites (active and masked optical-black pixels: they
        accumulate dark current); False for samples with no pixel behind them (prescan,
        overscan, amplifier samples, discarded rows): bias + read noise only.
    """

    name: str
    size: int
    collects_charge: bool = False

    def __post_init__(self):
        if not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ParameterError(f"segment '{self.name}' size must be an integer >= 1, got {self.size!r}")


@dataclass(frozen=True)
class RawLayout:
    """Geometry of a raw frame.

    name : layout name (for messages).
    channel_grid : (rows, columns) of readout channels, each 1 or 2.
    row_segments, column_segments : segments of one channel, in readout order.
    regions : (name, row segment, column segment) triples.
    """

    name: str
    channel_grid: tuple[int, int]
    row_segments: tuple[Segment, ...]
    column_segments: tuple[Segment, ...]
    regions: tuple[tuple[str, str, str], ...] = STANDARD_REGIONS

    def __post_init__(self):
        grid = tuple(self.channel_grid)
        if len(grid) != 2 or any(g not in (1, 2) for g in grid):
            raise ParameterError(f"channel_grid must be (rows, columns) with each 1 or 2 (mirror-symmetric readout), got {self.channel_grid!r}")
        for axis, segs in (("row", self.row_segments), ("column", self.column_segments)):
            names = [s.name for s in segs]
            if not names:
                raise ParameterError(f"layout '{self.name}' has no {axis} segments")
            if len(set(names)) != len(names):
                raise ParameterError(f"layout '{self.name}' {axis} segment names repeat: {names}")
        rows = {s.name for s in self.row_segments}
        cols = {s.name for s in self.column_segments}
        for name, r, c in self.regions:
            if r not in rows or c not in cols:
                raise ParameterError(
                    f"region '{name}' of layout '{self.name}' needs row segment '{r}' (have {sorted(rows)}) "
                    f"and column segment '{c}' (have {sorted(cols)})"
                )

    # ---- sizes
    @property
    def n_channels(self) -> int:
        return self.channel_grid[0] * self.channel_grid[1]

    @property
    def channel_shape(self) -> tuple[int, int]:
        """(rows, columns) of one channel."""
        return sum(s.size for s in self.row_segments), sum(s.size for s in self.column_segments)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of the raw frame."""
        r, c = self.channel_shape
        return r * self.channel_grid[0], c * self.channel_grid[1]

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.regions)

    def has_region(self, name: str) -> bool:
        return name in self.region_names

    def region_shape(self, name: str) -> tuple[int, int]:
        """(rows, columns) of a named region of one channel."""
        rs, cs = self.region_slices(name)
        return rs.stop - rs.start, cs.stop - cs.start

    # ---- positions inside one channel (readout order)
    def row_slice(self, segment: str) -> slice:
        return _segment_slice(self.row_segments, segment, "row", self.name)

    def column_slice(self, segment: str) -> slice:
        return _segment_slice(self.column_segments, segment, "column", self.name)

    def region_segments(self, name: str) -> tuple[str, str]:
        """(row segment, column segment) of a named region."""
        for region_name, r, c in self.regions:
            if region_name == name:
                return r, c
        raise ParameterError(f"layout '{self.name}' has no region '{name}'; regions are {list(self.region_names)}")

    def region_slices(self, name: str) -> tuple[slice, slice]:
        r, c = self.region_segments(name)
        return self.row_slice(r), self.column_slice(c)

    def charge_rows(self) -> np.ndarray:
        """Indices (readout order) of the channel rows that hold photosites."""
        return _charge_indices(self.row_segments)

    def charge_columns(self) -> np.ndarray:
        """Indices (readout order) of the channel columns that hold photosites."""
        return _charge_indices(self.column_segments)

    def channel_flips(self, channel: int) -> tuple[bool, bool]:
        """(flip rows, flip columns) that bring a channel's block into readout order."""
        i, j = self.channel_position(channel)
        return i == 1, j == 1

    def channel_position(self, channel: int) -> tuple[int, int]:
        """(grid row, grid column) of a channel; channels are numbered row-major from 0."""
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < self.n_channels:
            raise ParameterError(f"channel must be an integer in [0, {self.n_channels - 1}] for layout '{self.name}', got {channel!r}")
        return divmod(int(channel), self.channel_grid[1])


def _segment_slice(segments, name, axis, layout_name) -> slice:
    start = 0
    for s in segments:
        if s.name == name:
            return slice(start, start + s.size)
        start += s.size
    raise ParameterError(f"layout '{layout_name}' has no {axis} segment '{name}'; have {[s.name for s in segments]}")


def _charge_indices(segments) -> np.ndarray:
    idx, start = [], 0
    for s in segments:
        if s.collects_charge:
            idx.append(np.arange(start, start + s.size))
        start += s.size
    return np.concatenate(idx) if idx else np.zeros(0, dtype=int)


# ------------------------------------------------------------------ cutting and assembling
def check_frame_shape(frame: np.ndarray, layout: RawLayout) -> None:
    """Raise InputError unless ``frame`` is a 2-D array of the layout's frame shape."""
    shape = tuple(np.shape(frame))
    if shape != layout.frame_shape:
        raise InputError(f"raw frame shape {shape} (rows, columns) does not match layout '{layout.name}' shape {layout.frame_shape}")


def _readonly(view: np.ndarray) -> np.ndarray:
    view = view.view()
    view.flags.writeable = False
    return view


def _channel_view(frame: np.ndarray, layout: RawLayout, channel: int) -> np.ndarray:
    i, j = layout.channel_position(channel)
    h, w = layout.channel_shape
    block = frame[i * h:(i + 1) * h, j * w:(j + 1) * w]
    flip_r, flip_c = layout.channel_flips(channel)
    return block[::-1 if flip_r else 1, ::-1 if flip_c else 1]


def channel_block(frame: np.ndarray, layout: RawLayout, channel: int) -> np.ndarray:
    """Read-only view of one channel of a raw frame, in readout order (readout corner at [0, 0])."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    return _readonly(_channel_view(frame, layout, channel))


def region(frame: np.ndarray, layout: RawLayout, channel: int, name: str) -> np.ndarray:
    """Read-only view of the named region of one channel, in readout order.

    E.g. ``region(raw, lamost_layout(), 1, "overscan")`` is a (1042, 46) view whose column 0 is
    the overscan sample read first (next to the active area). Copy it to modify it.
    """
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    rs, cs = layout.region_slices(name)
    return _readonly(_channel_view(frame, layout, channel)[rs, cs])


def split_channels(frame: np.ndarray, layout: RawLayout) -> np.ndarray:
    """(n_channels, channel rows, channel columns) copy of all channels, in readout order."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    return np.stack([_channel_view(frame, layout, c) for c in range(layout.n_channels)])


def region_stack(frame: np.ndarray, layout: RawLayout, name: str) -> np.ndarray:
    """(n_channels, rows, columns) copy of one named region of every channel, readout order."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    rs, cs = layout.region_slices(name)
    return np.stack([_channel_view(frame, layout, c)[rs, cs] for c in range(layout.n_channels)])


def channels_to_mosaic(blocks: np.ndarray, layout: RawLayout) -> np.ndarray:
    """Place equal-shaped per-channel blocks (n_channels, h, w), readout order, into the physical
    mosaic (grid rows * h, grid columns * w), undoing the mirrored readout. New array."""
    blocks = np.asarray(blocks)
    if blocks.ndim != 3 or blocks.shape[0] != layout.n_channels:
        raise InputError(f"expected ({layout.n_channels}, rows, columns) channel blocks for layout '{layout.name}', got shape {blocks.shape}")
    _, h, w = blocks.shape
    gr, gc = layout.channel_grid
    out = np.empty((gr * h, gc * w), dtype=blocks.dtype)
    for c in range(layout.n_channels):
        i, j = layout.channel_position(c)
        fr, fc = layout.channel_flips(c)
        out[i * h:(i + 1) * h, j * w:(j + 1) * w] = blocks[c][::-1 if fr else 1, ::-1 if fc else 1]
    return out


def mosaic_to_channels(mosaic: np.ndarray, layout: RawLayout) -> np.ndarray:
    """Inverse of ``channels_to_mosaic``: (n_channels, h, w) copy in readout order."""
    mosaic = np.asarray(mosaic)
    gr, gc = layout.channel_grid
    if mosaic.ndim != 2 or mosaic.shape[0] % gr or mosaic.shape[1] % gc:
        raise InputError(f"mosaic shape {mosaic.shape} cannot be split into a {gr}x{gc} channel grid")
    h, w = mosaic.shape[0] // gr, mosaic.shape[1] // gc
    out = []
    for c in range(layout.n_channels):
        i, j = layout.channel_position(c)
        fr, fc = layout.channel_flips(c)
        out.append(mosaic[i * h:(i + 1) * h, j * w:(j + 1) * w][::-1 if fr else 1, ::-1 if fc else 1])
    return np.stack(out)


def assemble_channels(blocks: np.ndarray, layout: RawLayout) -> np.ndarray:
    """Raw frame from its channels (n_channels, channel rows, channel columns) in readout order."""
    blocks = np.asarray(blocks)
    if blocks.shape[1:] != layout.channel_shape:
        raise InputError(f"channel blocks of shape {blocks.shape[1:]} do not match layout '{layout.name}' channel shape {layout.channel_shape}")
    return channels_to_mosaic(blocks, layout)


def assemble_active(actives: np.ndarray, layout: RawLayout, name: str = "active") -> np.ndarray:
    """Trimmed image: the per-channel active areas (n_channels, h, w), readout order (e.g. a
    predicted dark per channel), mosaicked in physical orientation; (2084, 2084) for LAMOST."""
    actives = np.asarray(actives)
    if actives.shape[1:] != layout.region_shape(name):
        raise InputError(f"active blocks of shape {actives.shape[1:]} do not match layout '{layout.name}' region '{name}' {layout.region_shape(name)}")
    return channels_to_mosaic(actives, layout)
