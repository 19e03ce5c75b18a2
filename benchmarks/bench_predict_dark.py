"""predict-dark per full LAMOST raw frame (2094 x 2200) on the CPU, and train-dark iterations/s.

    python benchmarks/bench_predict_dark.py

Times, in one process on one simulated frame: the bundled demo model through the library path
of the command (``inference.predict_active_dark``: strips -> inputs -> generator -> ADU + the
scaled reference), the bare generator forward pass on the same 4 channels one after the other on
all threads (the kernel, and session 1's path) and concurrently with one thread each (today's
``training.predict_dark``), the scaled and overscan baselines, and the whole command through the CLI (start-up,
model loading and FITS I/O included). Then training steps/s (one D + one G update, batch 1) at
the bundled model's size, on 256-px crops and on whole 1042-px channels. Goal: < 5 s per frame.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from timing import best_of as shared_best_of  # noqa: E402

from dancekit.dark.cameras import layout_from_mapping  # noqa: E402
from dancekit.dark.conditioning import AduScaling, network_inputs  # noqa: E402
from dancekit.dark.inference import fit_master_dark, predict_active_dark  # noqa: E402
from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator  # noqa: E402
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame  # noqa: E402
from dancekit.dark.template_codec import decode_template  # noqa: E402
from dancekit.dark.trainer import DarkTrainer, DarkTrainingSettings  # noqa: E402
from dancekit.dark.training import predict_dark  # noqa: E402
from dancekit.io.dark_files import bundled_dark_model, read_dark_model  # noqa: E402


def best_of(fn, repeat=3):
    return shared_best_of(fn, repeat)[0]


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    ck = read_dark_model(bundled_dark_model())
    layout = layout_from_mapping(ck["layout"])
    g = DeepDarkGenerator(**ck["generator_config"])
    g.load_state_dict(ck["state_dict"])
    g.eval()
    cond = ck["conditioning"]
    model = DarkCameraModel()
    pattern = camera_pattern(layout, model, 0)
    frames = [simulate_dark_frame(layout, pattern, -15, 30, s, model).raw for s in range(3)]
    frame = frames[0]
    print(f"frame {frame.shape}, generator width {ck['generator_config']['width']}, "
          f"{ck['generator_config']['n_blocks']} blocks, {sum(p.numel() for p in g.parameters())} parameters")

    template = decode_template(ck["template"]) if "template" in ck else None
    plane = bool(cond.get("template", False))
    print(f"conditioning: {cond}")

    def gan():
        return predict_active_dark("gan", frame, layout, generator=g, mode=cond["mode"], coordinates=cond["coordinates"],
                                   target=cond.get("target", "absolute"), template=template, template_plane=plane,
                                   bias_degree=cond.get("bias_degree", 3))

    t_gan = best_of(gan)
    scaling = AduScaling(ck["adu"]["offset"], ck["adu"]["scale"])
    x = torch.from_numpy(network_inputs(frame, layout, scaling, cond["mode"], template=template if plane else None,
                                        coordinates=cond["coordinates"]))

    def forward():  # the bare network, one channel after the other on all threads (session 1's path)
        with torch.inference_mode():
            for c in range(x.shape[0]):
                g(x[c:c + 1])

    t_fwd = best_of(forward)
    t_conc = best_of(lambda: predict_dark(g, x))  # channels concurrently, one thread each
    master = fit_master_dark(np.stack(frames), layout)
    t_scaled = best_of(lambda: predict_active_dark("scaled", frame, layout, master=master))
    t_over = best_of(lambda: predict_active_dark("overscan", frame, layout))
    print(f"predict gan       {t_gan:7.3f} s/frame   (goal < 5 s: {'met' if t_gan < 5 else 'NOT met'})")
    print(f"  generator only, channels in turn      {t_fwd:7.3f} s/frame   gan path / this = {t_gan / t_fwd:.2f}")
    print(f"  generator only, channels concurrently {t_conc:7.3f} s/frame   concurrent / in turn = {t_conc / t_fwd:.2f}")
    print(f"predict scaled    {t_scaled:7.3f} s/frame   gan / scaled = {t_gan / t_scaled:.1f}")
    print(f"predict overscan  {t_over:7.3f} s/frame   gan / overscan = {t_gan / t_over:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        from astropy.io import fits

        path = os.path.join(tmp, "raw.fits")
        fits.PrimaryHDU(frame.astype(np.uint16)).writeto(path)
        env = {**os.environ, "PYTHONPATH": ROOT}
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "dancekit", "predict-dark", path, "-o", os.path.join(tmp, "d.fits"), "-q"], env=env)
        t_cli = time.perf_counter() - t
        print(f"CLI predict-dark  {t_cli:7.3f} s (one frame, start-up + model load + FITS I/O), exit {r.returncode}; "
              f"CLI / library = {t_cli / t_gan:.2f}")

    # training iterations/s at the bundled size: its own losses, and the paper's (D trained too)
    cfg = ck["generator_config"]
    m = ck["config"]["model"]
    for label, bce, mse in (("bundled losses", m["loss_bce"], m["loss_mse"]), ("Deep-Dark-Net losses", 1.0, 1.0)):
        for crop in (256, 0):
            gen = DeepDarkGenerator(**cfg)
            disc = PatchDiscriminator(**ck["discriminator_config"])
            n_steps = 6 if crop else 2
            settings = DarkTrainingSettings(epochs=1, seed=0, crop=crop, learning_rate=2e-4, loss_bce=bce, loss_mse=mse)
            trainer = DarkTrainer(gen, disc, settings, n_steps)
            xs = x.numpy()
            y = np.zeros((1, *xs.shape[-2:]), np.float32)
            trainer.run(lambda i: (xs[i % 4], y))
            print(f"train step, {label} (BCE {bce:g}, MSE {mse:g}), crop {crop or 'whole 1042 px'}: "
                  f"{trainer.step / trainer.seconds:6.2f} steps/s ({trainer.seconds / trainer.step:.2f} s/step)")

if __name__ == "__main__":
    main()
