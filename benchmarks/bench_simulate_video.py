"""Benchmark of simulate-video: PSFs per second against the bare FFT floor, and whole videos.

1. PSFs per second (one star in one frame is one PSF) for the C2PU setup of issue 3 — pupil grid
   n = 128, oversampling 4, the config's 3 layers (0, 2 and 10 km) at its median seeing, 4
   sub-steps per frame — in both propagation modes, through ``render_frame`` (screen sampling,
   propagation, PSFs, pixel integration, scatter into the image). Next to it, in the same run and
   with the same batch sizes (render_frame's default, then 256 windows), the bare batched torch FFTs that this work needs: per window
   (star x sub-step) one n x n complex FFT for the PSF plus, in Fresnel mode, a forward and an
   inverse one per propagation step (2 steps: 10 -> 2 km -> ground), and per star one n x n real
   FFT (pixel integration). Pipeline and floor are timed alternately; the minimum of the repeats
   is kept (the machine is shared: ratios from the same run are what count), by wall clock and by
   the process's CPU time (less sensitive to other jobs on the machine). Issue 3's goal: ratio
   <= 1.5. Then the same in a finite band (SDSS r, 3 wavelengths, ``render_band_frame``): the
   floor is 3x the window FFTs (one pupil grid per wavelength) and one real FFT per star.
2. Wall time and peak memory (ru_maxrss of a fresh process per case) of ``simulate_frames`` +
   ``simulate_truth`` (the library work of ``dancekit simulate-video``; noise and FITS writing
   are not included) for the paper's training unit (256 x 256, 64 frames, 1000 stars) and the
   M92 scale (1024 x 1024, 160 frames, 12 000 stars, King cluster). Screens are always made for
   the whole video; when only the first frames are rendered (M92, or ``--quick``) the frame time is
   extrapolated linearly to all frames, and the memory by the frames not yet written, and the
   printout says so.

Run: python benchmarks/bench_simulate_video.py [--quick] [--threads N] [--m92-frames K]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SEEING = 1.06  # arcsec at 500 nm: the C2PU config's median
SEED = 1


def c2pu():
    from dancekit.io.config import load_config
    from dancekit.io.config_schema import VideoConfig
    from dancekit.sky import atmosphere_draw as atm
    from dancekit.sky.video import VideoOptics

    cfg = load_config("c2pu", VideoConfig)
    profile = [atm.LayerSpec(layer.altitude, layer.cn2_fraction, layer.wind_speed, layer.wind_speed_sigma,
                             layer.wind_direction, layer.L0) for layer in cfg.atmosphere.layers]
    atmosphere = atm.draw_atmosphere(profile, np.random.default_rng(SEED), SEEING, 0.0, seeing=SEEING)

    def optics(mode):
        return VideoOptics(cfg.telescope.aperture, cfg.telescope.obstruction, cfg.optics.wavelength,
                           atm.ARCSEC * cfg.camera.pixel_scale, cfg.camera.exposure, 1 / cfg.camera.frame_rate,
                           cfg.atmosphere.substeps, mode, cfg.optics.oversampling)

    return cfg, atmosphere, optics


# ---------------------------------------------------------------- 1. PSFs per second vs FFT floor

def psf_setup(stars: int, n: int = 128, oversampling: int = 4, n_wavelengths: int = 1):
    from dancekit.optics.frozen_flow import make_layer_screen
    from dancekit.optics.imaging import pixel_to_field_angle
    from dancekit.optics.psf import pupil_sampling
    from dancekit.optics.pupil import annular_pupil, tukey_incident_wave
    from dancekit.optics.spectrum import band_channels, band_wavelengths

    cfg, atmosphere, optics = c2pu()
    o = optics("fresnel")
    wavelengths, weights = band_wavelengths(o.wavelength, cfg.optics.bandwidth, n_wavelengths)
    dx = pupil_sampling(min(wavelengths), o.pixel_scale, oversampling, n)  # the screens' sampling
    window = n if n_wavelengths == 1 else 2 * int(np.ceil(max(wavelengths) / min(wavelengths) * n / 2)) + 2
    rng = np.random.default_rng(SEED)
    shape = (256, 256)
    positions = rng.uniform(0, 255, (stars, 2))
    angles = pixel_to_field_angle(positions, shape, o.pixel_scale)
    generator = torch.Generator().manual_seed(SEED)
    scale = (o.wavelength / 500e-9) ** 1.2
    layers = [make_layer_screen(window, dx, layer.altitude, layer.wind, 2.0, angles, layer.r0 * scale, layer.L0,
                                generator=generator) for layer in atmosphere.layers]
    channels = band_channels(wavelengths, weights, n, o.pixel_scale, oversampling, o.aperture, o.obstruction,
                             fresnel=True)
    return dict(layers=layers, pupil=annular_pupil(n, dx, o.aperture, o.obstruction), positions=positions,
                channels=channels,
                fluxes=np.ones(stars), angles=angles, shape=shape, wavelength=o.wavelength, oversampling=oversampling,
                incident=tukey_incident_wave(n, dx, o.aperture), substeps=o.substeps, exposure=o.exposure)


def time_render(setup, mode: str, max_windows: int) -> float:
    from dancekit.optics.imaging import render_band_frame, render_frame

    t0, c0 = time.perf_counter(), time.process_time()
    if len(setup["channels"]) == 1:
        render_frame(setup["layers"], setup["pupil"], setup["positions"], setup["fluxes"], setup["angles"],
                     setup["shape"], wavelength=setup["wavelength"], oversampling=setup["oversampling"], t_start=0.5,
                     exposure=setup["exposure"], n_substeps=setup["substeps"], incident=setup["incident"], mode=mode,
                     max_windows=max_windows)
    else:
        channels = setup["channels"] if mode == "fresnel" else [
            dataclasses.replace(c, incident=None) for c in setup["channels"]]
        render_band_frame(setup["layers"], channels, setup["positions"], setup["fluxes"], setup["angles"],
                          setup["shape"], phase_wavelength=setup["wavelength"], oversampling=setup["oversampling"],
                          t_start=0.5, exposure=setup["exposure"], n_substeps=setup["substeps"], mode=mode,
                          max_windows=max_windows)
    return time.perf_counter() - t0, time.process_time() - c0


def time_fft_floor(n: int, stars: int, substeps: int, steps: int, max_windows: int, wavelengths: int = 1) -> float:
    """The FFTs the same frame needs, batched as render_frame batches them, on random data (in a
    band: the window FFTs once per wavelength, the real FFT of the summed PSF once per star)."""
    per_chunk = max(1, max_windows // substeps)
    fields = torch.randn(per_chunk * substeps, n, n, dtype=torch.complex64)
    psfs = torch.rand(per_chunk, n, n)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, stars, per_chunk):
        c = min(per_chunk, stars - start)
        batch = fields[: c * substeps]
        for _ in range(wavelengths):
            for _ in range(steps):
                torch.fft.ifft2(torch.fft.fft2(batch))
            torch.fft.fft2(batch)
        torch.fft.rfft2(psfs[:c])
    return time.perf_counter() - t0, time.process_time() - c0


def default_batch(mode: str, n: int) -> int:
    """render_frame's default windows per batch (older versions: 512)."""
    try:
        from dancekit.optics.imaging import BATCH_SAMPLES
    except ImportError:
        return 512
    return max(1, BATCH_SAMPLES[mode] // (n * n))


def psf_rates(stars: int, repeats: int, batch_sizes, n_wavelengths: int = 1) -> None:
    setup = psf_setup(stars, n_wavelengths=n_wavelengths)
    n, k = setup["pupil"].shape[-1], setup["substeps"]
    heights = sorted({layer.height for layer in setup["layers"]}, reverse=True)
    steps = sum(1 for h, below in zip(heights, heights[1:] + [0.0]) if h > below)
    print(f"C2PU: n = {n}, oversampling {setup['oversampling']}, {len(setup['layers'])} layers at "
          f"{', '.join(f'{h:g}' for h in heights)} m, {k} sub-steps per frame, {stars} stars per frame, "
          f"seeing {SEEING}\", {n_wavelengths} wavelength(s) (min of {repeats} repeats, torch threads = "
          f"{torch.get_num_threads()})")
    print(f"{'':24s} {'wall clock':^32s}   {'CPU time (process)':^32s}")
    print(f"{'mode':10s} {'windows/batch':>13s} " + 2 * f"{'PSFs/s':>9s} {'FFT floor PSFs/s':>17s} {'ratio':>6s}   ")
    for mode in ("geometric", "fresnel"):
        mode_steps = steps if mode == "fresnel" else 0
        for batch in batch_sizes:
            batch = batch or default_batch(mode, n)
            time_render(setup, mode, batch)  # warm-up
            render, floor = [], []
            for _ in range(repeats):
                render.append(time_render(setup, mode, batch))
                floor.append(time_fft_floor(n, stars, k, mode_steps, batch, n_wavelengths))
            row = f"{mode:10s} {batch:13d} "
            for clock in (0, 1):
                t_render, t_floor = min(r[clock] for r in render), min(f[clock] for f in floor)
                row += f"{stars / t_render:9.0f} {stars / t_floor:17.0f} {t_render / t_floor:6.2f}   "
            print(row)


# ---------------------------------------------------------------- 2. whole videos

class _Enough(Exception):
    pass


def run_case(case: str, mode: str, frames_to_render: int) -> dict:
    """In a fresh process: simulate_frames over the whole video's screens, stopped after
    ``frames_to_render`` frames, then simulate_truth. Times each part."""
    import resource

    from dancekit.sky import star_fields
    from dancekit.sky.video import simulate_frames, simulate_truth

    cfg, atmosphere, optics = c2pu()
    rng = np.random.default_rng(SEED)
    if case == "training":
        shape, frames = (256, 256), 64
        field = star_fields.homogeneous_field(shape, rng, n_stars=1000)
    else:
        shape, frames = (1024, 1024), 160
        field = star_fields.cluster_field(shape, 12000, rng, profile="king")
    positions = np.column_stack([field.x, field.y])
    fluxes = 10 ** (-0.4 * (field.mag - cfg.sky.zero_point)) * cfg.camera.exposure
    stamps = []

    def on_frame(t):
        stamps.append(time.perf_counter())
        if t + 1 >= frames_to_render and frames_to_render < frames:
            raise _Enough

    t0 = time.perf_counter()
    try:
        _, grid = simulate_frames(positions, fluxes, shape, frames, optics(mode), atmosphere,
                                  torch.Generator().manual_seed(SEED), on_frame=on_frame)
    except _Enough:
        from dancekit.sky.video import pupil_grid

        grid = pupil_grid(optics(mode), atmosphere.r0_at(optics(mode).wavelength))
    rendered = len(stamps)
    per_frame = (stamps[-1] - stamps[0]) / (rendered - 1) if rendered > 1 else stamps[0] - t0
    setup = stamps[0] - t0 - per_frame  # screens, pupil, memory of the cube
    t1 = time.perf_counter()
    simulate_truth(positions, fluxes, shape, optics(mode), grid)
    truth = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return dict(case=case, mode=mode, shape=list(shape), frames=frames, rendered=rendered, stars=len(field),
                n=grid.n, stamp=grid.stamp, setup_s=setup, per_frame_s=per_frame, truth_s=truth, peak_bytes=peak,
                threads=torch.get_num_threads())


def whole_videos(cases, threads: int) -> None:
    print("\nwhole videos (simulate_frames + simulate_truth, C2PU config, seeing 1.06\", one fresh process each)")
    print(f"{'case':30s} {'mode':9s} {'n':>4s} {'rendered':>9s} {'screens s':>9s} {'s/frame':>8s} "
          f"{'PSFs/s':>7s} {'truth s':>7s} {'wall s':>8s} {'peak MiB':>9s}")
    for case, mode, rendered in cases:
        cmd = [sys.executable, os.path.abspath(__file__), "--case", case, "--mode", mode, "--render", str(rendered),
               "--threads", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        frames, done = r["frames"], r["rendered"]
        wall = r["setup_s"] + frames * r["per_frame_s"] + r["truth_s"]
        cube_left = (frames - done) * r["shape"][0] * r["shape"][1] * 4  # float32 frames not yet written
        peak = (r["peak_bytes"] + cube_left) / 2**20
        label = f"{r['shape'][0]}x{r['shape'][1]}, {frames} fr, {r['stars']} stars"
        note = "" if done == frames else f"  <- {done} of {frames} frames rendered: wall and peak extrapolated"
        print(f"{label:30s} {mode:9s} {r['n']:4d} {done:9d} {r['setup_s']:9.1f} {r['per_frame_s']:8.2f} "
              f"{r['stars'] / r['per_frame_s']:7.0f} {r['truth_s']:7.1f} {wall:8.0f} {peak:9.0f}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer stars, repeats and frames")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--m92-frames", type=int, default=4, help="M92 frames rendered before extrapolating")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--render", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(run_case(args.case, args.mode, args.render)))
        return
    if args.quick:
        psf_rates(stars=64, repeats=3, batch_sizes=(None,))
        psf_rates(stars=64, repeats=2, batch_sizes=(None,), n_wavelengths=3)
        cases = [("training", "geometric", 4), ("training", "fresnel", 2), ("m92", "geometric", 2)]
    else:
        psf_rates(stars=256, repeats=5, batch_sizes=(None, 256))
        psf_rates(stars=256, repeats=3, batch_sizes=(None,), n_wavelengths=3)
        frames = max(2, args.m92_frames)
        cases = [("training", "geometric", 64), ("training", "fresnel", 64),
                 ("m92", "geometric", frames), ("m92", "fresnel", frames)]
    whole_videos(cases, args.threads)


if __name__ == "__main__":
    main()
