"""Validate ``fit-r0`` on telemetry it did not make (issue 16): r0 bias and honest uncertainties.

Writes (or reuses) 20-s, 500-Hz files over r0 = 8-20 cm and two noise levels, from either

* the independent generator (``--generator independent``, the default; ``independent_telemetry.py``:
  2 frozen-flow layers, a pixel-based geometric 4x4 Shack-Hartmann, pseudo-open-loop Noll 2-15 in rad
  and the sensor's ``G`` for Noll 2-45; true L0 25 m), or
* dancekit's own ``simulate-telemetry`` (``--generator own``: 9-layer moving screens, closed loop,
  AOT; true L0 ``--L0``, default 25 m; its sensor's G for Noll 2-45 is built from the simulator's
  slope operator and given to fit-r0 as --interaction-matrix would),

then fits each file through fit-r0's own per-file path (:func:`dancekit.commands.fit_r0.fit_loops`,
1000 Monte-Carlo draws) with the sensor's G and with the built-in sensor model, each with the
default options (fit.L0_mode auto: L0 fitted with G, held at reference.L0 = 18.9 m with the
built-in model) and with the other L0 choices (fitted, held at 18.9 m, held at the truth). Prints,
per setting: the bias of each (r0, noise) cell (mean of its files, with its standard error), the
median |bias| over the cells, the median |error| of single files, the file-to-file scatter, the
mean stated r0_err and its parts (Monte Carlo, sensor model, L0), and the fraction of files within
2 stated sigma. Run:

    python tests/ao/validate_fit_r0_independent.py FOLDER --seeds 10 [--json results.json]
    python tests/ao/validate_fit_r0_independent.py FOLDER_OWN --generator own --seeds 5

(about a minute per file to generate on one core, seconds to fit; files are kept in FOLDER).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import independent_telemetry as generator  # noqa: E402
from dancekit.commands.fit_r0 import FitSettings, fit_loops  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402

TRUE_L0 = 25.0  # m
DEFAULTS = ("G, default options (L0 fitted)", "builtin, default options (L0 held at 18.9 m)")


def settings_table(mc: int, true_l0: float = TRUE_L0, matrix=None) -> dict:
    """The fit-r0 settings compared, by label; ``matrix`` the sensor's G when the file lacks it."""
    truth = load_config("naomi", AOConfig, [f"reference.L0={true_l0}"])
    default = load_config("naomi", AOConfig)
    return {
        DEFAULTS[0]: FitSettings(default, mc_draws=mc, interaction_matrix=matrix),
        "G, L0 held at 18.9 m": FitSettings(default, mc_draws=mc, interaction_matrix=matrix, fit_outer_scale=False),
        f"G, L0 held at the truth ({true_l0:g} m)": FitSettings(truth, mc_draws=mc, interaction_matrix=matrix,
                                                               fit_outer_scale=False),
        DEFAULTS[1]: FitSettings(default, mc_draws=mc, interaction_matrix="builtin"),
        "builtin, L0 fitted": FitSettings(default, mc_draws=mc, interaction_matrix="builtin", fit_outer_scale=True),
        f"builtin, L0 held at the truth ({true_l0:g} m)": FitSettings(truth, mc_draws=mc, interaction_matrix="builtin"),
    }


def make_files(folder: str, r0s, noises, seeds: int, duration: float = 20.0) -> list[tuple]:
    """Independent-generator files: (r0, slope noise [arcsec], path)."""
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


def make_own_files(folder: str, r0s, snrs, seeds: int, outer_scale: float, duration: float = 20.0) -> list[tuple]:
    """simulate-telemetry files (closed loop, phase screens): (r0, modal S/N, path)."""
    from dancekit.commands.simulate_telemetry import TelemetryFormat, simulate_telemetry

    os.makedirs(folder, exist_ok=True)
    files = []
    for r0 in r0s:
        for snr in snrs:
            for seed in range(seeds):
                path = os.path.join(folder, f"own_L{outer_scale:g}_r{r0:.2f}_snr{snr:g}_s{seed}.fits")
                if not os.path.exists(path):
                    simulate_telemetry(output=path + ".part.fits", config="naomi", overrides=None, r0=r0,
                                       outer_scale=outer_scale, duration=duration, framerate=None, snr=snr,
                                       slope_noise=None, closed_loop=True, gain=None, delay=None, wind=None, airmass=1.0,
                                       monitor_seeing=None, file_format=TelemetryFormat.aot, model=None,
                                       seed=int(round(1000 * outer_scale + 10000 * r0 + 10 * snr + seed)), overwrite=True,
                                       as_json=False, quiet=True, verbose=0, debug=False)
                    os.replace(path + ".part.fits", path)
                    print(f"wrote {path}", file=sys.stderr, flush=True)
                files.append((r0, snr, path))
    return files


def own_interaction_matrix():
    """The G (Noll 2-45) of simulate-telemetry's sensor: its slope operator on the sampled modes."""
    from dancekit.ao.telemetry_screens import pupil_operators
    from dancekit.io.interaction_matrix import interaction_from_array

    cfg = load_config("naomi", AOConfig)
    ops = pupil_operators(tuple(range(2, 46)), cfg.telescope.diameter, cfg.wavefront_sensor.lenslets,
                          cfg.telescope.obstruction, cfg.simulation.samples_per_subaperture)
    return interaction_from_array(ops.slopes @ ops.zernike, "simulate-telemetry's sensor", noll_min=2)


