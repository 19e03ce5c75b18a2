"""A raw frame as one or more independently read parts, placed into one trimmed image.

A ``RawLayout`` describes mirror-symmetric readout channels of equal shape (the LAMOST quadrants,
one BIASSEC amplifier). Amplifiers given by FITS sections need not be mirrored nor equal (two
amplifiers with both overscans after the data, Lick Kast), so a frame is a ``FrameLayout``: parts,
each a ``RawLayout`` cut from the whole frame, whose trimmed mosaics (``layout.assemble_active``)
sit at an origin of the trimmed image. The trimmed image is the bounding box of the parts' data,
in the raw frame's orientation; pixels no part covers are NaN.

A frame of one ``RawLayout`` is ``FrameLayout.whole(layout)``: one part at (0, 0), and its
mapping (``frame_layout_to_mapping``) is the ``RawLayout``'s own, as master darks and model files
of earlier versions store it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import numpy as np

from dancekit.dark.cameras import describe_layout, layout_from_mapping, layout_to_mapping, same_geometry
from dancekit.dark.layout import RawLayout, assemble_active, mosaic_to_channels
from dancekit.errors import ConfigError, InputError, ParameterError


@dataclass(frozen=True)
class Part:
    """A part of a raw frame: its layout (over the whole raw frame) and the (row, column) of its
    trimmed mosaic in the trimmed image."""

    layout: RawLayout
    origin: tuple[int, int] = (0, 0)

    @property
    def trimmed_shape(self) -> tuple[int, int]:
        h, w = self.layout.region_shape("active")
        return h * self.layout.channel_grid[0], w * self.layout.channel_grid[1]

    def box(self) -> tuple[slice, slice]:
        h, w = self.trimmed_shape
        return slice(self.origin[0], self.origin[0] + h), slice(self.origin[1], self.origin[1] + w)


@dataclass(frozen=True)
class FrameLayout:
    """Parts of one raw frame (all of the same frame shape) and where their data go."""

    name: str
    parts: tuple[Part, ...]

    def __post_init__(self):
        if not self.parts:
            raise ParameterError(f"frame layout '{self.name}' has no parts")
        shapes = {p.layout.frame_shape for p in self.parts}
        if len(shapes) != 1:
            raise ParameterError(f"the parts of frame layout '{self.name}' cut frames of different shapes {sorted(shapes)}")
        boxes = [p.box() for p in self.parts]
        for i, (ri, ci) in enumerate(boxes):
            for j, (rj, cj) in enumerate(boxes[i + 1:], i + 1):
                if ri.start < rj.stop and rj.start < ri.stop and ci.start < cj.stop and cj.start < ci.stop:
                    raise ParameterError(f"parts {i} and {j} of frame layout '{self.name}' overlap in the trimmed image")

    @classmethod
    def whole(cls, layout: RawLayout) -> "FrameLayout":
        return cls(layout.name, (Part(layout, (0, 0)),))

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.parts[0].layout.frame_shape

    @property
    def trimmed_shape(self) -> tuple[int, int]:
        return (max(p.box()[0].stop for p in self.parts), max(p.box()[1].stop for p in self.parts))

    @property
    def single(self) -> RawLayout | None:
        """The layout of a frame made of one part at the origin, else None."""
        return self.parts[0].layout if len(self.parts) == 1 and self.parts[0].origin == (0, 0) else None

    def assemble(self, blocks: Sequence[np.ndarray], dtype=np.float32) -> np.ndarray:
        """Trimmed image from each part's active blocks (n_channels, h, w), readout order; NaN where
        no part has data."""
        if len(blocks) != len(self.parts):
            raise InputError(f"expected {len(self.parts)} parts for frame layout '{self.name}', got {len(blocks)}")
        if self.single is not None:  # one part fills the image: no NaN canvas to fill
            return assemble_active(blocks[0], self.single).astype(dtype, copy=False)
        image = np.full(self.trimmed_shape, np.nan, dtype=dtype)
        for part, block in zip(self.parts, blocks):
            image[part.box()] = assemble_active(block, part.layout)
        return image

    def split(self, image: np.ndarray) -> list[np.ndarray]:
        """Inverse of ``assemble``: each part's (n_channels, h, w) blocks, readout order (copies)."""
        image = np.asarray(image)
        if image.shape != self.trimmed_shape:
            raise InputError(f"trimmed image shape {image.shape} does not match frame layout '{self.name}' {self.trimmed_shape}")
        return [mosaic_to_channels(image[p.box()], p.layout) for p in self.parts]


