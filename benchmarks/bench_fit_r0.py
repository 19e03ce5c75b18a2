"""Benchmark of fit-r0: 20-s, 500-Hz telemetry files fitted with 1000 Monte-Carlo draws.

Times, in the same run, the whole per-file path of ``dancekit fit-r0``
(:func:`dancekit.commands.fit_r0.fit_loops`: read, pseudo-open-loop modes, noise, remaining error,
iterative fit, Monte Carlo, seeing, per-mode evidence), warm (tables built), on:

* a closed-loop AOT file of ``simulate-telemetry`` with the built-in sensor model;
* an independent modal FITS with its own interaction matrix ``G`` (Noll 2-45), L0 fixed and fitted;

against the baselines of the same run: the bare library fit of the same modes with the paper's
per-radial-order Monte Carlo (eq. 21), and the reading of the file alone. Issue 16 target: under
1 s per file with 1000 draws (Turlib: ~0.7 s per draw).

Run: python benchmarks/bench_fit_r0.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "ao"))

from timing import best_of  # noqa: E402
from dancekit.commands.fit_r0 import FitSettings, fit_loops, fit_noll, pseudo_open_loop  # noqa: E402
from dancekit.io.aot import read_telemetry  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402


def main() -> None:
    import independent_telemetry as generator
    from dancekit.ao.fit import estimate_turbulence

    with tempfile.TemporaryDirectory() as tmp:
        aot = os.path.join(tmp, "telemetry.fits")
        env = {**os.environ, "PYTHONPATH": ROOT}
        subprocess.run([sys.executable, "-m", "dancekit", "simulate-telemetry", "--r0", "0.12", "--L0", "25",
                        "--duration", "20", "--framerate", "500", "--snr", "5", "--closed-loop", "--seed", "1",
                        "-q", "-o", aot], check=True, env=env)
        modal = os.path.join(tmp, "independent.fits")
        generator.write_modal(modal, generator.simulate(0.12, 25.0, 0.05, 20.0, seed=1))
        cfg = load_config("naomi", AOConfig, ["reference.L0=25"])
        settings = FitSettings(cfg, mc_draws=1000)

        t0 = time.perf_counter()
        fit_loops(aot, settings, seed=1)
        cold = time.perf_counter() - t0
        t_aot, t_aot_med, (rows, _) = best_of(lambda: fit_loops(aot, settings, seed=1))
        t_read, _, (loops, _) = best_of(lambda: read_telemetry(aot))
        modes, noll, _ = pseudo_open_loop(loops[0], settings)
        kw = dict(noll=noll, diameter=1.8, fit_noll=fit_noll(cfg), outer_scale=25.0, seed=1, n_monte_carlo=1000,
                  max_lag=cfg.fit.noise_lags, noise_degree=cfg.fit.noise_degree, sigma_floor=cfg.fit.sigma_floor,
                  tol=cfg.fit.tolerance)
        t_lib, _, lib = best_of(lambda: estimate_turbulence(modes, mc_spread="orders", **kw))
        t_blocks, _, _ = best_of(lambda: estimate_turbulence(modes, **kw))
        fit_loops(modal, settings, seed=1)
        t_g, _, (rows_g, _) = best_of(lambda: fit_loops(modal, settings, seed=1))
        fit_l0 = FitSettings(cfg, mc_draws=1000, fit_outer_scale=True)
        fit_loops(modal, fit_l0, seed=1)  # builds the L0 table of this G once
        t_l0, _, (rows_l0, _) = best_of(lambda: fit_loops(modal, fit_l0, seed=1), repeats=3)

    row, row_g, row_l0 = rows[0], rows_g[0], rows_l0[0]
    print("fit-r0 per file, 20 s x 500 Hz, 1000 Monte-Carlo draws (time-block spread), warm, best of 5")
    print(f"  closed-loop AOT, built-in sensor model     : {t_aot:7.3f} s (median {t_aot_med:.3f} s, first call {cold:.3f} s)"
          f"  r0 = {row['r0']:.4f} +- {row['r0_err']:.4f} m (true 0.1200)")
    print(f"  independent modal FITS, its own G          : {t_g:7.3f} s  r0 = {row_g['r0']:.4f} +- {row_g['r0_err']:.4f} m")
    print(f"  same, L0 fitted                            : {t_l0:7.3f} s  L0 = {row_l0['L0']:.1f} m "
          f"[{row_l0['L0_lo']:.1f}, {row_l0['L0_hi']:.1f}] ({row_l0['L0_flag']})")
    print("baselines of this run")
    print(f"  bare library fit, paper's Monte Carlo      : {t_lib:7.3f} s")
    print(f"  bare library fit, time-block Monte Carlo   : {t_blocks:7.3f} s")
    print(f"  reading the AOT file alone (aotpy)         : {t_read:7.3f} s")
    print("ratios")
    print(f"  AOT command path / bare library (paper MC) : {t_aot / t_lib:7.2f}")
    print(f"  AOT command path / reading the file        : {t_aot / t_read:7.2f}")
    print(f"  time-block / paper Monte Carlo (library)   : {t_blocks / t_lib:7.2f}")
    print(f"  modal + G / AOT built-in                   : {t_g / t_aot:7.2f}")
    print(f"  L0 fitted / L0 fixed (modal + G)           : {t_l0 / t_g:7.2f}")
    worst = max(t_aot, t_g, t_l0)
    print(f"  target < 1 s per file: {'met' if worst < 1.0 else 'NOT met'} (slowest {worst:.3f} s); "
          f"same r0 as the library: {abs(row['r0'] - lib.r0) < 1e-12}")


if __name__ == "__main__":
    main()
