"""Zero points per exposure (AZP-RC, seed 003) against the classical robust fit.

Star residuals are m_ref − m_calibrated [mag] of the stars a fit kept, calibrated with each
method's zero point; exposure errors are estimate − true zero point [mag].
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dancekit.plots.canvas import FONT_SIZE, caption, legend, new_figure, style_axes


def zeropoint_figure(stars: dict[str, np.ndarray], residuals: dict[str, np.ndarray], errors: dict[str, np.ndarray],
                     reference: str, compared: Sequence[str], title: str, scale: str, fail: float = 0.05) -> Any:
    """Four panels: star residuals against reference magnitude and colour (binned mean ± std per
    method in ``residuals``, every star as a dot); per exposure, the error of each ``compared``
    method against the ``reference`` method's; and the error histograms of all ``errors``.

    ``stars``: ``mag`` and ``colour`` of the pooled stars; ``residuals``: per method, the residual
    of each star [mag]; ``errors``: per method, estimate − true zero point per exposure [mag]."""
    figure = new_figure(11.0, 8.6)
    axes = figure.subplots(2, 2)
    for ax, key, what, unit in ((axes[0, 0], "mag", "reference magnitude", "mag"), (axes[0, 1], "colour", "colour", "mag")):
        x = np.asarray(stars[key], float)
        edges = _edges(x)
        for i, (name, values) in enumerate(residuals.items()):
            values = np.asarray(values, float)
            ax.plot(x, values, ".", color=f"C{i}", ms=1.5, alpha=0.25, label="_stars")
            centre, mean, std = _binned(x, values, edges)
            ax.errorbar(centre + 0.1 * (edges[1] - edges[0]) * (i - 0.5), mean, std, fmt="o-", color=f"C{i}", ms=4,
                        capsize=2, lw=1, label=f"{name}: binned mean ± std")
        ax.axhline(0.0, color="k", lw=0.5, label="_zero")
        ax.set_ylim(-0.25, 0.25)
        style_axes(ax, f"residual_vs_{key}", f"star residuals against {what}", f"{what} [{unit}]",
                   "m_ref − m_calibrated [mag]")
        legend(ax)
    ax = axes[1, 0]
    x = np.asarray(errors[reference], float)
    limit = max(0.1, float(np.nanmax(np.abs(np.concatenate([np.asarray(v, float) for v in errors.values()])))))
    ax.axhspan(-fail, fail, color="0.92", zorder=0)
    ax.axvspan(-fail, fail, color="0.92", zorder=0)
    ax.plot([-limit, limit], [-limit, limit], "k-", lw=0.5, label="_equal")
    for i, name in enumerate(compared):
        values = errors[name]
        values = np.asarray(values, float)
        ax.scatter(x, values, s=10, color=f"C{i + 2}", label=f"{name} (RMSE {_rmse(values):.4f})")
    style_axes(ax, "per_exposure", f"per exposure, against {reference} (RMSE {_rmse(x):.4f})",
               f"{reference}: estimate − true ZP [mag]", "learned: estimate − true ZP [mag]")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.text(0.02, 0.98, f"grey: |error| ≤ {fail:g} mag", transform=ax.transAxes, va="top", fontsize=FONT_SIZE - 1)
    legend(ax, loc="lower right")
    ax = axes[1, 1]
    bins = np.linspace(-0.15, 0.15, 61)
    for name, values in errors.items():
        ax.hist(np.clip(np.asarray(values, float), bins[0], bins[-1]), bins=bins, histtype="step", label=name)
    style_axes(ax, "error_histogram", "errors of every method (clipped at ±0.15)", "estimate − true ZP [mag]",
               "held-out exposures per 5-mmag bin")
    legend(ax)
    caption(figure, title, scale)
    return figure


def _edges(x: np.ndarray, n: int = 8) -> np.ndarray:
    finite = x[np.isfinite(x)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return np.array([0.0, 1.0]) if finite.size == 0 else np.array([finite[0] - 0.5, finite[0] + 0.5])
    return np.linspace(finite.min(), finite.max() + 1e-9, n + 1)


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = np.digitize(x, edges) - 1
    mean, std = np.full(len(edges) - 1, np.nan), np.full(len(edges) - 1, np.nan)
    for b in range(len(edges) - 1):
        values = y[(index == b) & np.isfinite(y)]
        if values.size:
            mean[b] = values.mean()
            std[b] = values.std() if values.size > 1 else np.nan
    return (edges[:-1] + edges[1:]) / 2, mean, std


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))
