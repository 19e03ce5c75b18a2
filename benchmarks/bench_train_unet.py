"""Training speed of the U-Net: samples/s of the whole step against the bare network step.

For the default (small) and the paper-size network, at the C2PU settings (64 frames, 256-pixel
tiles), one loop times alternately, per step (medians):
  * full  - what ``Trainer.run`` does: windows read from FITS videos on disk, augmentation,
            background + Anscombe (``preprocess``), forward, deep-supervision loss, backward, Adam;
  * bare  - forward + loss + backward + Adam on the same batch, already in memory and preprocessed;
  * read  - reading + augmenting the batch; prep - its background + Anscombe.
overhead = full / bare (1.0: data handling costs nothing).

    python benchmarks/bench_train_unet.py [--steps N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from astropy.io import fits
from scipy.special import erf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dancekit.io.training_videos import open_training_video  # noqa: E402
from dancekit.io.video import write_video  # noqa: E402
from dancekit.sky.noise import add_noise, mag_to_rate  # noqa: E402
from dancekit.sky.star_fields import homogeneous_field  # noqa: E402
from dancekit.unet.config import UNetConfig  # noqa: E402
from dancekit.unet.data import TrainingSamples  # noqa: E402
from dancekit.unet.losses import deep_supervision_mse  # noqa: E402
from dancekit.unet.model import build_unet, count_parameters  # noqa: E402
from dancekit.unet.preprocess import network_input, network_target  # noqa: E402
from dancekit.unet.training import Trainer, TrainingSettings  # noqa: E402


def star_image(shape, x, y, flux, sigma):
    def profile(n, centre):
        edges = np.arange(n + 1)[None, :] - 0.5 - np.asarray(centre)[:, None]
        return 0.5 * np.diff(erf(edges / (np.sqrt(2) * sigma)), axis=1)
    return np.einsum("n,nh,nw->hw", flux, profile(shape[0], y), profile(shape[1], x))


def write_toy_videos(folder: str, n: int, n_frames: int, size: int) -> list[str]:
    """Toy training videos: jittered, blurred stars + sky + Poisson/read noise [e-] with TRUTH."""
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        field = homogeneous_field((size, size), rng, n_stars=200, mag_min=12.0, mag_max=19.0)
        flux = mag_to_rate(field.mag, 24.6) * 0.19
        frames = [add_noise(star_image((size, size), field.x + dx, field.y + dy, flux, 2.0) + 20.0, rng, 1.0)
                  for dx, dy in rng.normal(0, 1.0, (n_frames, 2))]
        path = os.path.join(folder, f"toy{i}.fits")
        write_video(path, np.array(frames), fits.Header({"BUNIT": "electron"}),
                    star_image((size, size), field.x, field.y, flux, 0.8))
        paths.append(path)
    return paths


def time_steps(config, sources, context, tile, batch, steps) -> dict[tuple[int, str], float]:
    """Median seconds per step, measured alternately in one loop so that the machine's load
    affects both alike (the first step of each kind is a warm-up and is dropped):
    read (windows from disk + augmentation), prep (background + Anscombe), full (read +
    ``Trainer.train_step``, i.e. prep + forward + loss + backward + Adam), bare (forward + loss +
    backward + Adam on the same batch, already preprocessed)."""
    settings = TrainingSettings(context=context, tile=tile, batch=batch, steps=steps + 1, seed=0)
    samples = TrainingSamples(sources, context, tile, 0)
    trainer = Trainer(build_unet(config), samples, None, settings)
    times: dict[str, list[float]] = {}
    for step in range(steps + 1):
        marks = [_now()]
        pairs = [samples.sample(0, step * batch + j) for j in range(batch)]
        frames, truth = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        marks.append(_now())
        trainer.train_step(frames, truth)
        marks.append(_now())
        inputs, _ = network_input(frames)
        target = network_target(truth)
        marks.append(_now())
        trainer.optimizer.zero_grad(set_to_none=True)
        deep_supervision_mse(trainer.model(inputs), target).backward()
        trainer.optimizer.step()
        marks.append(_now())
        for clock in (0, 1):
            for key, (a, b) in {"read": (0, 1), "full": (0, 2), "prep": (2, 3), "bare": (3, 4)}.items():
                times.setdefault((clock, key), []).append(marks[b][clock] - marks[a][clock])
    return {key: float(np.median(values[1:])) for key, values in times.items()}


def _now() -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds): CPU time is what the step costs whatever else
    runs on the machine; wall time is what a user waits."""
    return time.process_time(), time.perf_counter()

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--quick", action="store_true", help="32 frames, 128-pixel tiles")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = one core's work)")
    args = parser.parse_args()
    context, tile = (32, 128) if args.quick else (64, 256)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; context {context}, tile {tile}, "
          f"{args.steps} timed steps (medians)")
    with tempfile.TemporaryDirectory() as folder:
        sources = [open_training_video(p, 1.0) for p in write_toy_videos(folder, 4, context + 8, tile + 32)]
        print("samples/s from CPU time (the machine may be shared); overhead = full / bare step time")
        print(f"{'model':<8}{'params':>12}{'batch':>7}{'full [samples/s]':>18}{'bare [samples/s]':>18}"
              f"{'read [s/batch]':>16}{'prep [s/batch]':>16}{'overhead':>10}{'wall overhead':>15}")
        for name, config, batch in [("small", UNetConfig(in_channels=context), 2),
                                    ("paper", UNetConfig.paper(in_channels=context), 1)]:
            t = time_steps(config, sources, context, tile, batch, args.steps)
            print(f"{name:<8}{count_parameters(build_unet(config)):>12,}{batch:>7}{batch / t[0, 'full']:>18.3f}"
                  f"{batch / t[0, 'bare']:>18.3f}{t[0, 'read']:>16.3f}{t[0, 'prep']:>16.3f}"
                  f"{t[0, 'full'] / t[0, 'bare']:>10.2f}{t[1, 'full'] / t[1, 'bare']:>15.2f}")

if __name__ == "__main__":
    main()
