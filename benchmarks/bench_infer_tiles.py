"""infer-tiles: end-to-end speed against the bare forward pass, and peak memory against T.

1. Speed: a video on disk is inferred end to end (FITS slices read with fitsio, ring buffer,
   per-tile background + Anscombe, batched forward, inverse, blending) and, in the same run,
   the model's bare forward pass is timed on exactly the same tiles (preprocessed beforehand)
   in batches of the same size. Overhead = end-to-end / bare - 1 (goal <= 25 %).
2. Memory: the same inference on a 256 x 256 cube of T = 64 and T = 512 frames, each in a fresh
   process, reporting ru_maxrss and the tracemalloc peak; peak RSS is VmHWM reset after the model is built, (numpy buffers) above the baseline of
   a process that has built the model; peak memory must not grow with T. The estimate for a
   4096 x 4096 x 160 cube (10.7 GB) follows from the measured model of the ring buffer.

Run: python benchmarks/bench_infer_tiles.py [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def write_cube(path: str, n_frames: int, size: int, seed: int = 0) -> None:
    """A Poisson video written frame block by frame block (never whole in memory)."""
    import fitsio

    rng = np.random.default_rng(seed)
    with fitsio.FITS(path, "rw", clobber=True) as out:
        out.create_image_hdu(dims=(n_frames, size, size), dtype=np.float32)
        for start in range(0, n_frames, 16):
            block = rng.poisson(60.0, size=(min(16, n_frames - start), size, size)).astype(np.float32)
            out[0].write(block, start=[start, 0, 0])


def small_model(context: int):
    from dancekit.unet.config import UNetConfig
    from dancekit.unet.model import build_unet

    return build_unet(UNetConfig(in_channels=context), seed=0)


def speed(quick: bool, repeats: int = 2) -> dict:
    import torch

    from dancekit.io.fits_in import FitsReader
    from dancekit.unet.inference import forward_image, infer_video
    from dancekit.unet.preprocess import network_input, network_output_to_electrons
    from dancekit.unet.tiling import TileGrid

    size, context, n_frames, stride, batch = (384, 16, 24, 4, 4) if quick else (512, 32, 44, 4, 9)
    model = small_model(context).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "video.fits")
        write_cube(path, n_frames, size)
        with FitsReader(path) as reader:
            end_to_end = float("inf")
            for _ in range(repeats):  # the best of a few runs: other jobs on shared cores only add time
                start = time.perf_counter()
                result = infer_video(reader.frames, n_frames, (size, size), model, stride=stride, tile=256, batch=batch)
                end_to_end = min(end_to_end, time.perf_counter() - start)
            cube = reader.frames(0, n_frames)
    grid = TileGrid.for_image((size, size), 256, 0.5)
    tiles = []
    for w in range(0, n_frames - context + 1, stride):
        for k in range(grid.n_tiles):
            y0, x0 = grid.position(k)
            tiles.append(cube[w:w + context, y0:y0 + 256, x0:x0 + 256])
    inputs = [network_input(torch.from_numpy(np.stack(tiles[i:i + batch])))[0] for i in range(0, len(tiles), batch)]
    with torch.inference_mode():
        bare = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for x in inputs:
                network_output_to_electrons(forward_image(model, x))
            bare = min(bare, time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(0, len(tiles), batch):
            network_input(torch.from_numpy(np.stack(tiles[i:i + batch])), overwrite=True)  # as infer_video
        preprocess = time.perf_counter() - start
    n_tiles = result.tiles_processed
    return {"image": f"{size}x{size}", "frames": n_frames, "context": context, "stride": stride, "batch": batch, "repeats": repeats,
            "windows": result.n_windows, "tiles": n_tiles, "torch_threads": torch.get_num_threads(),
            "end_to_end_s": end_to_end, "bare_forward_s": bare, "preprocess_only_s": preprocess,
            "frames_per_s": n_frames / end_to_end, "tiles_per_s": n_tiles / end_to_end,
            "bare_tiles_per_s": n_tiles / bare, "overhead": end_to_end / bare - 1}


def memory_child(path: str, n_frames: int, context: int, stride: int, tile: int) -> None:
    """Run in a fresh process: print baseline and peak memory as JSON."""
    import tracemalloc

    import torch

    from dancekit.io.fits_in import FitsReader
    from dancekit.unet.inference import infer_video

    torch.set_num_threads(1)
    model = small_model(context).eval()
    baseline = _status_kb("VmRSS")
    _reset_peak_rss()
    tracemalloc.start()
    with FitsReader(path) as reader:
        info = reader.image_info(None, 3)
        infer_video(reader.frames, n_frames, info.shape[1:], model, stride=stride, tile=tile, batch=1, average=True)
    _, traced_peak = tracemalloc.get_traced_memory()
    peak = _status_kb("VmHWM")
    print(json.dumps({"baseline_mb": baseline / 1024, "peak_mb": peak / 1024, "traced_peak_mb": traced_peak / 2**20}))


def _status_kb(key: str) -> float:
    """VmRSS / VmHWM of this process [kB] (Linux; ru_maxrss would include the forking parent's RSS)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def memory(quick: bool) -> list[dict]:
    size, context, stride = 256, 32, 32
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n_frames in ((64, 256) if quick else (64, 512)):
            path = os.path.join(folder, f"video{n_frames}.fits")
            write_cube(path, n_frames, size, seed=n_frames)
            code = f"import sys; sys.path.insert(0, {ROOT!r}); import bench_infer_tiles as b; " \
                   f"b.memory_child({path!r}, {n_frames}, {context}, {stride}, 256)"
            env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "benchmarks") + os.pathsep + ROOT}
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(frames=n_frames, file_mb=os.path.getsize(path) / 2**20, context=context, image=f"{size}x{size}")
            rows.append(row)
    return rows


