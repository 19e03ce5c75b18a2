"""Analogue of Morujão et al. 2023 Figs. 4-5: r0 error against the time horizon of the telemetry.

Closed-loop simulate-telemetry files (r0 = 12 cm, L0 = 25 m, S/N 5, 500 Hz, 40 s) are fitted by
fit-r0's per-file path on their first T seconds (``--frames 0:N``), T = 0.5 ... 40 s, with the
remaining-error correction (iterations until converged, >= 2) and without it (iteration 1 only,
the paper's first iteration). Fig. 4 analogue: mean |r0(T) - r0(T_max)| / r0 with a power-law
fit a T^-b (paper eq. 27); Fig. 5 analogue: mean bias and file-to-file scatter against T.

Writes OUTDIR/r0_horizon.png and OUTDIR/r0_horizon.md (numbers computed here).
Run: python scripts/figure_r0_horizon.py OUTDIR [--quick]   (~2 min on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dancekit.commands.fit_r0 import FitSettings, fit_file  # noqa: E402
from dancekit.commands.simulate_telemetry import TelemetryFormat, simulate_telemetry  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402

R0, L0, SNR, RATE = 0.12, 25.0, 5.0, 500.0
HORIZONS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0)  # s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--quick", action="store_true", help="3 files instead of 10")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    n_files = 3 if args.quick else 10
    cfg = load_config("naomi", AOConfig, [f"reference.L0={L0}"])
    t0 = time.perf_counter()
    r0 = {True: np.empty((n_files, len(HORIZONS))), False: np.empty((n_files, len(HORIZONS)))}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.fits")
        for k in range(n_files):
            simulate_telemetry(output=path, config="naomi", overrides=None, r0=R0, outer_scale=L0,
                               duration=max(HORIZONS), framerate=RATE, snr=SNR, slope_noise=None, closed_loop=True,
                               gain=None, delay=None, wind=None, airmass=1.0, file_format=TelemetryFormat.aot,
                               seed=500 + k, overwrite=True, as_json=False, quiet=True, verbose=0, debug=False)
            for j, horizon in enumerate(HORIZONS):
                frames = f"0:{int(horizon * RATE)}"
                r0[True][k, j] = fit_file(path, FitSettings(cfg, mc_draws=0, frames=frames))["r0"]
                r0[False][k, j] = fit_file(path, FitSettings(cfg, mc_draws=0, frames=frames, iterations=1))["r0"]
    seconds = time.perf_counter() - t0
    h = np.array(HORIZONS)
    lines = ["# r0 against the time horizon (analogue of Morujão et al. 2023 Figs. 4-5)", "",
             f"{n_files} closed-loop files, r0 = {R0} m, L0 = {L0} m, S/N {SNR:g}, {RATE:g} Hz; made by "
             f"`scripts/figure_r0_horizon.py` in {seconds:.0f} s.", "",
             "| horizon [s] | frames | bias, corrected | scatter | bias, iteration 1 (no correction) | scatter | mean abs change to 40 s |",
             "|---|---|---|---|---|---|---|"]
    change = np.mean(np.abs(r0[True] - r0[True][:, -1:]), axis=0) / R0
    for j, horizon in enumerate(HORIZONS):
        b, u = r0[True][:, j] / R0 - 1, r0[False][:, j] / R0 - 1
        lines.append(f"| {horizon:g} | {int(horizon * RATE)} | {100 * b.mean():+.2f} % | {100 * b.std(ddof=1):.2f} % | "
                     f"{100 * u.mean():+.2f} % | {100 * u.std(ddof=1):.2f} % | {100 * change[j]:.2f} % |")
    use = change[:-1] > 0
    slope, intercept = np.polyfit(np.log(h[:-1][use]), np.log(change[:-1][use]), 1)
    at20 = np.exp(intercept) * 20.0 ** slope
    lines += ["", f"Power-law fit of the mean change (Fig. 4 analogue, eq. 27): {100 * np.exp(intercept):.2f} % x "
              f"(T / 1 s)^{slope:.2f}; at T = 20 s: {100 * at20:.2f} %."]
    with open(os.path.join(args.outdir, "r0_horizon.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax4, ax5) = plt.subplots(1, 2, figsize=(10, 4))
    ax4.loglog(h[:-1], 100 * change[:-1], "o", label="mean |r0(T) - r0(40 s)| / r0")
    ax4.loglog(h, 100 * np.exp(intercept) * h ** slope, "-", label=f"fit: T^{slope:.2f}")
    ax4.set_xlabel("time horizon T [s]")
    ax4.set_ylabel("change of r0 [%]")
    ax4.set_title("Fig. 4 analogue: temporal convergence")
    ax4.legend(fontsize=8)
    for flag, style, label in ((False, "s:", "iteration 1 (no remaining error)"), (True, "o-", "converged (corrected)")):
        bias = 100 * (r0[flag] / R0 - 1)
        ax5.errorbar(h, bias.mean(axis=0), bias.std(axis=0, ddof=1), fmt=style, capsize=3, label=label)
    ax5.axhspan(-2, 2, color="0.9", zorder=0)
    ax5.axhline(0, color="k", lw=0.5)
    ax5.set_xscale("log")
    ax5.set_xlabel("time horizon T [s]")
    ax5.set_ylabel("r0 error [%] (mean +- scatter)")
    ax5.set_title("Fig. 5 analogue: r0 error against horizon")
    ax5.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.outdir, "r0_horizon.png"), dpi=120)
    plt.close(fig)
    print("\n".join(lines))
    print(f"wrote {args.outdir}/r0_horizon.png, r0_horizon.md")


if __name__ == "__main__":
    main()
