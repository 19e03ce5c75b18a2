"""Pixel transforms around the U-Net: robust background, Anscombe transform and its inverse.

DanceCam (Bialek et al. 2024, §2.2.2) removes the background by iterated median / MAD
clipping, then applies the Anscombe transform to the input frames and the target, and maps the
network output back with the closed-form approximation of the exact unbiased inverse of
Mäkitalo & Foi (2011, IEEE Trans. Image Process. 20, 99). Every function here accepts a
``torch.Tensor`` or a ``numpy.ndarray`` and returns the same kind; inputs are never modified.
Pixel values are in counts (photo-electrons or ADU).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from dancekit.errors import ParameterError

#: Anscombe offset 3/8 (Anscombe 1948): 2 sqrt(x + 3/8) has variance ~1 for Poisson x.
ANSCOMBE_OFFSET = 3.0 / 8.0
#: Transformed value of zero counts, 2 sqrt(3/8) ~ 1.2247; the inverse maps it to exactly 0.
ANSCOMBE_FLOOR = 2.0 * math.sqrt(ANSCOMBE_OFFSET)
#: sigma / MAD for a Gaussian, 1 / Phi^-1(3/4).
MAD_TO_SIGMA = 1.482602218505602


def anscombe(x: Any, *, in_place: bool = False) -> Any:
    """Anscombe transform ``2 sqrt(x + 3/8)`` (Anscombe 1948) of counts ``x`` [counts].

    For Poisson counts the result has variance close to 1 whatever the mean. Values below
    -3/8 (impossible for counts; DanceCam clips at 0 before transforming) map to 0.
    ``in_place=True`` (torch tensors only) writes the result into ``x``: the same numbers, no new buffer.
    """
    if _is_torch(x):
        if in_place:
            return x.add_(ANSCOMBE_OFFSET).clamp_(min=0.0).sqrt_().mul_(2.0)
        return 2.0 * torch.sqrt(torch.clamp(x + ANSCOMBE_OFFSET, min=0.0))
    x = _as_float_array(x)
    return 2.0 * np.sqrt(np.maximum(x + ANSCOMBE_OFFSET, 0.0))


def inverse_anscombe(y: Any) -> Any:
    """Closed-form approximation of the exact unbiased inverse Anscombe transform [counts].

    Mäkitalo & Foi (2011), eq. 9:
        I(y) = y^2/4 + (1/4) sqrt(3/2) y^-1 - (11/8) y^-2 + (5/8) sqrt(3/2) y^-3 - 1/8.
    It is the inverse of the *expectation*: for Poisson counts z of mean lambda,
    I(E[2 sqrt(z + 3/8)]) = lambda (to 0.4 % for lambda >= 0.1), so it is applied to a
    denoised estimate of the transformed image, not to single noisy samples.

    Clamp: I(2 sqrt(3/8)) = 0 exactly, and 2 sqrt(3/8) ~ 1.2247 is the smallest possible
    expectation (that of zero counts). Below it the formula first goes negative and then
    diverges as y^-3, so every ``y <= 2 sqrt(3/8)`` returns 0 (DanceCam's code has no clamp).
    """
    if _is_torch(y):
        yc = torch.clamp(y, min=ANSCOMBE_FLOOR)
        return torch.where(y <= ANSCOMBE_FLOOR, torch.zeros_like(yc), _inverse_formula(yc))
    y = _as_float_array(y)
    yc = np.maximum(y, ANSCOMBE_FLOOR)
    return np.where(y <= ANSCOMBE_FLOOR, 0.0, _inverse_formula(yc))


def algebraic_inverse_anscombe(y: Any) -> Any:
    """The exact inverse of the transform, ``y^2/4 - 3/8``, with ``y`` clamped at the floor
    (0 counts) [counts]: right for noise-free quantities, biased low for expectations."""
    yc = torch.clamp(y, min=ANSCOMBE_FLOOR) if _is_torch(y) else np.maximum(_as_float_array(y), ANSCOMBE_FLOOR)
    return yc * yc / 4 - ANSCOMBE_OFFSET


def _inverse_formula(y: Any) -> Any:
    s = math.sqrt(1.5)
    return 0.25 * y**2 + 0.25 * s / y - 1.375 / y**2 + 0.625 * s / y**3 - 0.125


def robust_background(x: Any, *, batch_dims: int = 0, kappa: float = 3.0, max_iter: int = 10,
                      max_samples: int | None = None) -> tuple[Any, Any]:
    """Background level and noise sigma by iterated kappa-sigma clipping with median / MAD.

    Each iteration takes the median m and sigma = 1.4826 MAD (median absolute deviation from
    m) of the values kept so far, and rejects values with |x - m| > kappa sigma (stars,
    cosmic rays); it stops when nothing more is rejected or after ``max_iter`` iterations.
    This is the estimator of DanceCam §2.2.2 with the clip expressed in Gaussian sigmas
    (DanceCam's code clips at 3 raw MADs ~ 2 sigma: ``dancecam_background``).

    sigma is corrected for the truncation of a Gaussian at +-kappa sigma (0.3 % for kappa = 3),
    so both outputs are unbiased for Gaussian noise. NaNs are ignored.

    Parameters
    ----------
    x : pixel values [counts], any shape.
    batch_dims : how many leading axes index independent samples (e.g. 1 for tiles (N, T, H, W):
        one level per tile, pooling its frames as DanceCam does).
    kappa : clipping threshold in units of sigma.
    max_iter : largest number of clipping iterations.
    max_samples : if set, use every k-th value of each sample, with k the smallest step leaving
        at most this many (deterministic; a (64, 256, 256) tile takes ~1 s on one CPU thread in
        full, and 10^5 values already give the level to ~0.004 sigma).

    Returns
    -------
    (level, sigma), each of shape ``x.shape[:batch_dims]`` [counts], same kind as ``x``.
    """
    if not kappa > 1.0:
        raise ParameterError(f"kappa must be > 1 (in sigmas), got {kappa!r}")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ParameterError(f"max_iter must be a positive integer, got {max_iter!r}")
    if max_samples is not None and not (isinstance(max_samples, int) and max_samples >= 100):
        raise ParameterError(f"max_samples must be None or an integer >= 100, got {max_samples!r}")
    values, to_output = _rows(x, batch_dims, "robust_background", max_samples)
    for _ in range(max_iter):
        level = torch.nanmedian(values, dim=1, keepdim=True).values
        sigma = MAD_TO_SIGMA * torch.nanmedian(torch.abs(values - level), dim=1, keepdim=True).values
        reject = torch.abs(values - level) > kappa * sigma
        if not bool(reject.any()):
            break
        values = torch.where(reject, torch.nan, values)
    else:  # statistics of the final kept set
        level = torch.nanmedian(values, dim=1, keepdim=True).values
        sigma = MAD_TO_SIGMA * torch.nanmedian(torch.abs(values - level), dim=1, keepdim=True).values
    sigma = sigma * _truncation_correction(float(kappa))
    return to_output(level[:, 0]), to_output(sigma[:, 0])


def dancecam_background(x: Any, *, batch_dims: int = 0) -> tuple[Any, Any]:
    """DanceCam's published background estimator (dancelib ``median_mad``), for parity with
    its weights: 4 iterations rejecting |x - m0| > 3 MAD around the *first* median m0 (MAD raw,
    not scaled to sigma, recomputed around m0 each time), then the mode estimate
    3.5 median - 2.5 mean of the kept values (SExtractor uses 2.5 median - 1.5 mean).

    Returns (level, raw MAD), each of shape ``x.shape[:batch_dims]`` [counts].
    """
    values, to_output = _rows(x, batch_dims, "dancecam_background")
    centre = torch.nanmedian(values, dim=1, keepdim=True).values
    for _ in range(4):
        mad = torch.nanmedian(torch.abs(values - centre), dim=1, keepdim=True).values + 1e-20
        values = torch.where(torch.abs(values - centre) > 3.0 * mad, torch.nan, values)
    level = 3.5 * torch.nanmedian(values, dim=1).values - 2.5 * torch.nanmean(values, dim=1)
    return to_output(level), to_output(mad[:, 0])


@functools.lru_cache(maxsize=16)
def _truncation_correction(kappa: float) -> float:
    """Factor c with sigma = c * 1.4826 MAD for a Gaussian whose tails beyond kappa * (that
    sigma) were removed: solves 2 Phi(r) - 1 = (2 Phi(1.4826 kappa r) - 1) / 2 for r = MAD / sigma
    by fixed-point iteration (Phi the normal CDF); c = 0.6745 / r."""
    r = 1.0 / MAD_TO_SIGMA
    for _ in range(50):
        half_kept = 0.5 * math.erf(MAD_TO_SIGMA * kappa * r / math.sqrt(2.0))
        r = math.sqrt(2.0) * _erfinv(half_kept)
    return 1.0 / (MAD_TO_SIGMA * r)


def _erfinv(p: float) -> float:
    return float(torch.erfinv(torch.tensor(p, dtype=torch.float64)))


def _rows(x: Any, batch_dims: int, name: str, max_samples: int | None = None):
    """(B, M) float view of x as a torch tensor (every k-th value of each sample, with k the
    smallest step leaving at most ``max_samples``), and a function giving results x's kind."""
    is_torch = _is_torch(x)
    t = x if is_torch else torch.from_numpy(_as_float_array(x))
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not (isinstance(batch_dims, int) and 0 <= batch_dims < max(t.ndim, 1)):
        raise ParameterError(f"{name}: batch_dims must be an integer in [0, {max(t.ndim - 1, 0)}], got {batch_dims!r}")
    if t.numel() == 0:
        raise ParameterError(f"{name}: the data are empty (shape {tuple(t.shape)})")
    batch_shape = tuple(t.shape[:batch_dims])
    values = t.reshape(int(np.prod(batch_shape, dtype=np.int64)), -1)
    if max_samples is not None:
        values = values[:, ::-(-values.shape[1] // max_samples)]
    if bool(torch.isnan(values).all(dim=1).any()):
        raise ParameterError(f"{name}: a sample holds only NaN values; nothing to estimate a background from")

    def to_output(result: torch.Tensor) -> Any:
        result = result.reshape(batch_shape)
        return result if is_torch else result.numpy()

    return values, to_output


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _as_float_array(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fc":
        arr = arr.astype(np.float64)
    if arr.dtype.byteorder == ">":  # FITS data are big-endian
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory
        arr = arr.copy()
    return arr
