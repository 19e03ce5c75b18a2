"""The domain a U-Net was trained on, and how far a video lies from it.

A U-Net learns one instrument's pixels: the PSF's size in pixels (the pixel scale), how much
each frame averages the turbulence (the exposure), and the noise and flux levels of its frames
in electrons (the Anscombe transform assumes electrons). Applied outside that domain it still
returns an image, but not a trustworthy one: a speckle video at another pixel scale came back
holding 0.4 % of the star's flux (issue 15). So a model carries its ``TrainingDomain``
(measured on its training or held-out videos), and a video is compared with it before
inference (``compare``):

* pixel scale missing, or differing by more than ``PIXEL_SCALE_TOLERANCE``, and another
  instrument: refusals (the caller may override them);
* exposure outside the training range by more than ``EXPOSURE_FACTOR``, noise, source flux or
  peak levels beyond ``LEVEL_FACTOR`` times the training range, saturated pixels, a missing
  INSTRUME or EXPTIME: warnings.

After inference, ``flux_ratio_warning`` flags an output whose flux above the sky is not that of
the average stack (``InferenceResult.flux_ratio``).

Levels are measured per video by ``measure_levels`` on frames in electrons: the sky level and
the noise rms by iterated median / MAD clipping (``transforms.robust_background``), the mean
source flux per pixel above that level, the median over frames of the brightest pixel above it.
The sky level itself is recorded but not compared: a bias offset or a brighter sky is
subtracted before the network sees the frames, and what it adds to the noise is in ``noise``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from dancekit.errors import InputError

#: arcsec in radians (the pixel scale is stored in arcsec/pixel in checkpoints, radians inside)
ARCSEC = math.pi / (180 * 3600)
#: refuse a video whose pixel scale differs from the training one by more than this fraction
PIXEL_SCALE_TOLERANCE = 0.10
#: warn when the exposure is outside [min / f, max * f] of the training videos
EXPOSURE_FACTOR = 1.5
#: warn when a level is outside [min / f, max * f] of the training videos
LEVEL_FACTOR = 3.0
#: warn when output flux / average-stack flux (above the sky) is outside this range
FLUX_RATIO_RANGE = (0.8, 1.25)
#: levels compared with the training range (name, what it is, unit)
COMPARED_LEVELS = (("noise", "noise rms", "e-"), ("flux", "mean source flux", "e-/px"),
                   ("peak", "brightest pixel", "e-"))
#: percentiles of the per-video levels stored in a domain
PERCENTILES = (0, 5, 50, 95, 100)
#: pixels per video used for the background statistics (every k-th; same answer to < 0.01 sigma)
LEVEL_SAMPLES = 200_000
#: videos whose levels are measured for a domain (evenly spaced over the set)
MAX_DOMAIN_VIDEOS = 200


@dataclass(frozen=True)
class VideoLevels:
    """Robust statistics of a video's frames, in electrons per pixel per frame.

    sky : background level; noise : rms about it; flux : mean source flux per pixel above it;
    peak : median over frames of the brightest pixel above it; maximum : the largest pixel value;
    saturated : pixels at or above the video's saturation level (0 when it is unknown).
    """

    sky: float
    noise: float
    flux: float
    peak: float
    maximum: float
    saturated: int = 0


@dataclass(frozen=True)
class VideoFacts:
    """What a video's header says: INSTRUME, pixel scale [rad/pixel], EXPTIME [s] (None if absent)."""

    instrument: str | None
    pixel_scale: float | None
    exposure: float | None


def measure_levels(frames: np.ndarray, saturation: float | None = None) -> VideoLevels | None:
    """``VideoLevels`` of (T, H, W) frames in electrons (NaN ignored); None if no pixel is finite.

    ``saturation`` [e-]: the video's saturation level (header SATURATE, or the largest value
    its integer pixels can hold), to count saturated pixels.
    """
    import torch

    from dancekit.unet.transforms import robust_background

    frames = np.asarray(frames, dtype=np.float32)
    finite = np.isfinite(frames)
    if not finite.any():
        return None
    level, sigma = robust_background(torch.from_numpy(np.ascontiguousarray(frames)), max_samples=LEVEL_SAMPLES)
    level, sigma = float(level), float(sigma)
    usable = finite.reshape(len(frames), -1).any(axis=1)
    peaks = np.nanmax(frames[usable].reshape(int(usable.sum()), -1), axis=1) - level
    saturated = int(np.count_nonzero(frames[finite] >= saturation)) if saturation is not None else 0
    return VideoLevels(sky=level, noise=sigma, flux=float(np.nanmean(frames)) - level, peak=float(np.median(peaks)),
                       maximum=float(np.nanmax(frames)), saturated=saturated)


