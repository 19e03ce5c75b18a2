"""CCD amplifiers described by FITS sections: the config's ``detector.amplifiers`` or the header's
BIASSEC / TRIMSEC / DATASEC and their per-amplifier variants.

A FITS section ``[x1:x2,y1:y2]`` is 1-based and inclusive, x along the columns (NAXIS1), the
IRAF/NOAO convention of DATASEC, BIASSEC and TRIMSEC. One amplifier is its *data* (the
light-sensitive pixels it reads), its serial *overscan* columns (samples with no pixel behind them:
bias and read noise, read on every row of its data) and optionally masked *optical-black* columns
(photosites without light: the dark level). ``amplifier_layout`` makes it a one-channel
``RawLayout`` cut from the whole raw frame (the columns of the other amplifiers are 'unused'
segments), so every method that works on a channel works on each amplifier.

Header keywords read (``header_amplifiers``), first match wins:

* per amplifier ``n`` (a number or letter suffix): ``TRIMSECn`` or ``DATASECn`` with ``BIASSECn``
  (mscred-like single-extension files); ``TSECn`` or ``DSECn`` with ``BSECn`` (NOAO Arcon);
  ``ASECn`` with ``BSECn`` (amplifier sections, e.g. ASECA/BSECA);
* one amplifier: ``TRIMSEC`` or ``DATASEC`` with ``BIASSEC``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dancekit.dark.layout import RawLayout, Segment
from dancekit.errors import InputError, ParameterError

_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")

#: (data keyword prefixes in order of preference, bias keyword prefix) of per-amplifier sections
PER_AMPLIFIER_KEYS = ((("TRIMSEC", "DATASEC"), "BIASSEC"), (("TSEC", "DSEC"), "BSEC"), (("ASEC",), "BSEC"))


def parse_fits_section(section: str) -> tuple[slice, slice]:
    """FITS section '[x1:x2,y1:y2]' (1-based, inclusive, x = column) -> (row slice, column slice)."""
    m = _SECTION.match(str(section).strip())
    if not m:
        raise ParameterError(f"FITS section must look like '[x1:x2,y1:y2]', got {section!r}")
    x1, x2, y1, y2 = (int(g) for g in m.groups())
    if x1 > x2 or y1 > y2 or min(x1, y1) < 1:
        raise ParameterError(f"FITS section {section!r} must have 1 <= x1 <= x2 and 1 <= y1 <= y2 (flipped sections are not supported)")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def fits_section(rows: slice, columns: slice) -> str:
    """Inverse of ``parse_fits_section``."""
    return f"[{columns.start + 1}:{columns.stop},{rows.start + 1}:{rows.stop}]"


def amplifier_layout(shape: Sequence[int], data: str, overscan: str, optical_black: str = "", *,
                     name: str = "amplifier", labels: Sequence[str] = ("TRIMSEC", "BIASSEC", "optical black")) -> RawLayout:
    """One amplifier as a one-channel layout of the whole raw frame (rows, columns).

    data, overscan, optical_black : FITS sections (optical_black optional). The overscan and the
    optical black are columns beside the data: their rows must cover the data rows (they are read
    on every data row) and their columns must not overlap the data's or each other's. Columns and
    rows outside become 'unused' segments. Regions: 'active', 'overscan' (+ 'ob_columns').
    ``labels`` name the three sections in messages (header keywords or config keys).
    """
    if len(shape) != 2 or min(shape) < 1:
        raise ParameterError(f"shape must be (rows, columns) >= 1, got {tuple(shape)}")
    n_rows, n_cols = int(shape[0]), int(shape[1])
    named = [("active", data, labels[0], True), ("overscan", overscan, labels[1], False)]
    if optical_black:
        named.append(("optical_black", optical_black, labels[2], True))
    cut = {}
    for seg, text, label, _ in named:
        try:
            rows, cols = parse_fits_section(text)
        except ParameterError as exc:
            raise ParameterError(f"{label}: {exc.message}") from None
        if cols.stop > n_cols or rows.stop > n_rows:
            raise ParameterError(f"{label} {text} exceeds the {n_rows} x {n_cols} frame (rows x columns)")
        cut[seg] = (rows, cols, text, label)
    data_rows = cut["active"][0]
    for seg in ("overscan", "optical_black"):
        if seg in cut:
            rows, _, text, label = cut[seg]
            if not (rows.start <= data_rows.start and rows.stop >= data_rows.stop):
                raise ParameterError(f"{label} {text} must cover the rows {data_rows.start + 1}:{data_rows.stop} of the data "
                                     f"(serial overscan: read on every data row; a parallel overscan below the data is not supported)")
    ordered = sorted((cols.start, cols.stop, seg, label, text) for seg, (_, cols, text, label) in cut.items())
    for (s0, e0, _, l0, t0), (s1, _, _, l1, t1) in zip(ordered, ordered[1:]):
        if s1 < e0:
            raise ParameterError(f"{l0} {t0} and {l1} {t1} overlap in columns")
    col_segments, pos = [], 0
    for start, stop, seg, _, _ in ordered:
        if start > pos:
            col_segments.append(Segment(f"unused_{len(col_segments)}", start - pos))
        col_segments.append(Segment(seg, stop - start, seg != "overscan"))
        pos = stop
    if pos < n_cols:
        col_segments.append(Segment(f"unused_{len(col_segments)}", n_cols - pos))
    row_segments = []
    if data_rows.start > 0:
        row_segments.append(Segment("unused_rows_0", data_rows.start))
    row_segments.append(Segment("active", data_rows.stop - data_rows.start, True))
    if data_rows.stop < n_rows:
        row_segments.append(Segment("unused_rows_1", n_rows - data_rows.stop))
    regions = [("active", "active", "active"), ("overscan", "active", "overscan")]
    if optical_black:
        regions.append(("ob_columns", "active", "optical_black"))
    return RawLayout(name=name, channel_grid=(1, 1), row_segments=tuple(row_segments),
                     column_segments=tuple(col_segments), regions=tuple(regions))


def amplifier_problems(specs: Sequence[tuple[str, str, str]], shape: Sequence[int] = (0, 0), prefix: str = "amplifiers") -> list[str]:
    """Every problem of a list of amplifiers (data, overscan, optical_black) as messages naming
    ``prefix[i].key``: bad section syntax, overlaps, rows not covered, data of two amplifiers
    overlapping, sections beyond ``shape`` (rows, columns; 0 = unknown). With an empty prefix the
    keys are relative ('@.data'), for the config loader to place."""
    problems, boxes = [], []
    for i, (data, overscan, black) in enumerate(specs):
        keys = [f"{prefix}[{i}].{k}" if prefix else f"@.{k}" for k in ("data", "overscan", "optical_black")]
        texts = [data, overscan, black]
        parsed = []
        for key, text in zip(keys, texts):
            if key.endswith("optical_black") and not text:
                continue
            try:
                parsed.append(parse_fits_section(text))
            except ParameterError as exc:
                problems.append(f"{key}: {exc.message}")
        if len(parsed) < (3 if black else 2):
            continue
        extent = (int(shape[0]) or max(r.stop for r, _ in parsed), int(shape[1]) or max(c.stop for _, c in parsed))
        try:
            amplifier_layout(extent, data, overscan, black, labels=keys)
        except ParameterError as exc:
            problems.append(exc.message)
            continue
        boxes.append((i, *parsed[0]))
    for a, (i, ri, ci) in enumerate(boxes):
        for j, rj, cj in boxes[a + 1:]:
            if ri.start < rj.stop and rj.start < ri.stop and ci.start < cj.stop and cj.start < ci.stop:
                problems.append(f"{prefix}[{i}].data and {prefix}[{j}].data overlap")
    return problems


def header_amplifiers(header: Mapping) -> list[tuple[str, str, str, tuple[str, str]]]:
    """The amplifiers a FITS header describes: [(name, data section, overscan section, (data key,
    bias key))], per-amplifier keywords first (see the module doc), else one BIASSEC amplifier.
    Raises InputError naming what was found and what is missing."""
    keys = {str(k).upper(): k for k in header.keys()}
    for data_prefixes, bias_prefix in PER_AMPLIFIER_KEYS:
        suffixes = sorted({k[len(p):] for p in data_prefixes for k in keys
                           if k.startswith(p) and re.fullmatch(r"[0-9A-Z]{1,3}", k[len(p):])})
        if not suffixes:
            continue
        found, missing = [], []
        for s in suffixes:
            data_key = next(f"{p}{s}" for p in data_prefixes if f"{p}{s}" in keys)
            bias_key = f"{bias_prefix}{s}"
            if bias_key not in keys:
                missing.append(f"{bias_key} (for {data_key})")
                continue
            found.append((s, str(header[keys[data_key]]), str(header[keys[bias_key]]), (data_key, bias_key)))
        if missing:
            raise InputError(f"the header describes amplifiers {', '.join(suffixes)} but lacks {', '.join(missing)}: "
                             "each amplifier needs its overscan section")
        return found
    data_key = next((k for k in ("TRIMSEC", "DATASEC") if k in keys), None)
    if data_key and "BIASSEC" in keys:
        return [("1", str(header[keys[data_key]]), str(header[keys["BIASSEC"]]), (data_key, "BIASSEC"))]
    have = [k for k in ("TRIMSEC", "DATASEC", "BIASSEC") if k in keys]
    lacking = "BIASSEC (the overscan)" if data_key else "TRIMSEC or DATASEC (the data)" + ("" if "BIASSEC" in keys else " and BIASSEC (the overscan)")
    raise InputError(f"the header has {', '.join(have) or 'no section keywords'} but no {lacking}; describe the amplifiers "
                     "in a config instead (detector: {layout: sections, amplifiers: [{data: '[x1:x2,y1:y2]', overscan: '[...]'}]})")
