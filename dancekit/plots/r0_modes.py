"""Variance of every reconstructed Noll mode against its index: the evidence behind one fit-r0 row
(Morujão et al. 2023 Fig. 3). Measured, noise-corrected and remaining-error-corrected variances
are points, the fitted von Kármán model a line; modes left out of the fit are drawn hollow.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dancekit.errors import ParameterError

_STYLES = (  # key, label, marker, colour
    ("measured", "measured", "o", "0.55"),
    ("noise_corrected", "- noise", "s", "tab:blue"),
    ("corrected", "- noise - remaining error", "D", "tab:red"),
)


def plot_modal_variances(ax, modes: Mapping, title: str = "") -> None:
    """Draw one row's per-mode variances [rad^2] on ``ax`` (log scale; values <= 0 are skipped).

    ``modes`` maps 'noll', 'fitted' (bool), 'measured', 'noise_corrected', 'corrected' and 'model'
    to arrays of the same length (the R0_MODES columns of one FIT_R0 row).
    """
    noll = np.asarray(modes["noll"])
    fitted = np.asarray(modes["fitted"], dtype=bool)
    for key, label, marker, colour in _STYLES:
        values = np.asarray(modes[key], dtype=float)
        good = values > 0
        ax.plot(noll[good & fitted], values[good & fitted], marker, color=colour, label=label, ms=5)
        ax.plot(noll[good & ~fitted], values[good & ~fitted], marker, color=colour, mfc="none", ms=5)
    model = np.asarray(modes["model"], dtype=float)
    ax.plot(noll[model > 0], model[model > 0], "-", color="k", lw=1.2, label="von Kármán fit")
    ax.set_yscale("log")
    ax.set_xlabel("Noll index")
    ax.set_ylabel("variance [rad² at 500 nm]")
    ax.set_xticks(noll)
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title, fontsize=9)


def modal_variances_figure(panels: Sequence[tuple[str, Mapping]], columns: int | None = None) -> Figure:
    """One panel per (title, modes) pair (see :func:`plot_modal_variances`), legend on the first."""
    if not panels:
        raise ParameterError("no fitted rows to plot")
    n = len(panels)
    columns = columns or min(n, 3)
    rows = int(np.ceil(n / columns))
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for k, (title, modes) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, k + 1)
        plot_modal_variances(ax, modes, title)
        if k == 0:
            ax.legend(fontsize=7, loc="upper right")
    return figure
