"""How much of the average stack's flux a model's output holds (header FLUXRAT).

FLUXRAT = sum over the field of the output above the sky / sum of the average stack (of the
frames and windows the network saw) above the sky. The sky is the subtle part. The per-tile
level cut from the network's input (median with 3-sigma MAD clipping) also takes the light of
unresolved faint stars for sky in crowded fields, and a well-trained network puts that light
back: on the 16 simulated C2PU fields (19-476 stars) the bundled model was calibrated on, the
level was 0.46-2.29 e-/px for a true sky of 0.46, (stack - level) held 0.44-0.98 of the true
flux, and a ratio against it read 1.21-1.94 for outputs holding 0.84-1.42 of the truth.

So the sky is measured as the offset of the stack from the output seen through the seeing:
a least-squares fit of ``stack = sum_k a_k G(sigma_k) * output + sky`` with Gaussian kernels of
widths 0.7, 1.4, 2.8 ... px (a_k >= 0: a positive PSF of any width up to ``MAX_SIGMA`` px; the
sky free, but not below the darkest 0.1 % of the stack). Faint stars that the output resolves
are then explained by the output, not by the sky. The sky used is the smaller of that offset and
the per-tile level, pixel by pixel: an output that does not explain the stack at all (a failing
model) leaves the offset at the mean of the stack, and the ratio falls back to the per-tile
levels. On those 16 fields (stride 4) the fitted sky was 0.20-0.64 e-/px and the ratio
0.86-1.13 on 15 of them, median 1.04 (0.87-1.10 with the true sky on the 14 with >= 76 stars);
on the two sparsest, where the model adds ~0.04 e-/px of its own (1.45 and 1.40 with the true
sky), it read 1.03 (19 stars, sky fitted 0.42 for 0.46) and 1.35 (27 stars).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: widest Gaussian of the seeing model [pixels] (1" seeing at 0.03"/px is sigma ~ 14 px)
MAX_SIGMA = 48.0
#: the fit uses the central crop of at most this side [pixels] (the sky is one number)
FIT_SIDE = 1024
#: pixels used in the least-squares fit (every k-th of the crop)
FIT_SAMPLES = 250_000
#: the sky is not below this percentile of the stack (the darkest pixels are sky minus noise)
DARKEST_PERCENTILE = 0.1


@dataclass(frozen=True)
class FluxConservation:
    """ratio: output / stack flux above the sky (None when the stack has none); sky: the fitted
    offset of the stack [input units], before the per-tile levels cap it."""

    ratio: float | None
    sky: float


def flux_conservation(sky_free: np.ndarray, stack: np.ndarray, level: np.ndarray) -> FluxConservation:
    """Compare an output with its average stack (all (H, W), the same units).

    sky_free : the output without any sky (the network's restored sources).
    stack : the average stack of the frames the output was made from.
    level : the per-pixel sky level cut from the network's input (blended per-tile levels).
    """
    sky = fitted_sky(sky_free, stack)
    reference = float(np.sum(stack, dtype=np.float64) - np.sum(np.minimum(level, sky), dtype=np.float64))
    if not np.isfinite(reference) or reference <= 0:
        return FluxConservation(None, sky)
    return FluxConservation(float(np.sum(sky_free, dtype=np.float64)) / reference, sky)


def fitted_sky(sky_free: np.ndarray, stack: np.ndarray) -> float:
    """Offset of ``stack`` from ``sky_free`` blurred by a non-negative sum of Gaussians (module docstring)."""
    from scipy.ndimage import gaussian_filter
    from scipy.optimize import lsq_linear

    crop = tuple(slice(max(0, (n - FIT_SIDE) // 2), max(0, (n - FIT_SIDE) // 2) + FIT_SIDE) for n in stack.shape)
    output = np.nan_to_num(np.asarray(sky_free, dtype=np.float32)[crop])
    target = np.asarray(stack, dtype=np.float64)[crop]
    good = np.isfinite(target).ravel()
    step = max(1, int(good.sum()) // FIT_SAMPLES)
    rows = np.flatnonzero(good)[::step]
    sigmas = [0.7 * 2**k for k in range(16) if 0.7 * 2**k <= min(MAX_SIGMA, min(output.shape) / 8)] or [0.7]
    columns = [gaussian_filter(output, sigma, mode="constant").ravel()[rows] for sigma in sigmas]
    design = np.stack(columns + [np.ones(len(rows), dtype=np.float32)], axis=1).astype(np.float64)
    q, r = np.linalg.qr(design)  # the same least squares on (K+1) rows: ||A x - b|| = ||R x - Q^T b|| + const
    lower = [0.0] * len(sigmas) + [-np.inf]
    fit = lsq_linear(r, q.T @ target.ravel()[rows], bounds=(lower, [np.inf] * (len(sigmas) + 1)), method="bvls")
    return max(float(fit.x[-1]), float(np.percentile(target.ravel()[good], DARKEST_PERCENTILE)))
