"""Benchmark of --scheduler: the same command in process and on a local Dask cluster of 2 workers.

Times, in the same run, through the real command line (``python -m dancekit``, start-up included):
(1) ``simulate-video --count 8`` of small videos in process, then with ``--scheduler local:2``; the
speed-up (issue 14 goal: >= 1.7x on 2 cores) and the cluster's start and stop, timed alone; (2) the
per-task overhead of the Dask path for tiny tasks: ``average`` over 8 and 64 tiny cubes each way,
overhead = the extra wall time per task on local:2 over in process, from the slope between the two
counts (so start-up is left out; goal: <= 50 ms). The load average is printed beside each timing: on a
shared machine the ratio means something only when it is low; the CPU seconds (workers included) say
what the Dask path costs in work whatever the load.

Run: python benchmarks/bench_scheduler.py [--videos 8] [--frames 24] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def dancekit(*args: str, cwd: str) -> float:
    """Wall seconds of one command (it must succeed); its CPU seconds, workers included, go to CPU[args]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dancekit", *args, "-q"], cwd=cwd, env=ENV, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[args] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall


CPU: dict = {}


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def cluster_start_and_stop() -> float:
    """Seconds to start and stop a LocalCluster of 2 workers the way the command does."""
    code = ("import time, logging\nfrom distributed import Client, LocalCluster\nt = time.perf_counter()\n"
            "c = LocalCluster(n_workers=2, threads_per_worker=1, host='127.0.0.1', dashboard_address=None, "
            "silence_logs=logging.CRITICAL)\nClient(c).close(); c.close()\nprint(time.perf_counter() - t)\n")
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, check=True, text=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=64)
    options = parser.parse_args()
    video = ["simulate-video", "--count", str(options.videos), "--frames", str(options.frames), "--size",
             str(options.size), "--stars", "40", "--seeing", "1.2", "--propagation", "geometric", "--seed", "1"]
    print(f"machine: {os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        here = dancekit(*video, "-o", "here", cwd=tmp)
        print(f"simulate-video --count {options.videos} ({options.frames} frames of {options.size}^2) "
              f"in process: {here:.1f} s, {CPU[(*video, '-o', 'here')]:.1f} CPU s ({load()})")
        dask = dancekit(*video, "-o", "dask", "--scheduler", "local:2", cwd=tmp)
        print(f"same with --scheduler local:2: {dask:.1f} s, {CPU[(*video, '-o', 'dask', '--scheduler', 'local:2')]:.1f} "
              f"CPU s, workers included ({load()})")
        start = cluster_start_and_stop()
        print(f"  of which the local cluster's start and stop: {start:.1f} s")
        print(f"speed-up local:2 / in process: {here / dask:.2f}x (goal >= 1.7x); "
              f"without the cluster's start: {here / max(dask - start, 1e-9):.2f}x")

        from astropy.io import fits

        cubes = Path(tmp, "cubes")
        cubes.mkdir()
        for i in range(64):
            fits.PrimaryHDU(np.full((3, 8, 8), i, np.float32)).writeto(cubes / f"c{i:02d}.fits")
        timings = {}
        for where, extra in (("in process", []), ("local:2", ["--scheduler", "local:2"])):
            for n in (8, 64):
                out = Path(tmp, f"avg_{n}_{len(extra)}")
                out.mkdir()
                inputs = [str(cubes / f"c{i:02d}.fits") for i in range(n)]
                timings[where, n] = dancekit("average", *inputs, "-o", str(out), *extra, cwd=tmp)
            slope = (timings[where, 64] - timings[where, 8]) / 56
            print(f"average of tiny cubes {where}: 8 in {timings[where, 8]:.2f} s, 64 in {timings[where, 64]:.2f} s, "
                  f"{1000 * slope:.1f} ms per task ({load()})")
        overhead = ((timings["local:2", 64] - timings["local:2", 8]) - (timings["in process", 64] - timings["in process", 8])) / 56
        print(f"per-task overhead of the Dask path: {1000 * overhead:.1f} ms (goal <= 50 ms)")


if __name__ == "__main__":
    main()
