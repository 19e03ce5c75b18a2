"""The pieces every dancekit figure shares: an Agg-backed Figure, its caption, and the data behind it.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas attached, never through
pyplot: no global state, no window, nothing to close, safe in a worker process or a cron job.
:func:`plotted_data` reads back what was drawn (from the artists themselves, not from the inputs),
so a saved PNG can carry its numbers and a test can compare them with the table they came from.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

FONT_SIZE = 8  # pt: figures are read at about 1000 px wide


def new_figure(width: float, height: float) -> Figure:
    """An empty Figure of ``width`` x ``height`` inches drawn by Agg, constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def caption(figure: Any, title: str, scale: str) -> None:
    """The title and, under it, the scale the numbers were made at (sizes, counts, seeds),
    wrapped to the figure's width."""
    columns = max(40, int(figure.get_figwidth() * 72 / (0.55 * (FONT_SIZE + 1))))
    figure.suptitle(f"{title}\n{textwrap.fill(scale, columns)}", fontsize=FONT_SIZE + 1)


def style_axes(ax: Any, key: str, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels (with units) and the ``key`` under which :func:`plotted_data` files the panel."""
    ax.set_gid(key)
    ax.set_title(title, fontsize=FONT_SIZE + 1)
    ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
    ax.set_ylabel(ylabel, fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE - 1)


def plain_log_ticks(ax: Any, axes: str = "y") -> None:
    """Tick labels of log axes as plain numbers (0.5, 1, 2, 5, 10, 20) instead of 5 × 10⁻¹, 10⁰."""
    def major(value: float, _: Any) -> str:
        return f"{value:g}"

    def minor(value: float, _: Any) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return f"{value:g}" if round(mantissa, 6) in (2, 5) else ""

    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        axis.set_major_formatter(FuncFormatter(major))
        axis.set_minor_formatter(FuncFormatter(minor))
    ax.tick_params(which="both", labelsize=FONT_SIZE - 1)


def legend(ax: Any, **options: Any) -> None:
    ax.legend(fontsize=FONT_SIZE - 1, **options)


def legend_below(ax: Any, ncols: int = 2) -> None:
    """The legend of ``ax`` under its x label, outside the data."""
    ax.legend(fontsize=FONT_SIZE - 1, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=ncols, frameon=False)


def figure_legend(figure: Any, ax: Any, ncols: int = 3) -> None:
    """The legend of ``ax`` under all panels (when it would hide data inside one)."""
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=ncols, fontsize=FONT_SIZE - 1,
                  frameon=False)


def plotted_data(figure: Any) -> dict[str, dict[str, dict[str, list]]]:
    """What each panel shows: ``{panel: {series label: {"x": [...], "y": [...], "yerr": [...]}}}``.

    Panels are keyed by their gid (see :func:`style_axes`), else their title; series are the
    labelled lines, error-bar sets, bar sets and scatter sets, read from the drawn artists.
    NaN becomes None (JSON null). Error bars are given as half their drawn length.
    """
    panels: dict[str, dict] = {}
    for k, ax in enumerate(figure.axes):
        series: dict[str, dict] = {}
        owned = set()
        for container in ax.containers:
            label = container.get_label()
            if label.startswith("_"):
                continue
            if isinstance(container, ErrorbarContainer):
                line, _, bars = container.lines
                owned.add(line)
                series[label] = _errorbar_series(line, bars)
            elif isinstance(container, BarContainer):
                series[label] = {"x": _listed([p.get_x() + p.get_width() / 2 for p in container.patches]),
                                 "y": _listed([p.get_height() for p in container.patches])}
        for line in ax.lines:
            if line not in owned and not line.get_label().startswith("_"):
                series[line.get_label()] = {"x": _listed(line.get_xdata()), "y": _listed(line.get_ydata())}
        for collection in ax.collections:
            if isinstance(collection, PathCollection) and not collection.get_label().startswith("_"):
                offsets = np.asarray(collection.get_offsets(), float).reshape(-1, 2)
                series[collection.get_label()] = {"x": _listed(offsets[:, 0]), "y": _listed(offsets[:, 1])}
        if series:
            key = ax.get_gid() or ax.get_title() or f"axes {k}"
            panels[key if key not in panels else f"{key} ({k})"] = series
    return panels


def _errorbar_series(line: Any, bars: tuple) -> dict[str, list]:
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    yerr = np.full(len(y), np.nan)
    if bars:  # one segment per point (empty where the point is NaN), from y - err to y + err
        for i, segment in enumerate(bars[-1].get_segments()[:len(y)]):
            if len(segment):
                yerr[i] = (np.max(segment[:, 1]) - np.min(segment[:, 1])) / 2
    return {"x": _listed(x), "y": _listed(y), "yerr": _listed(yerr)}


def _listed(values: Any) -> list:
    return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
            for v in np.asarray(values, float).tolist()]


def nan_array(values: Any) -> np.ndarray:
    """A list that may hold None (JSON null) or a numpy array, as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], float)