def ring_estimate_gb(size: int, context: int, batch: int, tile: int = 256) -> float:
    """Ring (context frames, float32) + a batch of tiles (float32, x3 for input, Anscombe, copies)
    + accumulators (image and background float64, mean float64 + count int64)."""
    ring = 4 * context * size * size
    batch_bytes = 3 * 4 * batch * context * tile * tile
    accumulators = (8 + 8 + 8 + 8) * size * size
    return (ring + batch_bytes + accumulators) / 1e9


def main() -> None:
    quick = "--quick" in sys.argv
    s = speed(quick)
    print(f"speed ({s['image']}, T={s['frames']}, context {s['context']}, stride {s['stride']}, batch {s['batch']}, "
          f"{s['windows']} windows x {s['tiles'] // s['windows']} tiles, {s['torch_threads']} torch threads, best of {s['repeats']})")
    print(f"  end to end    {s['end_to_end_s']:8.2f} s   {s['frames_per_s']:7.2f} frames/s   {s['tiles_per_s']:7.2f} tiles/s")
    print(f"  bare forward  {s['bare_forward_s']:8.2f} s                    {s['bare_tiles_per_s']:7.2f} tiles/s")
    print(f"  preprocess    {s['preprocess_only_s']:8.2f} s   (background + Anscombe alone, same tiles)")
    print(f"  overhead of tiling, preprocessing, blending and I/O: {100 * s['overhead']:.1f} % (goal <= 25 %)")
    rows = memory(quick)
    print("peak memory against T (fresh process each; baseline = after imports and building the model; --average on)")
    for r in rows:
        print(f"  {r['image']} T={r['frames']:4d} ({r['file_mb']:6.1f} MB on disk): peak RSS {r['peak_mb']:7.1f} MB "
              f"(baseline {r['baseline_mb']:6.1f}, +{r['peak_mb'] - r['baseline_mb']:5.1f}); tracemalloc peak {r['traced_peak_mb']:6.1f} MB")
    growth = (rows[1]["peak_mb"] - rows[0]["peak_mb"]) / max(rows[0]["peak_mb"] - rows[0]["baseline_mb"], 1e-9)
    print(f"  growth of the increment from T={rows[0]['frames']} to T={rows[1]['frames']}: {100 * growth:.1f} %"
          f" (file grew x{rows[1]['file_mb'] / rows[0]['file_mb']:.0f})")
    print(f"  numpy buffers predicted for 256^2, context 32, batch 1: {1e3 * ring_estimate_gb(256, 32, 1):.0f} MB "
          "(the rest of the increment is torch's activations for one tile, also independent of T)")
    print(f"  extrapolated, 4096x4096x160 (10.7 GB on disk), context 64, batch 8: "
          f"{ring_estimate_gb(4096, 64, 8):.1f} GB whatever T")


if __name__ == "__main__":
    main()
