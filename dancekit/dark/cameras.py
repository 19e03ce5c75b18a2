"""Layouts of particular cameras, built from plain numbers: another camera is data, not code.

* ``quadrant_layout`` / ``lamost_layout``: LAMOST-like 2x2-channel CCDs (Qu et al. 2024 sec. 2.2).
* ``single_amplifier_layout``: a one-amplifier CCD described by FITS BIASSEC / TRIMSEC
  (``sections.amplifier_layout``, which also takes optical-black columns).
* ``layout_from_mapping``: any layout from a YAML-like mapping (segments and regions);
  ``layout_to_mapping`` is its inverse (how a checkpoint stores the layout it was trained on).
* ``frame_layout_from_config``: THE place the commands build a frame's layout
  (``frame_layout.FrameLayout``), from the config's detector section and, for cameras described
  by sections, the config's amplifiers or the frame's header keywords; a frame that does not fit
  gets a message saying how to describe its camera. ``layout_from_config``: the same as one
  ``RawLayout`` (quadrant cameras; one header amplifier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dancekit.dark.layout import STANDARD_REGIONS, RawLayout, Segment
from dancekit.dark.sections import amplifier_layout, parse_fits_section  # noqa: F401  (parse_fits_section: re-exported)
from dancekit.errors import ConfigError, InputError, ParameterError


def quadrant_layout(
    *,
    name: str = "lamost",
    channel_grid: tuple[int, int] = (2, 2),
    prescan: int = 3,
    invalid: int = 1,
    amplifier: int = 4,
    optical_black: int = 4,
    active: int = 1042,
    overscan: int = 46,
    optical_black_rows: int = 4,
    discarded_rows: int = 1,
    active_rows: int | None = None,
) -> RawLayout:
    """Layout of a LAMOST-like multi-channel CCD (defaults: KAF-4320 guide camera, 2094 x 2200).

    Column counts are per channel, from the readout corner; ``active_rows`` defaults to ``active``
    (square active area). ``discarded_rows`` is per *channel* (at its inner edge, next to the
    frame's middle): the LAMOST frame has 2 x 1 = 2, which the config states per frame
    (``detector.discarded_rows: 2``; ``layout_from_config`` divides). Zero-sized segments are left
    out. Qu et al. 2024, sec. 2.2.
    """
    cols = [
        ("prescan", prescan, False), ("invalid", invalid, False), ("amplifier", amplifier, False),
        ("optical_black", optical_black, True), ("active", active, True), ("overscan", overscan, False),
    ]
    rows = [
        ("optical_black", optical_black_rows, True),
        ("active", active if active_rows is None else active_rows, True),
        ("discarded", discarded_rows, False),
    ]
    for seg_name, size, _ in cols + rows:
        if not isinstance(size, (int, np.integer)) or size < 0:
            raise ParameterError(f"segment '{seg_name}' size must be an integer >= 0, got {size!r}")
    if active < 1 or (active_rows is not None and active_rows < 1):
        raise ParameterError(f"the active area must be >= 1 pixel on each side, got {active} columns, {active_rows} rows")
    present_rows = {n for n, k, _ in rows if k > 0}
    present_cols = {n for n, k, _ in cols if k > 0}
    regions = [r for r in STANDARD_REGIONS if r[1] in present_rows and r[2] in present_cols]
    return RawLayout(
        name=name,
        channel_grid=tuple(channel_grid),
        row_segments=tuple(Segment(n, int(k), q) for n, k, q in rows if k > 0),
        column_segments=tuple(Segment(n, int(k), q) for n, k, q in cols if k > 0),
        regions=tuple(regions),
    )


def lamost_layout() -> RawLayout:
    """The LAMOST second-generation guide camera (KAF-4320): 2094 x 2200 raw, 4 channels."""
    return quadrant_layout()


def single_amplifier_layout(shape: Sequence[int], biassec: str, trimsec: str, *, name: str = "single-amplifier") -> RawLayout:
    """Layout of a one-amplifier CCD from its FITS BIASSEC/TRIMSEC keywords.

    shape : (rows, columns) of the raw frame (NAXIS2, NAXIS1).
    biassec : overscan columns, e.g. '[4:13,1:520]'; trimsec : active area, e.g. '[17:528,1:520]'
    (the SAAO frame ccdproc ships as tests/data/a8280271.fits, 520 x 536). Columns between and
    around them become 'unused_<n>' segments; rows outside TRIMSEC become 'unused_rows_<n>'.
    The layout has the regions 'active' and 'overscan' (no optical black).
    """
    return amplifier_layout(shape, trimsec, biassec, name=name, labels=("TRIMSEC", "BIASSEC", ""))


def layout_from_mapping(mapping: Mapping) -> RawLayout:
    """Build a layout from plain data (as read from YAML).

    Keys: name, channel_grid [r, c], row_segments / column_segments: lists of
    {name, size, collects_charge}; optional regions: {name: [row segment, column segment]}.
    Unknown keys raise ConfigError naming them.
    """
    allowed = {"name", "channel_grid", "row_segments", "column_segments", "regions"}
    unknown = set(mapping) - allowed
    if unknown:
        raise ConfigError(f"unknown layout keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    try:
        def segs(key):
            out = []
            for item in mapping[key]:
                extra = set(item) - {"name", "size", "collects_charge"}
                if extra:
                    raise ConfigError(f"unknown keys {sorted(extra)} in {key} entry {dict(item)}")
                out.append(Segment(str(item["name"]), int(item["size"]), bool(item.get("collects_charge", False))))
            return tuple(out)

        regions = mapping.get("regions")
        regions = STANDARD_REGIONS if regions is None else tuple((str(k), str(v[0]), str(v[1])) for k, v in regions.items())
        return RawLayout(
            name=str(mapping.get("name", "custom")),
            channel_grid=tuple(int(g) for g in mapping["channel_grid"]),
            row_segments=segs("row_segments"),
            column_segments=segs("column_segments"),
            regions=regions,
        )
    except KeyError as exc:
        raise ConfigError(f"layout is missing key {exc.args[0]!r}") from None
    except ParameterError as exc:
        raise ConfigError(exc.message) from None


def layout_to_mapping(layout: RawLayout) -> dict:
    """Plain data (str, int, bool, lists, dicts) describing ``layout``; ``layout_from_mapping``
    rebuilds an equal layout from it (checkpoints and master darks store it)."""
    return {
        "name": layout.name,
        "channel_grid": [int(g) for g in layout.channel_grid],
        "row_segments": [{"name": s.name, "size": int(s.size), "collects_charge": bool(s.collects_charge)} for s in layout.row_segments],
        "column_segments": [{"name": s.name, "size": int(s.size), "collects_charge": bool(s.collects_charge)} for s in layout.column_segments],
        "regions": {name: [r, c] for name, r, c in layout.regions},
    }


def same_geometry(a: RawLayout, b: RawLayout) -> bool:
    """True when two layouts cut frames identically (the layout names may differ)."""
    return (tuple(a.channel_grid) == tuple(b.channel_grid) and a.row_segments == b.row_segments
            and a.column_segments == b.column_segments and set(a.regions) == set(b.regions))


def describe_layout(layout: RawLayout) -> str:
    """'lamost 2094x2200, 2x2 channels, active 1042x1042' (for messages)."""
    rows, cols = layout.frame_shape
    ar, ac = layout.region_shape("active") if layout.has_region("active") else (0, 0)
    return f"'{layout.name}' {rows}x{cols}, {layout.channel_grid[0]}x{layout.channel_grid[1]} channels, active {ar}x{ac}"


def layout_from_config(detector, sections: Mapping | None = None) -> RawLayout:
    """The raw-frame layout of a config's ``detector`` section as one ``RawLayout``.

    ``detector`` has the attributes of ``dancekit.io.config_schema.Detector`` (plain numbers):
    ``layout: quadrants`` builds ``quadrant_layout`` from ``channel_grid``, ``channel_columns``,
    ``active_rows``, ``optical_black_rows`` and ``discarded_rows`` (per frame in the config,
    divided evenly between the channel rows here); ``layout: fits-sections`` builds the layout of
    the one amplifier that ``sections`` (the frame's header) describes, with the frame shape
    (``rows``, ``columns``). Cameras of several section amplifiers: ``frame_layout_from_config``.
    """
    if detector.layout == "quadrants":
        return _quadrant_layout_of(detector)
    frame = frame_layout_from_config(detector, (int(detector.rows), int(detector.columns)), sections or {})
    if frame.single is None:
        raise ParameterError(f"detector '{detector.name}' has {len(frame.parts)} amplifiers: one RawLayout cannot hold them")
    return frame.single


def _quadrant_layout_of(detector) -> RawLayout:
    shape = (int(detector.rows), int(detector.columns))
    grid = tuple(int(g) for g in detector.channel_grid)
    if detector.discarded_rows % grid[0]:
        raise ParameterError(f"discarded_rows {detector.discarded_rows} do not split evenly between {grid[0]} channel rows")
    c = detector.channel_columns
    layout = quadrant_layout(
        name=str(detector.name), channel_grid=grid, prescan=c.prescan, invalid=c.invalid, amplifier=c.amplifier,
        optical_black=c.optical_black, active=c.active, overscan=c.overscan,
        optical_black_rows=detector.optical_black_rows, discarded_rows=detector.discarded_rows // grid[0],
        active_rows=detector.active_rows,
    )
    if layout.frame_shape != shape:
        raise ParameterError(f"detector segments give a {layout.frame_shape[0]}x{layout.frame_shape[1]} frame, "
                             f"the config says rows x columns = {shape[0]}x{shape[1]}")
    return layout


def frame_layout_from_config(detector, shape: Sequence[int], header: Mapping | None = None):
    """The ``FrameLayout`` of a raw frame of ``shape`` (rows, columns) with ``header`` (a mapping
    of its keywords) under a config's ``detector`` section (see ``Detector`` in config_schema).

    quadrants: the config's channels; sections: the config's amplifiers; fits-sections: the
    header's (``sections.header_amplifiers``). Raises InputError, saying how to describe the
    camera, when the frame does not fit."""
    from dancekit.dark.frame_layout import FrameLayout, sections_frame_layout
    from dancekit.dark.sections import header_amplifiers

    shape = (int(shape[0]), int(shape[1]))
    header = header or {}
    if detector.layout == "quadrants":
        layout = _quadrant_layout_of(detector)
        if layout.frame_shape != shape:
            raise InputError(f"raw frame shape {shape} (rows, columns) does not match layout '{layout.name}' shape "
                             f"{layout.frame_shape} of the config; {camera_hint(header)}")
        return FrameLayout.whole(layout)
    if detector.rows and detector.columns and (detector.rows, detector.columns) != shape:
        raise InputError(f"raw frame shape {shape} (rows, columns) differs from the config's detector.rows x columns "
                         f"{detector.rows} x {detector.columns} ('{detector.name}'); set them to 0 to take each frame's shape")
    if detector.layout == "sections":
        specs = [(a.data, a.overscan, a.optical_black) for a in detector.amplifiers]
        labels = [[f"detector.amplifiers[{i}].{k}" for k in ("data", "overscan", "optical_black")] for i in range(len(specs))]
    elif detector.layout == "fits-sections":
        try:
            found = header_amplifiers(header)
        except InputError as exc:
            raise InputError(f"{exc.message} (detector.layout fits-sections, '{detector.name}')") from None
        specs = [(data, bias, "") for _, data, bias, _ in found]
        labels = [[keys[0], keys[1], ""] for *_, keys in found]
    else:
        raise ParameterError(f"detector.layout must be 'quadrants', 'sections' or 'fits-sections', got {detector.layout!r}")
    try:
        return sections_frame_layout(shape, specs, name=str(detector.name), labels=labels)
    except ParameterError as exc:
        raise InputError(f"{exc.message} (frame {shape[0]} x {shape[1]}, rows x columns)") from None


def camera_hint(header: Mapping) -> str:
    """How to describe the camera of a frame that does not fit the config (for messages)."""
    from dancekit.dark.sections import header_amplifiers

    try:
        found = header_amplifiers(header)
        keys = sorted({k for *_, pair in found for k in pair})
        return (f"its header describes {len(found)} amplifier(s) ({', '.join(keys)}): add --set detector.layout=fits-sections "
                "to read them")
    except InputError:
        pass
    seen = [f"{k} {header[k]}" for k in ("DATASEC", "TRIMSEC", "BIASSEC") if k in header]
    return ("describe this camera in a YAML config given as --config FILE: 'base: lamost' and 'detector: {layout: sections, "
            "amplifiers: [{data: \"[x1:x2,y1:y2]\", overscan: \"[x1:x2,y1:y2]\"}, ...]}' (FITS 1-based sections, one "
            "entry per amplifier; check it with dancekit config check FILE)" + (f"; the header has {', '.join(seen)}" if seen else ""))
