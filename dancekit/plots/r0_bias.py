"""fit-r0 against the r0 that made the telemetry (Morujão et al. 2023 Figs. 4-5 and sect. 3.4).

Biases are r0_fit / r0_true − 1 in per cent, "corrected" with the remaining-error (aliasing)
correction iterated to convergence, "uncorrected" without it (the paper's first iteration).
The grey band is the ±2 % target.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dancekit.plots.canvas import caption, figure_legend, legend, new_figure, plain_log_ticks, style_axes

TARGET = 2.0  # per cent


def bias_against_snr(rows: Sequence[dict], title: str, scale: str) -> Any:
    """r0 bias against S/N, one panel per loop (open, closed), one colour per r0.

    ``rows``: dicts with ``r0`` [m], ``snr``, ``loop`` ('open' / 'closed') and the bias mean and
    standard error in per cent, ``corrected`` / ``corrected_se`` and ``uncorrected`` /
    ``uncorrected_se``. Points of different r0 are spread by ±4 % in S/N so that they do not hide
    each other."""
    figure = new_figure(10.0, 5.2)
    axes = figure.subplots(1, 2, sharey=True)
    r0s = sorted({row["r0"] for row in rows})
    for ax, loop in zip(axes, ("open", "closed")):
        for i, r0 in enumerate(r0s):
            sel = sorted((row for row in rows if row["r0"] == r0 and row["loop"] == loop), key=lambda row: row["snr"])
            x = np.array([row["snr"] for row in sel]) * (1 + 0.04 * (i - (len(r0s) - 1) / 2))
            for key, fmt, what in (("corrected", "-o", "corrected"), ("uncorrected", ":s", "no remaining-error correction")):
                ax.errorbar(x, [row[key] for row in sel], [row[f"{key}_se"] for row in sel], fmt=fmt, color=f"C{i}",
                            ms=4, capsize=2, lw=1, label=f"r0 = {100 * r0:.0f} cm, {what}")
        _target_band(ax)
        ax.set_xscale("log")
        plain_log_ticks(ax, "x")
        style_axes(ax, f"{loop}_loop", f"{loop} loop", "S/N (turbulence / noise variance, Noll 4-15)",
                   "r0 bias [%] (mean ± standard error)")
    figure_legend(figure, axes[1], ncols=3)
    caption(figure, title, scale)
    return figure


def bias_against_horizon(horizons: np.ndarray, change: np.ndarray, power_law: tuple[float, float],
                         bias: dict[str, tuple[np.ndarray, np.ndarray]], title: str, scale: str) -> Any:
    """Fig. 4 analogue (mean |r0(T) − r0(T_max)| / r0 [%] against the horizon T [s], with the fit
    ``power_law`` = (amplitude [%] at 1 s, exponent)) and Fig. 5 analogue (bias mean and
    file-to-file scatter [%] against T, per ``bias`` label: (mean, scatter) arrays over ``horizons``)."""
    figure = new_figure(10.0, 4.4)
    ax4, ax5 = figure.subplots(1, 2)
    horizons = np.asarray(horizons, float)
    amplitude, exponent = power_law
    ax4.loglog(horizons[:-1], change[:-1], "o", label=f"mean |r0(T) − r0({horizons[-1]:g} s)| / r0")
    ax4.loglog(horizons, amplitude * horizons ** exponent, "-", label=f"fit: {amplitude:.2f} % × T^{exponent:.2f}")
    plain_log_ticks(ax4, "xy")
    style_axes(ax4, "fig4_convergence", "Fig. 4 analogue: temporal convergence", "time horizon T [s]", "change of r0 [%]")
    legend(ax4)
    for (label, (mean, scatter)), fmt in zip(bias.items(), ("s:", "o-", "^--")):
        ax5.errorbar(horizons, mean, scatter, fmt=fmt, capsize=3, ms=4, lw=1, label=label)
    _target_band(ax5)
    ax5.set_xscale("log")
    plain_log_ticks(ax5, "x")
    style_axes(ax5, "fig5_bias", "Fig. 5 analogue: r0 error against horizon", "time horizon T [s]",
               "r0 bias [%] (mean ± file-to-file scatter)")
    legend(ax5)
    caption(figure, title, scale)
    return figure


def r0_against_delay(delays: Sequence[int], r0: Sequence[float], r0_true: float, true_delay: int, title: str,
                     scale: str) -> Any:
    """r0 [m] fitted with each ``--delay`` [frames] on one closed-loop file of known r0 and delay."""
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    ax.plot(delays, r0, "o-", label="fit-r0 --delay D")
    ax.axhline(r0_true, color="k", lw=0.8, ls="--", label=f"true r0 = {r0_true:g} m")
    ax.axvline(true_delay, color="0.5", lw=0.8, ls=":", label=f"simulated delay {true_delay} frames")
    style_axes(ax, "delay", "loop-delay sign on a closed loop", "--delay D [frames]", "fitted r0 [m]")
    legend(ax)
    caption(figure, title, scale)
    return figure


def _target_band(ax: Any) -> None:
    ax.axhspan(-TARGET, TARGET, color="0.9", zorder=0)
    ax.axhline(0.0, color="k", lw=0.5, label="_zero")
