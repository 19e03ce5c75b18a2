"""Deep-Dark-Net (Qu et al. 2024) figures: RMSE per temperature (table 1), the loss ablation
(table 2), the error map (fig. 6) and the error histograms (figs. 7-8). Dark levels in ADU."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dancekit.plots.canvas import FONT_SIZE, caption, legend, legend_below, new_figure, plain_log_ticks, style_axes

AGAINST_STYLE = {"actual": "-", "noise-free": "--"}


def rmse_by_temperature(panels: dict[str, tuple[Sequence[float], dict[tuple[str, str], Sequence[float]]]],
                        title: str, scale: str) -> Any:
    """RMSE [ADU] against the CCD temperature [°C], one panel per ``panels`` entry, one colour per
    method, solid against the actual darks and dashed against their noise-free expectation.

    Each panel is (temperatures, rows): rows map (method, 'actual' | 'noise-free') to a table
    row [overall, one RMSE per temperature] (the overall value goes into the label)."""
    figure = new_figure(5.2 * len(panels), 6.0)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for k, (ax, (name, (temperatures, rows))) in enumerate(zip(axes, panels.items())):
        methods = list(dict.fromkeys(method for method, _ in rows))
        for i, method in enumerate(methods):
            for against, style in AGAINST_STYLE.items():
                row = rows.get((method, against))
                if row is not None:
                    ax.plot(temperatures, row[1:], style, marker="o", ms=4, color=f"C{i}", lw=1,
                            label=f"{method} vs {against} (overall {row[0]:.2f})")
        ax.set_yscale("log")
        plain_log_ticks(ax)
        ax.set_xticks(temperatures)
        style_axes(ax, f"rmse_panel_{k}", name, "CCD temperature [°C]", "RMSE of the predicted dark [ADU]")
        legend_below(ax)
    caption(figure, title, scale)
    return figure


def loss_ablation(labels: Sequence[str], rmse: dict[str, Sequence[float]], baselines: dict[str, float],
                  paper: Sequence[float | None], title: str, scale: str) -> Any:
    """Bars of RMSE [ADU] against the actual darks per loss configuration (``labels``), one bar set
    per conditioning in ``rmse``; baselines as horizontal lines; the paper's RMSE as black marks."""
    figure = new_figure(9.0, 5.4)
    ax = figure.subplots()
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(rmse))
    for k, (name, values) in enumerate(rmse.items()):
        ax.bar(x + (k - (len(rmse) - 1) / 2) * width, values, width, label=name)
    for (name, value), style in zip(baselines.items(), ("--", ":", "-.")):
        ax.axhline(value, color="k", ls=style, lw=1, label=f"{name} baseline ({value:.2f})")
    known = [(i, p) for i, p in enumerate(paper) if p is not None]
    if known:
        ax.plot([i for i, _ in known], [p for _, p in known], "k_", ms=18, mew=2, ls="", label="paper (1042-px channels)")
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    lowest = min([min(v) for v in rmse.values()] + list(baselines.values()) + [p for _, p in known])
    ax.set_ylim(bottom=0.7 * lowest)  # log bars start at the axis: keep the short ones visible
    plain_log_ticks(ax)
    style_axes(ax, "ablation", "loss ablation at −15 °C (table 2 analogue)", "loss configuration",
               "RMSE against the actual darks [ADU]")
    legend_below(ax, ncols=3)
    caption(figure, title, scale)
    return figure


def error_maps(maps: Sequence[tuple[str, np.ndarray]], title: str, scale: str, vmax: float = 30.0) -> Any:
    """|predicted − actual| [ADU] over the active area, one panel per (label, map) (fig. 6)."""
    figure = new_figure(4.6 * len(maps), 4.4)
    axes = np.atleast_1d(figure.subplots(1, len(maps)))
    for ax, (label, image) in zip(axes, maps):
        shown = ax.imshow(image, origin="lower", cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
        figure.colorbar(shown, ax=ax, shrink=0.85).set_label("|predicted − actual| [ADU]", fontsize=FONT_SIZE)
        style_axes(ax, label, label, "x [px]", "y [px]")
    caption(figure, title, scale)
    return figure


def error_histograms(errors: dict[str, np.ndarray], errors_by_temperature: dict[str, np.ndarray], title: str,
                     scale: str, limit: float = 40.0) -> Any:
    """Histograms of predicted − actual [ADU] per method (fig. 7) and, for one method, per
    temperature (fig. 8), between ±``limit``."""
    figure = new_figure(11.0, 4.8)
    axes = figure.subplots(1, 2)
    bins = np.linspace(-limit, limit, 161)
    for ax, (key, name, table) in zip(axes, (("fig7", "all held-out darks (fig. 7)", errors),
                                             ("fig8", "per temperature (fig. 8)", errors_by_temperature))):
        for label, values in table.items():
            values = np.asarray(values, float).ravel()
            inside = np.mean(np.abs(values) <= 10)
            ax.hist(values, bins, histtype="step", label=f"{label}: mean {values.mean():+.2f}, {100 * inside:.0f}% in ±10")
        style_axes(ax, key, name, "predicted − actual [ADU]", "pixels per 0.5-ADU bin")
        legend(ax)
    caption(figure, title, scale)
    return figure
