"""Predicting the dark of one raw frame by any of the four methods, and refusing unusable frames.

Methods (all return the active areas (n_channels, h, w) in ADU, bias included, readout order):

* ``overscan``: the bias measured in the frame's own overscan, no dark current (the classical
  ``subtract_overscan`` + ``trim_image`` of ccdproc); works for any layout with an overscan.
* ``median``: the master median dark (``baselines.median_dark``), whatever the frame.
* ``scaled``: overscan bias + optical-black level x template (``baselines.predict_scaled_dark``).
* ``gan``: the Deep-Dark-Net generator on the frame's strips (``conditioning.network_inputs``),
  plus the reference its target is measured from (``conditioning.reference_adu``: nothing, the
  overscan bias, or the scaled baseline, which needs the model's master template).

``check_raw_frame`` refuses what no method can use: NaN/inf or saturated samples in the strips
the methods read (overscan, optical black), NaN in the active area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.dark.baselines import ScaledDark, overscan_bias, predict_scaled_dark
from dancekit.dark.conditioning import STRIPS, AduScaling, network_inputs, reference_adu
from dancekit.dark.layout import RawLayout, check_frame_shape, region_stack
from dancekit.errors import InputError, ParameterError

METHODS = ("gan", "median", "scaled", "overscan")


@dataclass(frozen=True)
class MasterDark:
    """Baselines fitted on training darks, per channel in readout order [ADU].

    median : (n_channels, h, w) per-pixel median of the training active areas (bias included).
    scaled : the 'scaled' baseline (template per unit optical-black level; all-NaN when it could
        not be made).
    n_frames : training frames used.
    template_note : why the template is all-NaN or was made from fewer frames ('' otherwise).
    """

    median: np.ndarray
    scaled: ScaledDark
    n_frames: int
    template_note: str = ""

    @property
    def has_template(self) -> bool:
        return bool(np.isfinite(self.scaled.template).any())


def check_raw_frame(frame: np.ndarray, layout: RawLayout, saturation: float) -> None:
    """Raise InputError for a frame of the wrong shape, with non-finite or saturated (>= ``saturation``
    ADU) samples in its overscan / optical-black strips, or with non-finite active pixels."""
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    for name in STRIPS:
        if not layout.has_region(name):
            continue
        strip = region_stack(frame, layout, name)
        for c in range(layout.n_channels):
            bad = int(np.count_nonzero(~np.isfinite(strip[c])))
            if bad:
                raise InputError(f"region '{name}' of channel {c} has {bad} NaN/inf samples; it cannot condition the dark")
            hot = int(np.count_nonzero(strip[c] >= saturation))
            if hot:
                raise InputError(f"region '{name}' of channel {c} has {hot} saturated samples (>= {saturation:g} ADU); "
                                 "the bias and dark level cannot be measured")
    if layout.has_region("active"):
        bad = int(np.count_nonzero(~np.isfinite(region_stack(frame, layout, "active"))))
        if bad:
            raise InputError(f"the active area has {bad} NaN/inf pixels")


def overscan_dark(frame: np.ndarray, layout: RawLayout, bias_degree: int | None = 3) -> np.ndarray:
    """Bias only [ADU] on the active grid (n_channels, h, w): the overscan bias of each active row."""
    rs, _ = layout.region_slices("active")
    bias = overscan_bias(frame, layout, bias_degree)[:, rs]
    h, w = layout.region_shape("active")
    return np.ascontiguousarray(np.broadcast_to(bias[:, :, None], (layout.n_channels, h, w)), dtype=np.float32)


def gan_dark(generator, frame: np.ndarray, layout: RawLayout, mode: str = "profile", coordinates: bool = False,
             target: str = "absolute", template: np.ndarray | None = None, template_plane: bool = False,
             bias_degree: int | None = 3) -> np.ndarray:
    """Deep-Dark-Net prediction [ADU] (n_channels, h, w), one channel at a time, in eval mode.

    template : the model's master template (n_channels, h, w) [ADU/ADU]; fed as an input plane
    when ``template_plane`` and used by ``target="above_scaled"``. The target's reference
    (``conditioning.reference_adu``) is added back to the generator's output."""
    from dancekit.dark.training import predict_dark

    if template_plane and template is None:
        raise ParameterError("this model takes the master template as an input plane; none was given")
    scaling = AduScaling(float(generator.adu_offset), float(generator.adu_scale))
    inputs = network_inputs(frame, layout, scaling, mode, template=template if template_plane else None, coordinates=coordinates)
    reference = reference_adu(frame, layout, target, template, bias_degree)
    dark = predict_dark(generator, inputs)
    if reference is not None:
        dark += reference
    return dark


