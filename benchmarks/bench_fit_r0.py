"""Benchmark of fit-r0: one 20-s, 500-Hz NAOMI-like AOT file fitted with 1000 Monte-Carlo draws.

Times, in the same run: (1) the whole per-file path of ``dancekit fit-r0``
(:func:`dancekit.commands.fit_r0.fit_file`: aotpy read, pseudo-open-loop modes, noise, remaining
error, iterative fit, Monte Carlo, seeing), first call (covariance tables built) and warm calls;
(2) the bare library fit (:func:`dancekit.ao.fit.estimate_turbulence`) on the same modes; and
(3) the reading alone. Prints seconds and ratios. Issue 6 target: under 1 s on CPU (Turlib needs
~0.7 s per Monte-Carlo draw, i.e. ~700 s for 1000 draws).

Run: python benchmarks/bench_fit_r0.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from timing import best_of  # noqa: E402
from dancekit.commands.fit_r0 import FitSettings, fit_file, fit_noll, pseudo_open_loop  # noqa: E402
from dancekit.io.aot import read_telemetry  # noqa: E402
from dancekit.io.config import load_config  # noqa: E402
from dancekit.io.config_schema import AOConfig  # noqa: E402


def main() -> None:
    from dancekit.ao.fit import estimate_turbulence

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "telemetry.fits")
        env = {**os.environ, "PYTHONPATH": ROOT}
        subprocess.run([sys.executable, "-m", "dancekit", "simulate-telemetry", "--r0", "0.12", "--L0", "25",
                        "--duration", "20", "--framerate", "500", "--snr", "5", "--closed-loop", "--seed", "1",
                        "-q", "-o", path], check=True, env=env)
        cfg = load_config("naomi", AOConfig, ["reference.L0=25"])
        settings = FitSettings(cfg, mc_draws=1000)

        t0 = time.perf_counter()
        first = fit_file(path, settings, seed=1)
        cold = time.perf_counter() - t0
        t_cmd, t_cmd_med, row = best_of(lambda: fit_file(path, settings, seed=1))
        t_read, _, telemetry = best_of(lambda: read_telemetry(path))
        modes, noll, _ = pseudo_open_loop(telemetry, settings)
        kw = dict(noll=noll, diameter=1.8, fit_noll=fit_noll(cfg), outer_scale=25.0, seed=1,
                  max_lag=cfg.fit.noise_lags, noise_degree=cfg.fit.noise_degree,
                  sigma_floor=cfg.fit.sigma_floor, tol=cfg.fit.tolerance)
        t_lib, _, lib = best_of(lambda: estimate_turbulence(modes, n_monte_carlo=1000, **kw))
        t_lib0, _, _ = best_of(lambda: estimate_turbulence(modes, n_monte_carlo=0, **kw))
        fit_l0 = FitSettings(load_config("naomi", AOConfig, ["fit.fit_L0=true"]), mc_draws=1000)
        fit_file(path, fit_l0, seed=1)  # builds the L0 table once
        t_l0, _, row_l0 = best_of(lambda: fit_file(path, fit_l0, seed=1), repeats=3)

    print(f"fit-r0, one 20 s x 500 Hz closed-loop AOT file ({row['n_frames']} frames), 1000 Monte-Carlo draws")
    print(f"  r0 = {row['r0']:.4f} +- {row['r0_err']:.4f} m (true 0.1200), seeing {row['seeing']:.3f} arcsec")
    print(f"  command path, first call (tables built) : {cold:7.3f} s")
    print(f"  command path, warm (best / median of 5) : {t_cmd:7.3f} s / {t_cmd_med:.3f} s")
    print(f"    of which reading the AOT file (aotpy) : {t_read:7.3f} s")
    print(f"  bare library fit, 1000 draws            : {t_lib:7.3f} s")
    print(f"  bare library fit, no Monte Carlo        : {t_lib0:7.3f} s")
    print(f"  ratio command / bare library            : {t_cmd / t_lib:7.2f}")
    print(f"  command path with L0 fitted (ln L0), warm: {t_l0:7.3f} s  (r0 {row_l0['r0']:.4f} m, "
          f"L0 {row_l0['L0']:.1f} m, {row_l0['L0_flag']})")
    print(f"  Monte Carlo cost per draw               : {(t_lib - t_lib0) / 1000 * 1e3:7.3f} ms "
          f"(Turlib ~700 ms: x{0.7 / max((t_lib - t_lib0) / 1000, 1e-9):.0f})")
    print(f"  target < 1 s warm: {'met' if t_cmd < 1.0 else 'NOT met'}; same r0 as library: "
          f"{abs(row['r0'] - lib.r0) < 1e-12 and abs(first['r0'] - lib.r0) < 1e-12}")


if __name__ == "__main__":
    main()
