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
* ``template``: the master template of the 'scaled' baseline (per-pixel dark per unit optical-black
  level, ``baselines.fit_scaled_dark``), appended as the plane ``template - 1`` (dimensionless,
  ~0 for an ordinary pixel, up to ~50 for a hot one). Without it the fixed spatial pattern (hot
  pixels, hot columns, rings) must be memorised by the network, which a translation-equivariant
  CNN fed only with row/column strip profiles cannot do: it sees the same input at every pixel
  of a row. The template travels inside the model file (``template_codec``).
* ``coordinates=True``: two planes, row and column position in [-1, 1] (CoordConv, Liu et al. 2018).

Targets (``TARGETS``), i.e. what the generator's tanh output means:
* "absolute": the active area itself (the paper);
* "above_overscan" (ours): the active area minus the overscan level of its row (the bias),
  added back at prediction; the network spends its range on the dark signal (tens to hundreds of
  ADU) instead of on the ~1000 ADU bias and its per-channel, per-frame offsets;
* "above_scaled" (ours, the bundled model's): the active area minus the 'scaled' baseline of the
  same frame, ``bias(row) + level x template`` (overscan bias fit, optical-black level, master
  template; ``baselines.predict_scaled_dark``), added back at prediction. The network learns only
  what the physical scaling misses: the amplifier glow (made at readout, so independent of the
  temperature, yet scaled with the level by the template), the error of the level measured in
  4-pixel strips, and bias structure the polynomial misses. Its output is tens of ADU, so the
  fitted tanh range is narrow and the prediction cannot stray far from the physical baseline.
  On the simulated camera, whose dark is level x a fixed pattern + glow, this is the only way a
  CNN of this size beats the scaled baseline; it is an adaptation of Deep-Dark-Net, not the
  paper's method, which ``target="absolute"`` without the template keeps available.

ADU planes (strips, target) go through the fixed affine ``AduScaling`` stored with the model:
unit = (ADU - offset) / scale, so the generator's tanh range [-1, 1] is [offset - scale,
offset + scale] ADU. Template and coordinate planes are dimensionless and not scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dancekit.dark.baselines import ScaledDark, predict_scaled_dark
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


def _strip_profiles(frame: np.ndarray, layout: RawLayout, mode: str) -> list[np.ndarray]:
    """Per strip, float32 ADU arrays that broadcast to (n_channels, h, w): (n, h, 1) for strips
    with one value per active row, (n, 1, w) for the row optical black; (n, h, w) for "resize"."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if mode not in ("profile", "resize"):
        raise ParameterError(f"mode must be 'profile' or 'resize', got {mode!r}")
    names = [s for s in STRIPS if layout.has_region(s)]
    if not names:
        raise ParameterError(f"layout '{layout.name}' has none of the regions {STRIPS}; nothing to condition on")
    h, w = layout.region_shape("active")
    profiles = []
    for name in names:
        strip = region_stack(frame, layout, name).astype(np.float32)  # (n, sh, sw)
        if mode == "resize":
            t = torch.from_numpy(strip)[:, None]
            profiles.append(F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)[:, 0].numpy())
        elif name == "ob_rows":  # masked rows: one value per active column
            if strip.shape[2] != w:
                raise ParameterError(f"region 'ob_rows' has {strip.shape[2]} columns, the active area {w}")
            profiles.append(np.median(strip, axis=1)[:, None, :])
        else:  # overscan / masked columns: one value per active row
            if strip.shape[1] != h:
                raise ParameterError(f"region '{name}' has {strip.shape[1]} rows, the active area {h}")
            profiles.append(np.median(strip, axis=2)[:, :, None])
    return profiles


def strip_planes(frame: np.ndarray, layout: RawLayout, mode: str = "profile") -> np.ndarray:
    """(n_channels, n_strips, h, w) float32 ADU planes of the strips present in the layout
    (overscan, column OB, row OB, in that order), on each channel's active grid, readout order."""
    h, w = layout.region_shape("active")
    profiles = _strip_profiles(frame, layout, mode)
    planes = np.empty((layout.n_channels, len(profiles), h, w), np.float32)
    for k, p in enumerate(profiles):
        planes[:, k] = p
    return planes


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

    template : optional (n_channels, h, w) master template [ADU/ADU], appended as ``template - 1``.
    """
    profiles = _strip_profiles(frame, layout, mode)
    n, (h, w) = layout.n_channels, layout.region_shape("active")
    if template is not None:
        template = np.asarray(template, dtype=np.float32)
        if template.shape != (n, h, w):
            raise InputError(f"template shape {template.shape} must be (n_channels, h, w) = {(n, h, w)}")
    # filled in place: broadcasting 1-D profiles into one preallocated array (no full-size temporaries)
    out = np.empty((n, len(profiles) + (template is not None) + 2 * coordinates, h, w), np.float32)
    for k, p in enumerate(profiles):
        out[:, k] = scaling.to_unit(p)
    k = len(profiles)
    if template is not None:
        np.subtract(template, np.float32(1.0), out=out[:, k])
        k += 1
    if coordinates:
        out[:, k] = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        out[:, k + 1] = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    return out


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


TARGETS = ("absolute", "above_overscan", "above_scaled")


def uses_template(conditioning: dict) -> bool:
    """Whether a model's conditioning (checkpoint ``conditioning`` dict) needs the master template."""
    return bool(conditioning.get("template", False)) or conditioning.get("target") == "above_scaled"


def reference_adu(frame: np.ndarray, layout: RawLayout, target: str = "absolute", template: np.ndarray | None = None,
                  bias_degree: int | None = 3) -> np.ndarray | None:
    """(n_channels, h, w) float32 ADU that ``target`` is measured from (added back to the
    generator's output at prediction): None for "absolute", the overscan level of each row for
    "above_overscan", the 'scaled' baseline (needs ``template``, ADU/ADU) for "above_scaled"."""
    if target not in TARGETS:
        raise ParameterError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "absolute":
        return None
    if target == "above_overscan":
        return overscan_reference(frame, layout)
    if template is None:
        raise ParameterError("target 'above_scaled' needs the master template (ADU/ADU) of the scaled baseline")
    return predict_scaled_dark(ScaledDark(np.asarray(template, np.float32), bias_degree), frame, layout)


def target_adu(frame: np.ndarray, layout: RawLayout, target: str = "absolute", template: np.ndarray | None = None,
               bias_degree: int | None = 3) -> np.ndarray:
    """(n_channels, h, w) float32 ADU the generator learns: the active areas minus ``reference_adu``."""
    reference = reference_adu(frame, layout, target, template, bias_degree)
    active = region_stack(np.asarray(frame), layout, "active").astype(np.float32)
    return active if reference is None else active - reference


def network_targets(frame: np.ndarray, layout: RawLayout, scaling: AduScaling, target: str = "absolute",
                    template: np.ndarray | None = None, bias_degree: int | None = 3) -> np.ndarray:
    """Training targets (n_channels, 1, h, w) float32: ``target_adu`` in network units."""
    return scaling.to_unit(target_adu(frame, layout, target, template, bias_degree))[:, None]
