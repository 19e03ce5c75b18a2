"""Validate ``fit-r0`` on telemetry it did not make (issue 16): r0 bias and honest uncertainties.

Writes (or reuses) 20-s, 500-Hz files of the independent generator (``independent_telemetry.py``:
2 frozen-flow layers, a pixel-based geometric 4x4 Shack-Hartmann, pseudo-open-loop Noll 2-15 in
rad and the sensor's ``G`` for Noll 2-45) over r0 = 8-20 cm and two slope-noise levels, then fits
each file through fit-r0's own per-file path (:func:`dancekit.commands.fit_r0.fit_loops`) with
the file's G and with the built-in sensor model, L0 fixed at the truth, at the config's 18.9 m, or
fitted, 1000 Monte-Carlo draws. Prints, per setting: the bias of each (r0, noise) cell (mean of
its files, with its standard error), the median |bias| over the cells, the median |error| of single
files, the file-to-file scatter, the mean stated r0_err, and the fraction of files within 2 stated
sigma. Run:

    python tests/ao/validate_fit_r0_independent.py FOLDER --seeds 10 [--json results.json]

(about a minute per file to generate on one core, seconds to fit; files are kept in FOLDER).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import independent_telemetry as generator  # noqa: E402
from dancekit.commands.fit_r0 import FitSettings, fit_loops  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402

TRUE_L0 = 25.0  # m


def settings_table(mc: int) -> dict:
    true_l0 = load_config("naomi", AOConfig, [f"reference.L0={TRUE_L0}"])
    default = load_config("naomi", AOConfig)
    return {
        "G, L0 = truth (25 m)": FitSettings(true_l0, mc_draws=mc),
        "G, L0 = config (18.9 m)": FitSettings(default, mc_draws=mc),
        "G, L0 fitted": FitSettings(default, mc_draws=mc, fit_outer_scale=True),
        "builtin, L0 = truth (25 m)": FitSettings(true_l0, mc_draws=mc, interaction_matrix="builtin"),
        "builtin, L0 = config (18.9 m)": FitSettings(default, mc_draws=mc, interaction_matrix="builtin"),
    }


def make_files(folder: str, r0s, noises, seeds: int, duration: float = 20.0) -> list[tuple]:
    os.makedirs(folder, exist_ok=True)
    sensor = generator.make_sensor()
    files = []
    for i, r0 in enumerate(r0s):
        for j, noise in enumerate(noises):
            for seed in range(seeds):
                path = os.path.join(folder, f"indep_r0{r0:.3f}_n{noise:.3f}_s{seed}.fits")
                if not os.path.exists(path):
                    tel = generator.simulate(r0, TRUE_L0, noise, duration, seed=(1000 * i + 100 * j + seed, 16), sensor=sensor)
                    generator.write_modal(path + ".part", tel)
                    os.replace(path + ".part", path)
                    print(f"wrote {path}", file=sys.stderr, flush=True)
                files.append((r0, noise, path))
    return files


def summarise(label: str, results: list[dict]) -> dict:
    cells = {}
    for r in results:
        cells.setdefault((r["r0_true"], r["noise"]), []).append(r)
    rows, biases = [], []
    for (r0, noise), rs in sorted(cells.items()):
        err = np.array([x["r0"] / r0 - 1 for x in rs])
        biases.append(err.mean())
        rows.append(f"| {100 * r0:.0f} cm | {noise:.2f}\" | {100 * err.mean():+.2f} +- {100 * err.std(ddof=1) / np.sqrt(len(err)):.2f} % "
                    f"| {100 * err.std(ddof=1):.2f} % | {100 * np.mean([x['r0_err'] / r0 for x in rs]):.2f} % |")
    err = np.array([r["r0"] / r["r0_true"] - 1 for r in results])
    sigma = np.array([r["r0_err"] / r["r0_true"] for r in results])
    within = np.mean(np.abs(err) <= 2 * sigma)
    summary = {"setting": label, "median_abs_cell_bias": float(np.median(np.abs(biases))),
               "mean_bias": float(err.mean()), "median_abs_file_error": float(np.median(np.abs(err))),
               "scatter": float(err.std(ddof=1)), "mean_stated_sigma": float(sigma.mean()),
               "within_2_sigma": float(within), "n_files": len(results)}
    print(f"\n### {label}\n")
    print("| r0 | slope noise | bias (mean +- s.e.) | scatter | mean r0_err |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nmedian |cell bias| {100 * summary['median_abs_cell_bias']:.2f} %, mean bias {100 * err.mean():+.2f} %, "
          f"median |file error| {100 * summary['median_abs_file_error']:.2f} %, scatter {100 * summary['scatter']:.2f} %, "
          f"mean stated sigma {100 * summary['mean_stated_sigma']:.2f} %, within 2 sigma {100 * within:.0f} % "
          f"({len(results)} files)")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, default=10, help="files per (r0, noise) cell")
    parser.add_argument("--r0", default="0.08,0.12,0.16,0.20", help="true r0 values, m")
    parser.add_argument("--noise", default="0.03,0.15", help="slope noise levels, arcsec rms")
    parser.add_argument("--mc", type=int, default=1000)
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--json", help="write the per-file results and the summaries here")
    args = parser.parse_args()
    r0s = [float(v) for v in args.r0.split(",")]
    noises = [float(v) for v in args.noise.split(",")]
    files = make_files(args.folder, r0s, noises, args.seeds)
    if args.generate_only:
        return
    sensor = generator.make_sensor()
    snr = {(r0, n): generator.modal_snr(r0, TRUE_L0, n, sensor) for r0 in r0s for n in noises}
    print("modal S/N (Noll 4-15): " + ", ".join(f"r0 {100 * r0:.0f} cm / {n}\": {s:.1f}" for (r0, n), s in snr.items()))
    out = {"files": [], "summaries": []}
    for label, settings in settings_table(args.mc).items():
        results = []
        for k, (r0, noise, path) in enumerate(files):
            rows, errors = fit_loops(path, settings, seed=k)
            row = rows[0]
            results.append({"r0_true": r0, "noise": noise, "file": path, "r0": row["r0"], "r0_err": row["r0_err"],
                            "L0": row["L0"], "L0_flag": row["L0_flag"], "sensor": row["sensor"]})
        out["summaries"].append(summarise(label, results))
        out["files"].append({"setting": label, "results": results})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
