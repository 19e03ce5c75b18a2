"""Deep-Dark-Net inputs: the overscan and optical-black strips of a channel on the active grid.

Qu et al. (2024, sec. 2.3) crop the overscan (46 x 1024), column optical black (4 x 1024) and
row optical black (1024 x 4) of each readout channel and upsample each bilinearly to the active
area, giving a 3-channel conditional image A for the pix2pix generator. We build the same three
planes on the full (h, w) active grid of one channel, in readout order:

* plane 0, overscan: the median of each row's overscan samples, broadcast along the row
  (it carries the bias level and its drift along the rows);
* plane 1, column optical black: the median of each row's masked columns, broadcast along the
  row (bias + dark of the masked pixels of that row);
* plane 2, row optical black: the median of each column's masked rows, broadcast down the column.

Medians, not means: one hot pixel among the 4 masked pixels of a row would otherwise paint a
bright stripe across the whole input plane.

``mode="profile"`` (default) is this broadcast of 1-D profiles; ``mode="resize"`` is the paper's
bilinear resize of each strip to (h, w) (align_corners=True), which for a strip only a few pixels
wide differs from the profile by a smooth interpolation across the strip's samples.

Options the paper lacks (documented design choices, off by default):
* ``template``: a fixed (h, w) image per channel (e.g. the 'scaled' baseline's template times a
  typical level, in ADU), appended as a plane. Without it the fixed spatial pattern must be
  memorised by the network, which a translation-equivariant CNN can only do from position cues.
* ``coordinates=True``: two planes, row and column position in [-1, 1] (CoordConv, Liu et al. 2018).

Target "above_overscan" (our design choice, ``overscan_reference``): the generator predicts the
active area minus the overscan level of its row (the bias), which is added back at prediction;
the network then spends its range on the dark signal (tens to hundreds of ADU) instead of on the
~1000 ADU bias and its per-channel, per-frame offsets. "absolute" is the paper's plain target.

ADU planes (strips, template, target) go through the fixed affine ``AduScaling`` stored with the
model: unit = (ADU - offset) / scale, so the generator's tanh range [-1, 1] is
[offset - scale, offset + scale] ADU. Coordinate planes are not scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dancekit.dark.layout import RawLayout, check_frame_shape, region_stack
from dancekit.errors import InputError, ParameterError

STRIPS = ("overscan", "ob_columns", "ob_rows")


@dataclass(frozen=True)
class AduScaling:
    """Affine ADU <-> network units: unit = (adu - offset) / scale. offset, scale in ADU."""

    offset: float
    scale: float

    def __post_init__(self):
        if not (np.isfinite(self.offset) and np.isfinite(self.scale) and self.scale > 0):
            raise ParameterError(f"ADU scaling needs a finite offset and a scale > 0, got offset={self.offset}, scale={self.scale}")

    def to_unit(self, adu):
        return (adu - self.offset) / self.scale

    def to_adu(self, unit):
        return unit * self.scale + self.offset


def fit_adu_scaling(values: np.ndarray, tail: float = 1e-4, margin: float = 1.25) -> AduScaling:
    """Scaling that maps the [tail, 1 - tail] quantile range of ``values`` [ADU] (training targets)
    onto [-1/margin, +1/margin], leaving headroom below tanh saturation. Pixels beyond (the
    hottest pixels) saturate at the ends of the range."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).any():
        raise InputError("cannot fit an ADU scaling to empty or all-NaN data")
    if not 0 <= tail < 0.5 or margin < 1:
        raise ParameterError(f"tail must be in [0, 0.5) and margin >= 1, got tail={tail}, margin={margin}")
    lo, hi = np.nanquantile(values, [tail, 1 - tail])
    half = max((hi - lo) / 2, 1.0) * margin
    return AduScaling(offset=float((hi + lo) / 2), scale=float(half))


