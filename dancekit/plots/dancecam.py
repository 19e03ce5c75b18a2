"""Bialek et al. 2024 (DanceCam) figures of stacks judged against their truth: Figs. 5, 7, 8 and 11.

Each stack is one dict as ``dancekit evaluate`` makes it (in memory or read back from its JSON):
``name``; ``by_magnitude`` (per truth-magnitude bin: ``mag_low``, ``mag_high``, ``n``, ``n_true``,
``recall`` and ``<quantity>_mean`` / ``<quantity>_std`` of ``mag_residual``, ``d50_residual``,
``x_residual``, ``d50``, ``strehl``); ``sweep`` (``threshold``, ``precision``, ``recall``);
``precision``, ``recall`` at the operating ``threshold``, and ``best`` (the best-F1 sweep point).
Lengths are in pixels (D50 drawn in arcsec when ``pixel_scale`` is given); error bars are the
standard deviation of the stars in a bin (Figs. 5 and 8) or the binomial error (Fig. 7).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dancekit.plots.canvas import FONT_SIZE, caption, legend, nan_array, new_figure, style_axes
from dancekit.plots.sky_images import draw_stack_images

STYLES = (("C0", "^"), ("C3", "o"), ("C2", "s"), ("C1", "D"), ("C4", "v"), ("C5", "P"))


def star_quality_figure(stacks: Sequence[dict], title: str, scale: str, pixel_scale: float | None = None,
                        zero_point: float = 0.0) -> Any:
    """The Fig. 5/7/8/11 panels of ``stacks`` in one Figure, captioned with ``title`` and ``scale``."""
    figure = new_figure(12.0, 10.5)
    draw_star_quality(figure, stacks, pixel_scale, zero_point)
    caption(figure, title, scale)
    return figure


def evaluation_figure(truth: np.ndarray, true_positions: dict, stacks: Sequence[dict], title: str, scale: str,
                      pixel_scale: float | None = None, zero_point: float = 0.0, unit: str = "",
                      match_radius: float = 2.0) -> Any:
    """``dancekit evaluate --plot``: the images (truth | each stack, zoomed on the crowded core,
    detections circled; each stack also needs ``image`` and ``detections``) above the
    Fig. 5/7/8/11 panels."""
    figure = new_figure(max(12.0, 3.6 * (1 + len(stacks))), 14.5)
    images, panels = figure.subfigures(2, 1, height_ratios=(4.0, 10.5))
    draw_stack_images(images, truth, true_positions, stacks, unit, match_radius)
    draw_star_quality(panels, stacks, pixel_scale, zero_point)
    caption(figure, title, scale)
    return figure


def draw_star_quality(figure: Any, stacks: Sequence[dict], pixel_scale: float | None = None,
                      zero_point: float = 0.0) -> None:
    """Nine panels in three rows on ``figure`` (a Figure or SubFigure):
    Fig. 5 (Δmag, ΔD50, Δx against magnitude); Fig. 7 (completeness), Fig. 8 (D50, Strehl);
    Fig. 11 (precision against recovered fraction), the star counts per bin, and a summary."""
    axes = figure.subplots(3, 3)
    mag_label = "truth magnitude [mag, instrumental]" if zero_point == 0 else f"truth magnitude [mag, zero point {zero_point:g}]"
    angle, to_angle = ('"', pixel_scale) if pixel_scale else ("px", 1.0)
    binned = (
        (axes[0, 0], "fig5_dmag", "Fig. 5a: flux conservation", "Δmag = image − truth [mag]", "mag_residual", 1.0),
        (axes[0, 1], "fig5_dd50", "Fig. 5b: image quality", f"ΔD50 = image − truth [{angle}]", "d50_residual", to_angle),
        (axes[0, 2], "fig5_dx", "Fig. 5c: astrometry", "Δx = image − truth [px]", "x_residual", 1.0),
        (axes[1, 1], "fig8_d50", "Fig. 8a: D50", f"D50 [{angle}]", "d50", to_angle),
        (axes[1, 2], "fig8_strehl", "Fig. 8b: Strehl ratio", "Strehl ratio (Roberts et al. 2004)", "strehl", 1.0),
    )
    for k, stack in enumerate(stacks):
        colour, marker = STYLES[k % len(STYLES)]
        bins = {key: nan_array(v) for key, v in stack["by_magnitude"].items()}
        centre = (bins["mag_low"] + bins["mag_high"]) / 2
        shift = 0.06 * (k - (len(stacks) - 1) / 2)  # mag: side by side, not on top of each other
        for ax, _, _, _, quantity, factor in binned:
            ax.errorbar(centre + shift, bins[f"{quantity}_mean"] * factor, bins[f"{quantity}_std"] * factor,
                        fmt=marker + "-", color=colour, ms=4, capsize=2, lw=1, label=stack["name"])
        recall = bins["recall"]
        with np.errstate(invalid="ignore", divide="ignore"):
            error = np.sqrt(recall * (1 - recall) / bins["n_true"])
        axes[1, 0].errorbar(centre + shift, recall, error, fmt=marker + "-", color=colour, ms=4, capsize=2, lw=1,
                            label=stack["name"])
        axes[2, 1].plot(centre, bins["n"], drawstyle="steps-mid", color=colour, label=f"{stack['name']}: matched")
        _draw_sweep(axes[2, 0], stack, colour, marker)
    for ax, key, title, ylabel, quantity, _ in binned:
        style_axes(ax, key, title, mag_label, ylabel)
        if quantity.endswith("residual"):
            ax.axhline(0.0, color="k", lw=0.5, label="_zero")
    style_axes(axes[1, 0], "fig7_completeness", "Fig. 7: completeness", mag_label, "recovered fraction (matched / true)")
    axes[1, 0].set_ylim(-0.02, 1.05)
    if stacks:
        first = {key: nan_array(v) for key, v in stacks[0]["by_magnitude"].items()}
        centre = (first["mag_low"] + first["mag_high"]) / 2
        axes[2, 1].plot(centre, first["n_true"], drawstyle="steps-mid", color="k", label="true stars")
    style_axes(axes[2, 1], "stars_per_bin", "stars per magnitude bin", mag_label, "stars")
    style_axes(axes[2, 0], "fig11_sweep", "Fig. 11: detection-threshold sweep", "recovered fraction (matched / true)",
               "precision (matched / detected)")
    for ax in (axes[0, 0], axes[1, 0], axes[2, 0], axes[2, 1]):
        legend(ax)
    _summary_text(axes[2, 2], stacks, pixel_scale)


def _draw_sweep(ax: Any, stack: dict, colour: str, marker: str) -> None:
    """Precision against recall over the thresholds, with the operating and best-F1 points."""
    sweep = {key: nan_array(v) for key, v in stack["sweep"].items()}
    ax.plot(sweep["recall"], sweep["precision"], marker + "-", color=colour, ms=3, lw=1,
            label=f"{stack['name']} (thresholds {sweep['threshold'].min():g}–{sweep['threshold'].max():g} σ)")
    for t, x, y in zip(sweep["threshold"], sweep["recall"], sweep["precision"]):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=FONT_SIZE - 3,
                        color=colour)
    ax.scatter([stack["recall"]], [stack["precision"]], s=60, facecolors="none", edgecolors=colour, zorder=3,
               label=f"{stack['name']} at {stack['threshold']:g} σ")
    best = stack.get("best")
    if best:
        ax.scatter([best["recall"]], [best["precision"]], s=70, marker="*", color=colour, zorder=3,
                   label=f"{stack['name']} best F1 ({best['threshold']:g} σ)")


def _summary_text(ax: Any, stacks: Sequence[dict], pixel_scale: float | None) -> None:
    ax.set_axis_off()
    lines = []
    for stack in stacks:
        d50 = stack.get("mean_d50")
        d50_text = (f'{d50 * pixel_scale:.2f}"' if pixel_scale else f"{d50:.2f} px") if d50 is not None else "n/a"
        lines.append(f"{stack['name']}\n  precision {stack['precision']:.3f}, recovered {stack['recall']:.3f}\n"
                     f"  mean D50 {d50_text}, mean Strehl {_number(stack.get('mean_strehl'))}\n"
                     f"  σ(Δmag) {_number(stack.get('mag_residual_std'))} mag")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=FONT_SIZE, family="monospace",
            transform=ax.transAxes)


def _number(value: Any) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"