def predict_active_dark(method: str, frame: np.ndarray, layout: RawLayout, *, master: MasterDark | None = None,
                        generator=None, mode: str = "profile", coordinates: bool = False,
                        target: str = "absolute", template: np.ndarray | None = None, template_plane: bool = False,
                        bias_degree: int | None = 3) -> np.ndarray:
    """The predicted dark of the active areas [ADU] (n_channels, h, w) by ``method`` (see module doc)."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    frame = np.asarray(frame)
    check_frame_shape(frame, layout)
    if method == "overscan":
        return overscan_dark(frame, layout, bias_degree)
    if method == "gan":
        if generator is None:
            raise ParameterError("method 'gan' needs a generator")
        return gan_dark(generator, frame, layout, mode, coordinates, target, template, template_plane, bias_degree)
    if master is None:
        raise ParameterError(f"method '{method}' needs a master dark")
    expected = (layout.n_channels, *layout.region_shape("active"))
    if master.median.shape != expected:
        raise InputError(f"the master dark holds active areas {master.median.shape}, this layout needs {expected}")
    if method == "median":
        return master.median.astype(np.float32, copy=True)
    if not (layout.has_region("ob_columns") or layout.has_region("ob_rows")):
        raise InputError(f"layout '{layout.name}' has no optical-black region: the scaled method cannot measure the "
                         "dark level (use --method median or overscan)")
    if not master.has_template:
        raise InputError("the master dark's TEMPLATE is all NaN (its frames held no measurable dark in the optical black: "
                         "biases?): --method scaled cannot use it; use --method median, or make the master from darks")
    return predict_scaled_dark(master.scaled, frame, layout)


#: an optical-black level counts as measured dark when above this many standard errors
MEASURABLE_DARK_SNR = 5.0


def fit_master_dark(frames: np.ndarray, layout: RawLayout, bias_degree: int | None = 3) -> MasterDark:
    """Median and scaled baselines from raw training darks (N, rows, columns) [ADU].

    The scaled template comes from the frames whose optical black holds a measurable dark in
    every channel (level > ``MEASURABLE_DARK_SNR`` standard errors): biases and very short
    exposures are left out of it (``template_note`` says so). Without optical-black regions, or
    without any such frame, the template is all-NaN and ``template_note`` says why."""
    from dancekit.dark.baselines import fit_scaled_dark, median_dark, optical_black_error, optical_black_level

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise InputError(f"expected raw training frames (N, rows, columns), got shape {frames.shape}")
    actives = np.stack([region_stack(f, layout, "active") for f in frames])  # (N, n, h, w)
    median = median_dark(actives)
    nan_template = ScaledDark(template=np.full(median.shape, np.nan, np.float32), bias_degree=bias_degree)
    n = int(frames.shape[0])
    if not (layout.has_region("ob_columns") or layout.has_region("ob_rows")):
        return MasterDark(median, nan_template, n, f"layout '{layout.name}' has no optical-black region to measure the dark level in")
    levels, errors = [], []
    for f in frames:
        bias = overscan_bias(f, layout, bias_degree)
        levels.append(optical_black_level(f, layout, bias))
        errors.append(optical_black_error(f, layout, bias))
    levels, errors = np.asarray(levels), np.asarray(errors)  # (N, n_channels)
    measured = np.all(levels > MEASURABLE_DARK_SNR * errors, axis=1)
    if not measured.any():
        worst = int(np.argmax(np.max(levels / np.maximum(errors, 1e-9), axis=1)))
        return MasterDark(median, nan_template, n, (
            f"none of the {n} frames holds a measurable dark in its optical black (e.g. {levels[worst].min():.2f} "
            f"+- {errors[worst].max():.2f} ADU above bias: biases, or exposures too short or too cold)"))
    note = "" if measured.all() else (f"{int((~measured).sum())} of {n} frames without a measurable dark in the optical "
                                      "black (biases?) were left out of the template")
    return MasterDark(median, fit_scaled_dark(frames[measured], layout, bias_degree), n, note)


# ------------------------------------------------------------------ whole frames (FrameLayout)
def check_frame(frame: np.ndarray, frame_layout, saturation: float) -> None:
    """``check_raw_frame`` on every part of a ``frame_layout.FrameLayout`` (amplifier named when several)."""
    for i, part in enumerate(frame_layout.parts):
        try:
            check_raw_frame(frame, part.layout, saturation)
        except InputError as exc:
            if len(frame_layout.parts) == 1:
                raise
            raise InputError(f"amplifier {i + 1}: {exc.message}") from None


def trimmed_active(frame: np.ndarray, frame_layout) -> np.ndarray:
    """The raw active pixels as the trimmed image [ADU] (float32; NaN where no part has data)."""
    return frame_layout.assemble([region_stack(frame, p.layout, "active") for p in frame_layout.parts])


def predict_frame_dark(method: str, frame: np.ndarray, frame_layout, *, masters: list[MasterDark] | None = None,
                       **options) -> np.ndarray:
    """``predict_active_dark`` on each part of a frame, as the trimmed image [ADU] (float32).

    masters : one ``MasterDark`` per part (median / scaled); ``options`` go to
    ``predict_active_dark`` (generator, mode, ... for gan: single-part frames only)."""
    if masters is not None and len(masters) != len(frame_layout.parts):
        raise InputError(f"the master dark has {len(masters)} parts, this frame {len(frame_layout.parts)}")
    blocks = [predict_active_dark(method, frame, part.layout, master=masters[i] if masters else None, **options)
              for i, part in enumerate(frame_layout.parts)]
    return frame_layout.assemble(blocks)


def fit_frame_masters(frames: np.ndarray, frame_layout, bias_degree: int | None = 3) -> list[MasterDark]:
    """``fit_master_dark`` per part of the frames (N, rows, columns)."""
    return [fit_master_dark(frames, part.layout, bias_degree) for part in frame_layout.parts]