def strip_planes(frame: np.ndarray, layout: RawLayout, mode: str = "profile") -> np.ndarray:
    """(n_channels, n_strips, h, w) float32 ADU planes of the strips present in the layout
    (overscan, column OB, row OB, in that order), on each channel's active grid, readout order."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if mode not in ("profile", "resize"):
        raise ParameterError(f"mode must be 'profile' or 'resize', got {mode!r}")
    names = [s for s in STRIPS if layout.has_region(s)]
    if not names:
        raise ParameterError(f"layout '{layout.name}' has none of the regions {STRIPS}; nothing to condition on")
    h, w = layout.region_shape("active")
    planes = []
    for name in names:
        strip = region_stack(frame, layout, name).astype(np.float32)  # (n, sh, sw)
        if mode == "resize":
            t = torch.from_numpy(strip)[:, None]
            planes.append(F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)[:, 0].numpy())
            continue
        if name == "ob_rows":  # masked rows: one value per active column
            if strip.shape[2] != w:
                raise ParameterError(f"region 'ob_rows' has {strip.shape[2]} columns, the active area {w}")
            planes.append(np.broadcast_to(np.median(strip, axis=1)[:, None, :], (strip.shape[0], h, w)))
        else:  # overscan / masked columns: one value per active row
            if strip.shape[1] != h:
                raise ParameterError(f"region '{name}' has {strip.shape[1]} rows, the active area {h}")
            planes.append(np.broadcast_to(np.median(strip, axis=2)[:, :, None], (strip.shape[0], h, w)))
    return np.stack(planes, axis=1).astype(np.float32)


def n_input_planes(layout: RawLayout, template: bool = False, coordinates: bool = False) -> int:
    """Number of generator input channels for this layout and these options."""
    return sum(layout.has_region(s) for s in STRIPS) + int(template) + 2 * int(coordinates)


def network_inputs(
    frame: np.ndarray,
    layout: RawLayout,
    scaling: AduScaling,
    mode: str = "profile",
    template: np.ndarray | None = None,
    coordinates: bool = False,
) -> np.ndarray:
    """Generator inputs (n_channels, C, h, w) float32 in network units, one sample per channel.

    template : optional (n_channels, h, w) ADU image appended as a plane (see module docstring).
    """
    planes = scaling.to_unit(strip_planes(frame, layout, mode))
    n, _, h, w = planes.shape
    extra = []
    if template is not None:
        template = np.asarray(template, dtype=np.float32)
        if template.shape != (n, h, w):
            raise InputError(f"template shape {template.shape} must be (n_channels, h, w) = {(n, h, w)}")
        extra.append(scaling.to_unit(template)[:, None])
    if coordinates:
        yy, xx = np.meshgrid(np.linspace(-1, 1, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32), indexing="ij")
        extra.append(np.broadcast_to(np.stack([yy, xx])[None], (n, 2, h, w)))
    return np.concatenate([planes, *extra], axis=1).astype(np.float32)


def overscan_reference(frame: np.ndarray, layout: RawLayout) -> np.ndarray:
    """(n_channels, h, w) float32 ADU: the median overscan sample of each active row, broadcast
    along the row (the bias the "above_overscan" target is measured from)."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if not layout.has_region("overscan"):
        raise ParameterError(f"layout '{layout.name}' has no 'overscan' region; use target 'absolute'")
    h, w = layout.region_shape("active")
    rows = np.median(region_stack(frame, layout, "overscan").astype(np.float32), axis=2)  # (n, h)
    return np.ascontiguousarray(np.broadcast_to(rows[:, :, None], (rows.shape[0], h, w)), dtype=np.float32)


TARGETS = ("absolute", "above_overscan")


def target_adu(frame: np.ndarray, layout: RawLayout, target: str = "absolute") -> np.ndarray:
    """(n_channels, h, w) float32 ADU the generator learns: the active areas, minus the overscan
    reference for ``target="above_overscan"``."""
    if target not in TARGETS:
        raise ParameterError(f"target must be one of {TARGETS}, got {target!r}")
    active = region_stack(np.asarray(frame), layout, "active").astype(np.float32)
    return active - overscan_reference(frame, layout) if target == "above_overscan" else active


def network_targets(frame: np.ndarray, layout: RawLayout, scaling: AduScaling, target: str = "absolute") -> np.ndarray:
    """Training targets (n_channels, 1, h, w) float32: ``target_adu`` in network units."""
    return scaling.to_unit(target_adu(frame, layout, target))[:, None]
