"""What the detector brings to photometry: per-amplifier gains, and an effective gain from the sky.

A CCD read through several amplifiers (DECam: A and B, each reading half the columns) has one
gain g (e⁻/ADU), read noise and saturation level per amplifier. ``electrons_image`` puts every
amplifier's pixels on the common electron scale, so that one noise model and one zero point in
e⁻/s hold across the image.

Processed images often keep their amplifiers' gain keywords after the amplifiers were brought
to one level; converting them again would print a step into the image. ``gains_match_sky``
tells the two apart on the sky: in raw ADU a uniform sky reads S_e/g in each amplifier, in an
equalised image the same everywhere.

Without a known gain, ``sky_gain`` estimates an *effective* gain from the sky of a
bias-subtracted image: in a sky-limited pixel the variance is V = S/g + (RN/g)² (ADU²) for a
sky level S (ADU; Howell 2006 eq. 4.4 for one pixel), so

    g = (S + √(S² + 4 V RN²)) / (2 V),   or g = S / V when the read noise is unknown

(an underestimate by the read-noise share of V). sep's background mesh gives S and √V (its
clipped per-mesh rms). The estimate means nothing on images whose sky was subtracted, whose
pixels were resampled (correlated noise lowers V) or that are not in counts (scanned plates);
it is refused when the sky is below 5√V (fewer than ~25 sky electrons per pixel) or gives a
gain outside ``PLAUSIBLE_GAIN``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep

from dancekit.errors import InputError, ParameterError

PLAUSIBLE_GAIN = (0.05, 100.0)  # e-/ADU: CCDs and CMOS sensors in use lie well inside
_MIN_SKY_SNR = 5.0  # S / sqrt(V) below this: sky subtracted or too faint to estimate a gain


@dataclass(frozen=True)
class Amplifier:
    """One amplifier of a CCD image.

    name : its label (the keyword suffix, e.g. ``"A"``). gain : e⁻/ADU.
    read_noise : e⁻ rms (None if unknown). saturation : ADU (inf if unknown).
    rows, columns : the image pixels it reads (0-based slices of the image array), or None
        when the header does not say.
    """

    name: str
    gain: float
    read_noise: float | None = None
    saturation: float = float("inf")
    rows: slice | None = None
    columns: slice | None = None


def electrons_image(image, amplifiers) -> np.ndarray:
    """The image on the electron scale: each amplifier's pixels × its gain (float32 copy).

    Parameters
    ----------
    image : (H, W) ADU. amplifiers : sequence of :class:`Amplifier`, each with rows/columns.

    Raises
    ------
    ParameterError : an amplifier without a region, or regions that overlap.
    InputError : pixels that no amplifier reads (the sections do not cover the image).
    """
    data = np.asarray(image)
    if data.ndim != 2:
        raise InputError(f"the image must be 2-D, got shape {data.shape}")
    scale = np.zeros(data.shape, dtype=np.float32)
    for amp in amplifiers:
        if amp.rows is None or amp.columns is None:
            raise ParameterError(f"amplifier {amp.name} has no pixel region")
        if not (np.isfinite(amp.gain) and amp.gain > 0):
            raise ParameterError(f"amplifier {amp.name}: gain must be > 0 e-/ADU, got {amp.gain!r}")
        region = scale[amp.rows, amp.columns]
        if np.any(region != 0):
            raise ParameterError(f"amplifier {amp.name} overlaps another amplifier's pixels")
        region[...] = amp.gain
    uncovered = int(np.count_nonzero(scale == 0))
    if uncovered:
        raise InputError(f"{uncovered} pixels are read by no amplifier (the amplifier sections do not cover the image)")
    return (data * scale).astype(np.float32)


def gains_match_sky(image, amplifiers) -> bool | None:
    """Whether the sky levels of the amplifiers' regions (ADU) scale as 1/gain, as in an image
    still in each amplifier's ADU (True), or are equal, as in an image whose amplifiers were
    already equalised (False); None when it cannot be told: gains within 2 % of each other, or a
    sky not clearly above zero (sky-subtracted), in any region.
    """
    gains = np.array([a.gain for a in amplifiers], float)
    if gains.size < 2 or np.ptp(np.log(gains)) < 0.02:
        return None
    data = np.asarray(image)
    levels = []
    for amp in amplifiers:
        pixels = data[amp.rows, amp.columns]
        pixels = pixels[np.isfinite(pixels)]
        if pixels.size < 100:
            return None
        level = float(np.median(pixels))
        spread = 1.4826 * float(np.median(np.abs(pixels - level)))
        if not level > _MIN_SKY_SNR * spread:
            return None
        levels.append(level)
    as_adu = np.log(levels)  # equal if already equalised
    as_electrons = as_adu + np.log(gains)  # equal if still in each amplifier's ADU
    return bool(np.var(as_electrons) < np.var(as_adu))


def saturation_in_electrons(amplifiers) -> float:
    """The lowest amplifier saturation level in electrons (inf if none known): conservative,
    a star near the full well of the amplifier with the higher level may be flagged."""
    levels = [a.saturation * a.gain for a in amplifiers if np.isfinite(a.saturation)]
    return float(min(levels)) if levels else float("inf")


def combined_read_noise(amplifiers) -> float | None:
    """RMS read noise over the amplifiers, e⁻ (None if any is unknown)."""
    values = [a.read_noise for a in amplifiers]
    if not values or any(v is None for v in values):
        return None
    return float(np.sqrt(np.mean(np.square(values))))


def sky_gain(image, read_noise: float | None = None) -> tuple[float, float, float]:
    """Effective gain from the sky of a bias-subtracted image (see the module docstring).

    Parameters
    ----------
    image : (H, W) ADU, bias-subtracted. read_noise : e⁻ rms, or None.

    Returns
    -------
    (gain, sky, variance) : e⁻/ADU (NaN when no credible estimate), the median sky level (ADU)
        and the median sky variance (ADU²) it came from.
    """
    data = np.array(image, dtype=np.float32, order="C", copy=True)
    bad = ~np.isfinite(data)
    if bad.all():
        raise InputError("the image has no finite pixel (all NaN/inf)")
    data[bad] = 0.0
    background = sep.Background(data, mask=bad if bad.any() else None, bw=64, bh=64, fw=3, fh=3)
    sky = float(np.median(background.back()))
    variance = float(np.median(background.rms())) ** 2
    if not (variance > 0 and sky > _MIN_SKY_SNR * np.sqrt(variance)):
        return float("nan"), sky, variance
    if read_noise is not None and read_noise > 0:
        gain = (sky + np.sqrt(sky**2 + 4.0 * variance * read_noise**2)) / (2.0 * variance)
    else:
        gain = sky / variance
    if not PLAUSIBLE_GAIN[0] <= gain <= PLAUSIBLE_GAIN[1]:
        return float("nan"), sky, variance
    return float(gain), sky, variance