@dataclass(frozen=True)
class TrainingDomain:
    """What a model was trained on. Every part may be unknown (None / empty): it is then not checked.

    instruments : INSTRUME values of the videos (or the config's instrument).
    pixel_scale : (min, max) [rad/pixel].     exposure : (min, max) [s].
    levels : name -> percentiles ``PERCENTILES`` over the videos of that ``VideoLevels`` field [e-].
    maximum : the largest pixel value [e-] in the measured frames (none of them saturated).
    videos : how many videos were measured; measured_by : how (command, videos).
    """

    instruments: tuple[str, ...] = ()
    pixel_scale: tuple[float, float] | None = None
    exposure: tuple[float, float] | None = None
    levels: dict[str, tuple[float, ...]] = field(default_factory=dict)
    maximum: float | None = None
    videos: int = 0
    measured_by: str = ""

    def to_dict(self) -> dict:
        """Plain numbers and strings (``torch.load(weights_only=True)`` reads them); arcsec at this edge."""
        return {"instruments": list(self.instruments),
                "pixel_scale_arcsec": None if self.pixel_scale is None else [v / ARCSEC for v in self.pixel_scale],
                "exposure_s": None if self.exposure is None else list(self.exposure),
                "percentiles": list(PERCENTILES),
                "levels_electrons": {k: list(v) for k, v in self.levels.items()},
                "maximum_electrons": self.maximum, "videos": self.videos, "measured_by": self.measured_by}

    @classmethod
    def from_dict(cls, stored: object) -> "TrainingDomain":
        if not isinstance(stored, dict):
            raise InputError(f"the checkpoint's domain is a {type(stored).__name__}, not a table")
        try:
            scale, exposure = stored.get("pixel_scale_arcsec"), stored.get("exposure_s")
            if stored.get("percentiles", list(PERCENTILES)) != list(PERCENTILES):
                raise ValueError(f"percentiles {stored.get('percentiles')} (expected {list(PERCENTILES)})")
            levels = {str(k): tuple(float(x) for x in v) for k, v in (stored.get("levels_electrons") or {}).items()}
            if any(len(v) != len(PERCENTILES) for v in levels.values()):
                raise ValueError("a level has the wrong number of percentiles")
            return cls(instruments=tuple(str(s) for s in stored.get("instruments") or ()),
                       pixel_scale=None if scale is None else _range(scale, ARCSEC),
                       exposure=None if exposure is None else _range(exposure, 1.0),
                       levels=levels,
                       maximum=None if stored.get("maximum_electrons") is None else float(stored["maximum_electrons"]),
                       videos=int(stored.get("videos", 0)), measured_by=str(stored.get("measured_by", "")))
        except (TypeError, ValueError) as exc:
            raise InputError(f"the checkpoint's domain is malformed ({exc})") from None

    @property
    def known(self) -> bool:
        return bool(self.pixel_scale or self.exposure or self.levels)


def _range(values: object, unit: float) -> tuple[float, float]:
    low, high = (float(v) * unit for v in values)  # type: ignore[union-attr]
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"range {values} is not 0 < min <= max")
    return low, high


def domain_from_videos(videos: Iterable[tuple[VideoFacts, VideoLevels | None]], measured_by: str = "",
                       instrument: str | None = None) -> TrainingDomain:
    """The domain spanned by measured videos: ranges of their header facts, percentiles of their
    levels. ``instrument`` (e.g. the config's) is used when no video names one."""
    facts, levels = [], []
    for fact, level in videos:
        facts.append(fact)
        if level is not None:
            levels.append(level)
    if not facts:
        raise InputError("no videos to measure a training domain on")
    instruments = sorted({f.instrument for f in facts if f.instrument}) or ([instrument] if instrument else [])
    scales = [f.pixel_scale for f in facts if f.pixel_scale]
    exposures = [f.exposure for f in facts if f.exposure]
    table = {name: tuple(float(v) for v in np.percentile([getattr(lv, name) for lv in levels], PERCENTILES))
             for name in ("sky", "noise", "flux", "peak")} if levels else {}
    return TrainingDomain(instruments=tuple(instruments),
                          pixel_scale=(min(scales), max(scales)) if scales else None,
                          exposure=(min(exposures), max(exposures)) if exposures else None,
                          levels=table, maximum=max(lv.maximum for lv in levels) if levels else None,
                          videos=len(facts), measured_by=measured_by)


def domain_of_sources(sources: Sequence, facts: Sequence[VideoFacts], n_frames: int, measured_by: str = "",
                      instrument: str | None = None, max_videos: int = MAX_DOMAIN_VIDEOS) -> TrainingDomain:
    """The domain of training (or held-out) videos: ``sources`` are ``unet.data.VideoSource``
    (frames in electrons), ``facts`` their headers' ``VideoFacts`` in the same order. The levels
    are measured on the first ``n_frames`` frames of at most ``max_videos`` evenly spaced videos;
    the header facts of all of them are used."""
    if len(sources) != len(facts):
        raise ValueError(f"{len(sources)} sources but {len(facts)} header facts")
    picked = set(np.linspace(0, len(sources) - 1, min(len(sources), max_videos)).round().astype(int).tolist())
    measured = ((fact, measure_levels(source.read_frames(0, min(n_frames, source.shape[0]))) if i in picked else None)
                for i, (source, fact) in enumerate(zip(sources, facts)))
    return domain_from_videos(measured, measured_by, instrument)