def summarise(label: str, results: list[dict], quiet: bool = False) -> dict:
    cells = {}
    for r in results:
        cells.setdefault((r["r0_true"], r["noise"]), []).append(r)
    rows, biases = [], []
    for (r0, noise), rs in sorted(cells.items()):
        err = np.array([x["r0"] / r0 - 1 for x in rs])
        biases.append(err.mean())
        scatter = err.std(ddof=1) if len(err) > 1 else np.nan
        rows.append(f"| {100 * r0:.0f} cm | {noise:g} | {100 * err.mean():+.2f} +- {100 * scatter / np.sqrt(len(err)):.2f} % "
                    f"| {100 * scatter:.2f} % | {100 * np.mean([x['r0_err'] / r0 for x in rs]):.2f} % |")
    err = np.array([r["r0"] / r["r0_true"] - 1 for r in results])
    sigma = np.array([r["r0_err"] / r["r0_true"] for r in results])
    parts = {k: float(np.mean([r[k] / r["r0_true"] for r in results])) for k in ("r0_err_mc", "r0_err_sys", "r0_err_L0")}
    within = np.mean(np.abs(err) <= 2 * sigma)
    summary = {"setting": label, "median_abs_cell_bias": float(np.median(np.abs(biases))),
               "mean_bias": float(err.mean()), "median_abs_file_error": float(np.median(np.abs(err))),
               "scatter": float(err.std(ddof=1)), "mean_stated_sigma": float(sigma.mean()), "mean_sigma_parts": parts,
               "within_2_sigma": float(within), "n_files": len(results)}
    if not quiet:
        print(f"\n### {label}\n")
        print("| r0 | noise | bias (mean +- s.e.) | scatter | mean r0_err |\n|---|---|---|---|---|")
        print("\n".join(rows))
        print(f"\nmedian |cell bias| {100 * summary['median_abs_cell_bias']:.2f} %, mean bias {100 * err.mean():+.2f} %, "
              f"median |file error| {100 * summary['median_abs_file_error']:.2f} %, scatter {100 * summary['scatter']:.2f} %, "
              f"mean stated sigma {100 * summary['mean_stated_sigma']:.2f} % (Monte Carlo {100 * parts['r0_err_mc']:.2f}, "
              f"sensor model {100 * parts['r0_err_sys']:.2f}, L0 {100 * parts['r0_err_L0']:.2f}), "
              f"within 2 sigma {100 * within:.0f} % ({len(results)} files)")
    return summary


def fit_all(files: list[tuple], mc: int, matrix=None, labels=None, quiet: bool = False) -> dict:
    """Fit every file under every setting: {"files": per-file rows, "summaries": per setting}."""
    tables = {}
    out = {"files": [], "summaries": []}
    results: dict = {}
    for k, (r0, noise, path) in enumerate(files):
        true_l0 = float(fits.getheader(path).get("SIML0", TRUE_L0))
        if true_l0 not in tables:
            tables[true_l0] = settings_table(mc, true_l0, matrix)
        for label, settings in tables[true_l0].items():
            generic = label.replace(f"({true_l0:g} m)", "").strip()
            if labels is not None and generic not in labels:
                continue
            row = fit_loops(path, settings, seed=k)[0][0]
            results.setdefault(generic, []).append(
                {"r0_true": r0, "noise": noise, "file": path, "true_L0": true_l0, "L0_flag": row["L0_flag"],
                 "sensor": row["sensor"], **{key: row[key] for key in ("r0", "r0_err", "r0_err_mc", "r0_err_sys", "r0_err_L0", "L0")}})
    for label, rows in results.items():
        out["summaries"].append(summarise(label, rows, quiet))
        out["files"].append({"setting": label, "results": rows})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--generator", choices=("independent", "own"), default="independent")
    parser.add_argument("--seeds", type=int, default=10, help="files per (r0, noise) cell")
    parser.add_argument("--r0", default="0.08,0.12,0.16,0.20", help="true r0 values, m")
    parser.add_argument("--noise", default=None, help="slope noise levels, arcsec rms (independent; default 0.03,0.15) "
                                                      "or modal S/N (own; default 25,2)")
    parser.add_argument("--L0", default="25", help="true L0 values of the own generator's files, m")
    parser.add_argument("--mc", type=int, default=1000)
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--json", help="write the per-file results and the summaries here")
    args = parser.parse_args()
    r0s = [float(v) for v in args.r0.split(",")]
    own = args.generator == "own"
    noises = [float(v) for v in (args.noise or ("25,2" if own else "0.03,0.15")).split(",")]
    if own:
        files = [f for l0 in args.L0.split(",") for f in make_own_files(args.folder, r0s, noises, args.seeds, float(l0))]
    else:
        files = make_files(args.folder, r0s, noises, args.seeds)
    if args.generate_only:
        return
    if not own:
        sensor = generator.make_sensor()
        snr = {(r0, n): generator.modal_snr(r0, TRUE_L0, n, sensor) for r0 in r0s for n in noises}
        print("modal S/N (Noll 4-15): " + ", ".join(f"r0 {100 * r0:.0f} cm / {n}\": {s:.1f}" for (r0, n), s in snr.items()))
    out = fit_all(files, args.mc, own_interaction_matrix() if own else None)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
