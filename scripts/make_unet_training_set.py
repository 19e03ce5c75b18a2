#!/usr/bin/env python
"""Training videos for the bundled C2PU U-Net (dancekit/weights/c2pu_default.pt), as `make weights` makes them.

Each video's scene is drawn from the training mix of ``dancekit.sky.training_mix`` (random and
dense fields, King and Plummer clusters placed anywhere, seeing 0.7-1.6", 2 or 4 sub-steps,
geometric or Fresnel, sky 18.5-21.5 mag/arcsec²) with ``numpy.random.default_rng(seed)``; its stars go to
``simulate-video --catalog`` and the video gets the same seed, so video ``seed`` is the same
whoever makes it and in whatever order. Existing videos are kept (the set can be grown or resumed).

Usage: scripts/make_unet_training_set.py OUTDIR N_VIDEOS [FIRST_SEED] [--size 144] [--frames 40] [--jobs 2]
The dancekit executable is $DANCEKIT (default: dancekit on the PATH).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits

from dancekit.sky.training_mix import draw_training_scene


def make_video(out: Path, seed: int, size: int, frames: int, dancekit: str, env: dict) -> str:
    target = out / f"train_{seed}.fits"
    if target.exists():
        return f"{target.name}: kept"
    scene = draw_training_scene((size, size), np.random.default_rng(seed))
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        catalogue = Path(tmp) / "stars.fits"
        columns = [fits.Column(name=n, format="D", array=a) for n, a in
                   (("x", scene.field.x), ("y", scene.field.y), ("mag", scene.field.mag))]
        fits.BinTableHDU.from_columns(columns).writeto(catalogue)
        subprocess.run([*dancekit.split(), "simulate-video", "--frames", str(frames), "--size", str(size),
                        "--catalog", str(catalogue), "--seeing", f"{scene.seeing:.4f}",
                        "--propagation", scene.propagation, "--set", f"atmosphere.substeps={scene.substeps}", "--set", f"sky.background={scene.sky:.3f}",
                        "--seed", str(seed), "-o", str(target), "-q"], check=True, env=env)
    return (f"{target.name}: {scene.kind}, {len(scene.field)} stars, seeing {scene.seeing:.2f}\", "
            f"{scene.substeps} sub-steps, {scene.propagation}, sky {scene.sky:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("n", type=int)
    parser.add_argument("first_seed", type=int, nargs="?", default=10000)
    parser.add_argument("--size", type=int, default=144, help="frame side [px] (default 144: 128-px crops with room to move)")
    parser.add_argument("--frames", type=int, default=40, help="frames per video (default 40 = 7.6 s)")
    parser.add_argument("--jobs", type=int, default=2, help="videos simulated at once")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dancekit = os.environ.get("DANCEKIT", "dancekit")
    seeds = range(args.first_seed, args.first_seed + args.n)
    env = dict(os.environ, OMP_NUM_THREADS="1") if args.jobs > 1 else dict(os.environ)  # one core per video
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda s: make_video(out, s, args.size, args.frames, dancekit, env), seeds):
            print(line, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