@dataclass(frozen=True)
class Mismatch:
    """One way a video lies outside a model's domain: ``what`` (a short key for the header),
    ``message`` (one sentence for the user) and whether it is a refusal or a warning."""

    what: str
    message: str
    refuse: bool = False


def compare(domain: TrainingDomain, facts: VideoFacts, levels: VideoLevels | None) -> list[Mismatch]:
    """Every way the video (its header ``facts`` and measured ``levels``) lies outside ``domain``."""
    found = _compare_instrument(domain, facts) + _compare_pixel_scale(domain, facts) + _compare_exposure(domain, facts)
    if levels is not None:
        found += _compare_levels(domain, levels)
    return found


def _compare_instrument(domain: TrainingDomain, facts: VideoFacts) -> list[Mismatch]:
    if not domain.instruments:
        return []
    trained = " or ".join(f"'{s}'" for s in domain.instruments)
    if not facts.instrument:
        return [Mismatch("instrument", f"the video has no INSTRUME; the model was trained for {trained}")]
    if facts.instrument.strip().casefold() not in {s.strip().casefold() for s in domain.instruments}:
        return [Mismatch("instrument", f"trained for instrument {trained} but the video's INSTRUME is "
                                       f"'{facts.instrument}'", refuse=True)]
    return []


def _compare_pixel_scale(domain: TrainingDomain, facts: VideoFacts) -> list[Mismatch]:
    if domain.pixel_scale is None:
        return []
    low, high = domain.pixel_scale
    trained = _span(low / ARCSEC, high / ARCSEC, '"/px')
    if facts.pixel_scale is None:
        return [Mismatch("pixel_scale", f"the video's header gives no pixel scale (PIXSCALE [arcsec/pixel] or a "
                                        f"celestial WCS) and the model was trained at {trained}", refuse=True)]
    scale = facts.pixel_scale
    if scale < low / (1 + PIXEL_SCALE_TOLERANCE) or scale > high * (1 + PIXEL_SCALE_TOLERANCE):
        return [Mismatch("pixel_scale", f'the video\'s pixel scale {scale / ARCSEC:.4g}"/px differs by more than '
                                        f"{PIXEL_SCALE_TOLERANCE:.0%} from the {trained} the model was trained at",
                         refuse=True)]
    return []


def _compare_exposure(domain: TrainingDomain, facts: VideoFacts) -> list[Mismatch]:
    if domain.exposure is None:
        return []
    low, high = domain.exposure
    trained = _span(low, high, " s")
    if facts.exposure is None:
        return [Mismatch("exposure", f"the video has no EXPTIME; the model was trained on {trained} frames")]
    if not low / EXPOSURE_FACTOR <= facts.exposure <= high * EXPOSURE_FACTOR:
        return [Mismatch("exposure", f"frames of {facts.exposure:.4g} s but the model was trained on {trained} frames")]
    return []


def _span(low: float, high: float, unit: str) -> str:
    """'0.235"/px' for one value, '0.2-0.3"/px' for a range."""
    return f"{low:.4g}{unit}" if high <= low * 1.001 else f"{low:.4g}-{high:.4g}{unit}"


def _compare_levels(domain: TrainingDomain, levels: VideoLevels) -> list[Mismatch]:
    found = []
    for name, what, unit in COMPARED_LEVELS:
        if name not in domain.levels:
            continue
        low, high = domain.levels[name][0], domain.levels[name][-1]
        value = getattr(levels, name)
        if value > max(high, 0) * LEVEL_FACTOR or (low > 0 and value < low / LEVEL_FACTOR):
            found.append(Mismatch(name, f"{what} {value:.3g} {unit} per frame, far outside the training range "
                                        f"{low:.3g}-{high:.3g} {unit}"))
    if levels.saturated and domain.levels:
        found.append(Mismatch("saturation", f"{levels.saturated} saturated pixel(s) in the frames measured; "
                                            "the model was trained without saturation"))
    return found


def flux_ratio_warning(ratio: float | None) -> str | None:
    """A sentence when output / average-stack flux is outside ``FLUX_RATIO_RANGE`` or undefined."""
    low, high = FLUX_RATIO_RANGE
    if ratio is None or not math.isfinite(ratio):
        return "FLUXRAT is undefined: the average stack holds no flux above the sky"
    if low <= ratio <= high:
        return None
    return (f"FLUXRAT = {ratio:.3g}: the output holds {ratio:.1%} of the average stack's flux above the sky "
            f"(expected {low}-{high}); the model is outside its domain or failing")
