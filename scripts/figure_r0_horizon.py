"""Analogue of Morujão et al. 2023 Figs. 4-5: r0 error against the time horizon of the telemetry.

Closed-loop simulate-telemetry files (r0 = 12 cm, L0 = 25 m, S/N 5, 500 Hz, 40 s) are fitted by
fit-r0's per-file path on their first T seconds (``--frames 0:N``), T = 0.5 ... 40 s, with the
remaining-error correction (iterations until converged, >= 2) and without it (iteration 1 only,
the paper's first iteration). Fig. 4 analogue: mean |r0(T) - r0(T_max)| / r0 with a power-law
fit a T^-b (paper eq. 27); Fig. 5 analogue: mean bias and file-to-file scatter against T.

Writes OUTDIR/r0_horizon.md (numbers computed here) and OUTDIR/r0_horizon.png from the same numbers.
Run: python scripts/figure_r0_horizon.py OUTDIR [--quick | --smoke]   (~2 min on 2 cores; --smoke:
2 files of 4 s with modes drawn exactly, for the tests)
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
from dancekit.commands.simulate_telemetry import TelemetryFormat, TurbulenceModel, simulate_telemetry  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402
from dancekit.io.figure_files import write_png  # noqa: E402
from dancekit.plots.r0_bias import bias_against_horizon  # noqa: E402

R0, L0, SNR, RATE = 0.12, 25.0, 5.0, 500.0
HORIZONS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0)  # s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--quick", action="store_true", help="3 files instead of 10")
    parser.add_argument("--smoke", action="store_true", help="2 files of 4 s, modes drawn exactly (tests: seconds)")
    args = parser.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    n_files = 2 if args.smoke else 3 if args.quick else 10
    horizons = tuple(h for h in HORIZONS if h <= 4.0) if args.smoke else HORIZONS
    model = TurbulenceModel.exact if args.smoke else None  # None: the config's (moving screens)
    cfg = load_config("naomi", AOConfig, [f"reference.L0={L0}"])
    t0 = time.perf_counter()
    r0 = {True: np.empty((n_files, len(horizons))), False: np.empty((n_files, len(horizons)))}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.fits")
        for k in range(n_files):
            simulate_telemetry(output=path, config="naomi", overrides=None, r0=R0, outer_scale=L0,
                               duration=max(horizons), framerate=RATE, snr=SNR, slope_noise=None, closed_loop=True,
                               gain=None, delay=None, wind=None, airmass=1.0, file_format=TelemetryFormat.aot,
                               model=model, seed=500 + k, overwrite=True, as_json=False, quiet=True, verbose=0,
                               debug=False)
            for j, horizon in enumerate(horizons):
                frames = f"0:{int(horizon * RATE)}"
                r0[True][k, j] = fit_file(path, FitSettings(cfg, mc_draws=0, frames=frames))["r0"]
                r0[False][k, j] = fit_file(path, FitSettings(cfg, mc_draws=0, frames=frames, iterations=1))["r0"]
    seconds = time.perf_counter() - t0
    h = np.array(horizons)
    bias = {flag: 100 * (r0[flag] / R0 - 1) for flag in (True, False)}  # % per file and horizon
    mean = {flag: b.mean(axis=0) for flag, b in bias.items()}
    scatter = {flag: b.std(axis=0, ddof=1) for flag, b in bias.items()}
    lines = ["# r0 against the time horizon (analogue of Morujão et al. 2023 Figs. 4-5)", "",
             f"{n_files} closed-loop files, r0 = {R0} m, L0 = {L0} m, S/N {SNR:g}, {RATE:g} Hz; made by "
             f"`scripts/figure_r0_horizon.py` in {seconds:.0f} s.", "",
             f"| horizon [s] | frames | bias, corrected | scatter | bias, iteration 1 (no correction) | scatter | mean abs change to {h[-1]:g} s |",
             "|---|---|---|---|---|---|---|"]
    change = np.mean(np.abs(r0[True] - r0[True][:, -1:]), axis=0) / R0
    for j, horizon in enumerate(horizons):
        lines.append(f"| {horizon:g} | {int(horizon * RATE)} | {mean[True][j]:+.2f} % | {scatter[True][j]:.2f} % | "
                     f"{mean[False][j]:+.2f} % | {scatter[False][j]:.2f} % | {100 * change[j]:.2f} % |")
    use = change[:-1] > 0
    slope, intercept = np.polyfit(np.log(h[:-1][use]), np.log(change[:-1][use]), 1)
    at20 = np.exp(intercept) * 20.0 ** slope
    lines += ["", f"Power-law fit of the mean change (Fig. 4 analogue, eq. 27): {100 * np.exp(intercept):.2f} % x "
              f"(T / 1 s)^{slope:.2f}; at T = 20 s: {100 * at20:.2f} %."]
    run = "--smoke" if args.smoke else "--quick" if args.quick else "full"
    scale = (f"scripts/figure_r0_horizon.py ({run}): {n_files} closed-loop files of {h[-1]:g} s at {RATE:g} Hz, r0 = {R0} m, "
             f"L0 = {L0:g} m, S/N {SNR:g}" + (", modes drawn exactly" if args.smoke else ", moving phase screens"))
    with open(os.path.join(args.outdir, "r0_horizon.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")

    figure = bias_against_horizon(h, 100 * change, (100 * np.exp(intercept), slope),
                                  {"iteration 1 (no remaining-error correction)": (mean[False], scatter[False]),
                                   "converged (remaining-error corrected)": (mean[True], scatter[True])},
                                  "fit-r0 against the time horizon of the telemetry (Morujão et al. 2023 Figs. 4-5)", scale)
    write_png(figure, os.path.join(args.outdir, "r0_horizon.png"), overwrite=True)
    print("\n".join(lines))
    print(f"wrote {args.outdir}/r0_horizon.png, r0_horizon.md")


if __name__ == "__main__":
    main()
