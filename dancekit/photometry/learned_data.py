"""Inputs of the learned zero-point model: image patch, matched-star table, telemetry.

``exposure_inputs`` turns one calibrated exposure into the three arrays AZP-RC reads
(seed 003 §3.1), ``stack_inputs`` pads and stacks many into tensors, and
``classical_calibration`` runs the classical robust fit on a generated exposure with the
settings the ``zeropoint`` command uses by default (the base the learned correction sits on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.photometry.calibrate import ExposureCalibration, calibrate_exposure
from dancekit.photometry.learned import STAR_FEATURES

PATCH = 256  # pixels: the CFE input side (seed 003 §3.2)
MAX_STARS = 64  # brightest matched stars kept in the table
REFERENCE_MAG = 17.0  # mag subtracted from the reference magnitudes (centring)
RESIDUAL_CLIP = 0.5  # mag: star residuals are clipped to ±this

# The classical fit the correction is trained on top of: the zeropoint command's defaults
# (aperture 1.5 x FWHM, curve-of-growth correction, k = 0 so the ZP absorbs the extinction),
# with the colour term fixed at the instrument's value (LSST's ColortermLibrary practice).
CLASSICAL_SETTINGS = {"aperture_radius": None, "aperture_correction": True, "extinction": 0.0, "min_stars": 5}


@dataclass(frozen=True)
class ModelInputs:
    """Stacked inputs for a batch of exposures.

    image : (B, 1, S, S) float32. stars : (B, N, 7) float32, zero-padded. lengths : (B,) int64.
    telemetry : (B, 4) float32, raw units (normalised by the model's stored mean/std).
    """

    image: torch.Tensor
    stars: torch.Tensor
    lengths: torch.Tensor
    telemetry: torch.Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def subset(self, index) -> "ModelInputs":
        index = torch.as_tensor(index, dtype=torch.long)
        return ModelInputs(self.image[index], self.stars[index], self.lengths[index], self.telemetry[index])

    def to(self, device) -> "ModelInputs":
        return ModelInputs(self.image.to(device), self.stars.to(device), self.lengths, self.telemetry.to(device))


def image_patch(image, size: int = PATCH) -> np.ndarray:
    """The central ``size``×``size`` patch (zero-padded if smaller), sky-subtracted, scaled by the
    robust noise (1.4826·MAD) and compressed with asinh(z/5): (1, size, size) float32."""
    data = np.asarray(image, dtype=float)
    if data.ndim != 2:
        raise ParameterError(f"image must be 2-D, got shape {data.shape}")
    height, width = data.shape
    y0, x0 = max((height - size) // 2, 0), max((width - size) // 2, 0)
    crop = data[y0:y0 + size, x0:x0 + size]
    finite = np.isfinite(crop)
    if not finite.any():
        raise InputError("the image patch holds no finite pixel")
    sky = np.median(crop[finite])
    noise = 1.4826 * np.median(np.abs(crop[finite] - sky)) or 1.0
    z = np.where(finite, np.arcsinh((crop - sky) / noise / 5.0), 0.0)
    out = np.zeros((1, size, size), np.float32)
    out[0, :z.shape[0], :z.shape[1]] = z
    return out


def star_table(calibration: ExposureCalibration, airmass: float, shape, max_stars: int = MAX_STARS) -> np.ndarray:
    """Matched-star table (M, 7), brightest first, stars kept by the clipping only.

    Columns (seed 003's five channels, the position split in two and the instrumental magnitude
    expressed against the classical fit): reference magnitude − 17; colour (0 if none);
    x and y offset from the image centre in half-widths; airmass − 1; residual
    m_ref − m_inst − model of the classical fit (mag, clipped ±0.5); error of m_inst (mag).
    """
    stars, result = calibration.stars, calibration.zeropoint
    height, width = shape
    used = np.asarray(result.used, bool)
    src = stars.sources
    x = src.x[stars.source_index][used]
    y = src.y[stars.source_index][used]
    colour = np.nan_to_num(stars.colour[used], nan=0.0)
    table = np.column_stack([
        stars.m_ref[used] - REFERENCE_MAG, colour,
        (x - (width - 1) / 2) / (width / 2), (y - (height - 1) / 2) / (height / 2),
        np.full(x.size, airmass - 1.0),
        np.clip(np.asarray(result.residuals)[used], -RESIDUAL_CLIP, RESIDUAL_CLIP),
        np.nan_to_num(stars.m_inst_err[used], nan=0.1),
    ])
    order = np.argsort(stars.m_ref[used], kind="stable")[:max_stars]
    return table[order].astype(np.float32)


def exposure_inputs(image, calibration: ExposureCalibration, telemetry) -> tuple:
    """(patch (1, S, S), star table (M, 7), telemetry (4,)) for one calibrated exposure."""
    telemetry = np.asarray(telemetry, dtype=np.float32)
    if telemetry.shape != (4,) or not np.all(np.isfinite(telemetry)):
        raise ParameterError(f"telemetry must be 4 finite numbers (airmass, temperature C, humidity %, wind m/s), got {telemetry}")
    return image_patch(image), star_table(calibration, float(telemetry[0]), np.shape(image)), telemetry


def stack_inputs(items) -> ModelInputs:
    """Stack ``exposure_inputs`` tuples into one zero-padded batch."""
    items = list(items)
    if not items:
        raise ParameterError("no exposures to stack")
    n_max = max(max(t.shape[0] for _, t, _ in items), 1)
    stars = np.zeros((len(items), n_max, STAR_FEATURES), np.float32)
    for i, (_, table, _) in enumerate(items):
        stars[i, :table.shape[0]] = table
    return ModelInputs(
        image=torch.from_numpy(np.stack([p for p, _, _ in items])),
        stars=torch.from_numpy(stars),
        lengths=torch.tensor([max(t.shape[0], 1) for _, t, _ in items], dtype=torch.long),
        telemetry=torch.from_numpy(np.stack([m for _, _, m in items]).astype(np.float32)),
    )


def classical_calibration(exposure, **overrides) -> ExposureCalibration | None:
    """The classical robust zero point of a generated :class:`~dancekit.photometry.exposures.Exposure`
    (``CLASSICAL_SETTINGS`` and the survey's colour term unless overridden); None when too few
    stars survive."""
    settings = {**CLASSICAL_SETTINGS, "colour_term": exposure.colour_term, **overrides}
    try:
        return calibrate_exposure(
            exposure.image, exposure.wcs, exposure.catalogue, gain=exposure.gain, read_noise=exposure.read_noise,
            exptime=exposure.exptime, airmass=exposure.airmass, saturation=exposure.saturation, **settings)
    except InputError:
        return None
