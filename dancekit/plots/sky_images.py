"""Truth | stack | stack ...: the same window on the crowded core of a field, asinh-stretched,
with the detections circled (Bialek et al. 2024 Figs. 4 and 9 show their fields this way).

Positions are 0-based pixel coordinates (sep's: pixel centres at integers).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, ManualInterval
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from dancekit.plots.canvas import FONT_SIZE, caption, new_figure

ASINH_A = 0.02  # asinh softening: linear below ~2 % of the panel's peak, logarithmic above


def crowded_window(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], side: int | None = None) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the ``side``-pixel square holding the most stars at ``(x, y)``
    (default side: half the smaller image side, between 32 and 96 px); ties go to the one nearest
    the image centre."""
    height, width = shape
    if side is None:
        side = int(np.clip(min(height, width) // 2, 32, 96))
    side = min(side, height, width)
    counts = np.zeros((height + 1, width + 1))
    ix = np.clip(np.floor(np.asarray(x) + 0.5).astype(int), 0, width - 1)
    iy = np.clip(np.floor(np.asarray(y) + 0.5).astype(int), 0, height - 1)
    np.add.at(counts, (iy + 1, ix + 1), 1.0)
    total = counts.cumsum(0).cumsum(1)  # total[j, i] = stars in rows < j, columns < i
    in_box = total[side:, side:] - total[:-side, side:] - total[side:, :-side] + total[:-side, :-side]
    y0s, x0s = np.mgrid[0:in_box.shape[0], 0:in_box.shape[1]]
    distance = np.hypot(x0s + side / 2 - width / 2, y0s + side / 2 - height / 2)
    best = np.lexsort((distance.ravel(), -in_box.ravel()))[0]
    return int(x0s.ravel()[best]), int(y0s.ravel()[best]), side


def stack_images_figure(truth: np.ndarray, true_positions: dict, stacks: Sequence[dict], title: str, scale: str,
                        unit: str = "", match_radius: float = 2.0) -> Any:
    """Truth and each stack in one row (see :func:`draw_stack_images`), captioned."""
    figure = new_figure(3.6 * (1 + len(stacks)), 3.9)
    draw_stack_images(figure, truth, true_positions, stacks, unit, match_radius)
    caption(figure, title, scale)
    return figure


def draw_stack_images(figure: Any, truth: np.ndarray, true_positions: dict, stacks: Sequence[dict],
                      unit: str = "", match_radius: float = 2.0, radius: float = 3.0) -> None:
    """Panels truth | stack ... on ``figure``, zoomed on the crowded core (the window holding the
    most true stars). ``true_positions``: x, y of the true stars (circled on the truth). Each stack:
    ``name``, ``image`` and ``detections`` (x, y, matched: circled green when matched to a true
    star within ``match_radius`` px, red when not; circles of ``radius`` px). Each panel is asinh-stretched between its 1st percentile and its peak."""
    x0, y0, side = crowded_window(true_positions["x"], true_positions["y"], truth.shape)
    panels = [("truth", truth, true_positions, None)] + [(s["name"], s["image"], s["detections"], s) for s in stacks]
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    window = (slice(y0, y0 + side), slice(x0, x0 + side))
    for ax, (name, image, sources, stack) in zip(axes, panels):
        cut = np.asarray(image, float)[window]
        finite = cut[np.isfinite(cut)]
        low, high = (np.percentile(finite, 1.0), finite.max()) if finite.size else (0.0, 1.0)
        norm = ImageNormalize(interval=ManualInterval(low, high if high > low else low + 1.0), stretch=AsinhStretch(ASINH_A))
        shown = ax.imshow(cut, origin="lower", cmap="gray", norm=norm, extent=(x0 - 0.5, x0 + side - 0.5, y0 - 0.5, y0 + side - 0.5),
                          interpolation="nearest")
        figure.colorbar(shown, ax=ax, shrink=0.8, pad=0.02).set_label(unit or "image units", fontsize=FONT_SIZE - 1)
        matched = np.asarray(sources.get("matched", np.ones(len(sources["x"]), bool)), bool)
        colours = np.where(matched, "lime", "red") if stack is not None else np.full(len(matched), "cyan")
        inside = ((sources["x"] >= x0 - radius) & (sources["x"] < x0 + side + radius)
                  & (sources["y"] >= y0 - radius) & (sources["y"] < y0 + side + radius))
        circles = [Circle((cx, cy), radius) for cx, cy in zip(sources["x"][inside], sources["y"][inside])]
        ax.add_collection(PatchCollection(circles, facecolors="none", edgecolors=list(colours[inside]), linewidths=0.7))
        ax.set_xlim(x0 - 0.5, x0 + side - 0.5)
        ax.set_ylim(y0 - 0.5, y0 + side - 0.5)
        count = f"{len(sources['x'])} true stars" if stack is None else \
            f"{int(matched.sum())} matched, {int((~matched).sum())} false of {len(matched)} found"
        ax.set_title(f"{name}\n{count}", fontsize=FONT_SIZE)
        ax.set_xlabel("x [px]", fontsize=FONT_SIZE)
        ax.tick_params(labelsize=FONT_SIZE - 1)
    axes[0].set_ylabel("y [px]", fontsize=FONT_SIZE)
    handles = [Line2D([], [], ls="", marker="o", mfc="none", mec=c, label=t)
               for c, t in (("cyan", "true star"), ("lime", f"detection matched (≤ {match_radius:g} px)"), ("red", "false detection"))]
    figure.legend(handles=handles, fontsize=FONT_SIZE - 1, loc="outside lower center", ncols=3, frameon=False)
