"""Flux calibration of the network output: E[true electrons | predicted Anscombe value].

The U-Net is trained with a mean-squared error on Anscombe-transformed targets, so its output is
(at best) the conditional mean of A(x) = 2 sqrt(x + 3/8), not of x. Inverting that mean
algebraically, (y/2)^2 - 3/8, underestimates the flux wherever the prediction is uncertain
(Jensen's inequality: E[x] = E[(A/2)^2] - 3/8 >= (E[A]/2)^2 - 3/8). For the small bundled model
the loss is ~12 % of the total flux and ~30 % for faint stars, which shows as magnitude residuals
growing towards faint stars. The exact inverse of the *model's* estimate is E[x | y], which we
measure on held-out simulated videos: the pixels are binned by predicted value y, each bin's mean
y and mean truth (its mean excess over the algebraic inverse, added to the inverse of its mean y)
are a knot, the knots are made non-decreasing (pool-adjacent-violators), and the curve
is linear between knots. Above the last knot the algebraic inverse continues it, shifted to meet
the knot. This is the empirical analogue of the exact unbiased inverse of Mäkitalo & Foi (2011),
which is E[x | y] for pure Poisson noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from dancekit.errors import InputError, ParameterError
from dancekit.unet.transforms import algebraic_inverse_anscombe

#: bin edges as quantiles of the predicted values: even in the bulk (sky), finer in the bright tail
_QUANTILES = np.concatenate([np.linspace(0.0, 0.9, 28), 1 - 0.1 * 0.6 ** np.arange(1, 14), [1.0]])


@dataclass(frozen=True)
class FluxCalibration:
    """Knots (y [Anscombe units], x [electrons per frame]) of E[x | y], y increasing, x non-decreasing."""

    y: tuple[float, ...]
    x: tuple[float, ...]
    pixels: int = 0  # calibration pixels the knots were measured on

    def __post_init__(self):
        y, x = np.asarray(self.y, float), np.asarray(self.x, float)
        if len(y) < 2 or len(y) != len(x) or not (np.isfinite(y).all() and np.isfinite(x).all()):
            raise ParameterError(f"a flux calibration needs >= 2 finite (y, x) knots of equal number, got {len(y)} and {len(x)}")
        if np.any(np.diff(y) <= 0) or np.any(np.diff(x) < 0):
            raise ParameterError("flux calibration knots must have y increasing and x non-decreasing")

    def to_electrons(self, y: torch.Tensor) -> torch.Tensor:
        """Predicted Anscombe values (any shape) -> electrons per frame."""
        ky = torch.as_tensor(self.y, dtype=y.dtype, device=y.device)
        kx = torch.as_tensor(self.x, dtype=y.dtype, device=y.device)
        yc = torch.clamp(y, ky[0], ky[-1])
        i = torch.clamp(torch.searchsorted(ky, yc.contiguous()), 1, len(ky) - 1)
        y0, y1, x0, x1 = ky[i - 1], ky[i], kx[i - 1], kx[i]
        inside = x0 + (x1 - x0) * (yc - y0) / (y1 - y0)
        beyond = algebraic_inverse_anscombe(y) - algebraic_inverse_anscombe(ky[-1]) + kx[-1]
        return torch.where(y > ky[-1], beyond, inside)

    def to_dict(self) -> dict:
        return {"y": [float(v) for v in self.y], "x": [float(v) for v in self.x], "pixels": int(self.pixels)}

    @classmethod
    def from_dict(cls, stored: object) -> "FluxCalibration":
        if not isinstance(stored, dict) or not {"y", "x"} <= set(stored):
            raise InputError("the checkpoint's flux_calibration is not a {'y': [...], 'x': [...]} table")
        return cls(tuple(float(v) for v in stored["y"]), tuple(float(v) for v in stored["x"]),
                   int(stored.get("pixels", 0)))


def fit_flux_calibration(predicted: np.ndarray, truth: np.ndarray) -> FluxCalibration:
    """Knots of E[truth | predicted] from paired pixels: ``predicted`` network outputs [Anscombe
    units] and ``truth`` noise-free electrons per frame, any equal shapes."""
    y, x = np.asarray(predicted, float).ravel(), np.asarray(truth, float).ravel()
    if y.shape != x.shape:
        raise ParameterError(f"predicted {np.shape(predicted)} and truth {np.shape(truth)} differ in shape")
    good = np.isfinite(y) & np.isfinite(x)
    y, x = y[good], x[good]
    if len(y) < 1000:
        raise InputError(f"a flux calibration needs at least 1000 finite pixels, got {len(y)}")
    edges = np.unique(np.quantile(y, _QUANTILES))
    index = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1).astype(float)
    used = counts > 0
    mean_y = np.bincount(index, weights=y, minlength=len(edges) - 1)[used] / counts[used]
    # the mean excess over the algebraic inverse varies slowly with y, unlike x itself, whose
    # mean over a wide bin of the bright tail would sit above the curve (convexity)
    excess = x - algebraic_inverse_anscombe(y)
    mean_excess = np.bincount(index, weights=excess, minlength=len(edges) - 1)[used] / counts[used]
    knots_x = _non_decreasing(algebraic_inverse_anscombe(mean_y) + mean_excess, counts[used])
    keep = np.concatenate([[True], np.diff(mean_y) > 0])
    return FluxCalibration(tuple(mean_y[keep]), tuple(knots_x[keep]), pixels=len(y))


def _non_decreasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool-adjacent-violators)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks])


def predictions_on_videos(model: torch.nn.Module, videos: Iterable[tuple[np.ndarray, np.ndarray]], context: int,
                          stride: int = 2, dihedral_mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Network outputs [Anscombe units] and the matching truth [e-] for every window of each
    (frames (T, H, W) e-, truth (H, W) e- per frame) video; H and W must suit the network.
    ``dihedral_mean``: outputs averaged over rotations and flips, as infer-tiles will run them."""
    from dancekit.unet.inference import forward_dihedral_mean, forward_image
    from dancekit.unet.preprocess import network_input

    predicted, truths = [], []
    model.eval()
    device = next(model.parameters()).device
    for frames, truth in videos:
        starts = range(0, len(frames) - context + 1, stride)
        if not len(starts):
            raise InputError(f"a calibration video has {len(frames)} frames, fewer than the context {context}")
        for start in starts:
            window = torch.from_numpy(np.ascontiguousarray(frames[start:start + context], dtype=np.float32))[None]
            with torch.inference_mode():
                x, _ = network_input(window.to(device))
                forward = forward_dihedral_mean if dihedral_mean else forward_image
                predicted.append(forward(model, x)[0, 0].float().cpu().numpy())
            truths.append(np.asarray(truth, dtype=np.float32))
    return np.stack(predicted), np.stack(truths)