def sections_frame_layout(shape: Sequence[int], amplifiers: Sequence[tuple[str, str, str]], *, name: str = "sections",
                          labels: Sequence[Sequence[str]] | None = None) -> FrameLayout:
    """Frame layout of amplifiers given as FITS sections (data, overscan, optical black or '').

    Each amplifier's data goes to the trimmed image at its place in the raw frame, relative to
    the bounding box of all the data sections. ``labels`` name each amplifier's sections in
    messages (default: amplifiers[i].data, ...)."""
    from dancekit.dark.sections import amplifier_layout, parse_fits_section

    layouts, corners = [], []
    for i, (data, overscan, black) in enumerate(amplifiers):
        names = labels[i] if labels else [f"amplifiers[{i}].{k}" for k in ("data", "overscan", "optical_black")]
        layouts.append(amplifier_layout(shape, data, overscan, black, name=f"{name}:{i + 1}", labels=names))
        rows, cols = parse_fits_section(data)
        corners.append((rows.start, cols.start))
    top, left = min(r for r, _ in corners), min(c for _, c in corners)
    parts = tuple(Part(lay, (r - top, c - left)) for lay, (r, c) in zip(layouts, corners))
    if len(parts) == 1:
        return FrameLayout(name, (Part(layouts[0], (0, 0)),))
    return FrameLayout(name, parts)


def frame_layout_to_mapping(frame: FrameLayout) -> dict:
    """Plain data of a frame layout: a single part's ``layout_to_mapping``, else
    {name, parts: [{origin, layout}]}; ``frame_layout_from_mapping`` inverts it."""
    if frame.single is not None:
        return layout_to_mapping(frame.single)
    return {"name": frame.name,
            "parts": [{"origin": [int(p.origin[0]), int(p.origin[1])], "layout": layout_to_mapping(p.layout)} for p in frame.parts]}


def frame_layout_from_mapping(mapping: Mapping) -> FrameLayout:
    if "parts" not in mapping:
        return FrameLayout.whole(layout_from_mapping(mapping))
    try:
        parts = tuple(Part(layout_from_mapping(p["layout"]), (int(p["origin"][0]), int(p["origin"][1]))) for p in mapping["parts"])
        return FrameLayout(str(mapping.get("name", "custom")), parts)
    except (KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"frame layout mapping is malformed ({exc})") from None
    except ParameterError as exc:
        raise ConfigError(exc.message) from None


def same_frame_geometry(a: FrameLayout, b: FrameLayout) -> bool:
    """True when two frame layouts cut frames identically and place the parts alike."""
    return len(a.parts) == len(b.parts) and all(
        pa.origin == pb.origin and same_geometry(pa.layout, pb.layout) for pa, pb in zip(a.parts, b.parts))


def describe_frame_layout(frame: FrameLayout) -> str:
    """'lamost' 2094x2200, 2x2 channels, active 1042x1042 / 'kast' 350x2112, 2 amplifiers, data ..."""
    if frame.single is not None:
        return describe_layout(frame.single)
    from dancekit.dark.sections import fits_section

    rows, cols = frame.frame_shape
    data = ", ".join(fits_section(*p.layout.region_slices("active")) for p in frame.parts)
    return f"'{frame.name}' {rows}x{cols}, {len(frame.parts)} amplifiers, data {data}"
