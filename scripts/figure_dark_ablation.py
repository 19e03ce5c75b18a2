"""Deep-Dark-Net loss ablation at -15 deg C: the analogue of Qu et al. 2024 table 2, at small scale.

    python scripts/figure_dark_ablation.py OUTDIR [--quick | --smoke]

The paper's four loss configurations (L1 on the generator throughout; sec. 3.3) plus "L1 only"
(no adversarial term: the supervised baseline every cGAN row is compared with), each trained on
the same darks of the scaled-down camera of ``figure_dark.py`` (2 x 2 channels of 128 x 128
active pixels) taken at -15 deg C, with two conditionings: the paper's (strips only, absolute
target) and the bundled model's (read from its file). Writes ``dark_table2.md`` (RMSE [ADU]
against the actual held-out darks, and against their noise-free expectation) and
``dark_table2.png`` (from the same numbers); every number comes from this run. ``--smoke`` is the
smallest run through every step (tests: seconds; its numbers mean nothing).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from figure_dark import PAPER_RECIPE, bundled_recipe, describe, output_folder, run_name, small_camera, train_gan  # same folder

from dancekit.dark.baselines import rmse
from dancekit.dark.inference import predict_active_dark
from dancekit.dark.layout import region_stack
from dancekit.io.figure_files import write_png
from dancekit.plots.dark import loss_ablation

# (label, generator loss, discriminator loss, bce weight, mse weight, D loss, paper RMSE [ADU]); L1 weight 100
ROWS = (
    ("L1 only (ours)", "L1(G)", "none", 0.0, 0.0, "mse", None),
    ("1 (pix2pix)", "BCE(G) + L1(G)", "BCE(D)", 1.0, 0.0, "bce", 21.1),
    ("2", "MSE(G) + L1(G)", "MSE(D)", 0.0, 1.0, "mse", 18.7),
    ("3", "MSE(G) + L1(G)", "BCE(D)", 0.0, 1.0, "bce", 23.2),
    ("Deep-Dark-Net", "BCE(G) + MSE(G) + L1(G)", "MSE(D)", 1.0, 1.0, "mse", 16.9),
)


def main() -> None:
    out, quick, smoke = output_folder(__doc__)
    n_train, n_test, epochs = (1, 1, 1) if smoke else (6, 2, 2) if quick else (12, 4, 4)
    active, crop = (64, 32) if smoke else (128, 64)
    start = time.perf_counter()
    bundled = bundled_recipe()
    layout, train, test, expected, _, master, template = small_camera((-15.0,), n_train, n_test, 4, 5, active)
    actual = np.stack([region_stack(f, layout, "active") for f in test])
    noise_free = np.stack([region_stack(f, layout, "active") for f in expected])
    baselines = {m: np.stack([predict_active_dark(m, f, layout, master=master) for f in test]) for m in ("median", "scaled")}

    conditionings = {"paper conditioning": PAPER_RECIPE, "bundled conditioning": bundled}
    results, steps = {}, 0
    for label, _, _, bce, mse, d_loss, _ in ROWS:
        for cname, base in conditionings.items():
            recipe = dict(base, bce=bce, mse=mse, l1=100.0, d_loss=d_loss)
            _, trainer, predict = train_gan(layout, train, template, recipe, epochs, seed=6,
                                            lr=bundled["lr"], lr_decay=bundled["lr_decay"], crop=crop)
            pred = np.stack([predict(f) for f in test])
            results[(label, cname)] = (rmse(pred, actual), rmse(pred, noise_free))
            steps = trainer.step

    lines = ["# Table 2 analogue: loss ablation at -15 C (RMSE [ADU] on held-out darks)", "",
             f"Simulated LAMOST-like camera, 2x2 channels of {active}x{active} active pixels; {len(train)} training darks at -15 C, "
             f"{len(test)} held out. Each row trained from the same seed: width 8, 3 residual blocks, {epochs} epochs "
             f"({steps} steps of {crop}-px crops), Adam lr {bundled['lr']:g} decaying to 0 over the last "
             f"{100 * bundled['lr_decay']:.0f}%, L1 weight 100. Paper conditioning: {describe(PAPER_RECIPE)} (losses per row). "
             f"Bundled conditioning: {describe(dict(bundled, bce=0, mse=0))} (losses per row). "
             "Cells: against the actual darks / against the noise-free expected darks. Paper: 10 000 training frames, "
             "1042-px channels.", "",
             "| configuration | generator G | discriminator D | paper conditioning | bundled conditioning | paper RMSE |",
             "|---|---|---|---|---|---|"]
    for label, gl, dl, _, _, _, paper in ROWS:
        cells = [f"{a:.2f} / {b:.2f}" for a, b in (results[(label, c)] for c in conditionings)]
        lines.append(f"| {label} | {gl} | {dl} | {cells[0]} | {cells[1]} | {paper if paper is not None else '-'} |")
    for m, pred in baselines.items():
        cell = f"{rmse(pred, actual):.2f} / {rmse(pred, noise_free):.2f}"
        lines.append(f"| {m} baseline | - | - | {cell} | {cell} | {20.6 if m == 'median' else '-'} |")
    lines += ["", f"Script time {time.perf_counter() - start:.0f} s."]
    (out / "dark_table2.md").write_text("\n".join(lines) + "\n")

    scale = (f"scripts/figure_dark_ablation.py ({run_name(quick, smoke)}): 2x2 channels of {active}x{active} active px, "
             f"{len(train)} training and {len(test)} held-out darks at −15 °C, {epochs} epochs ({steps} steps) per row")
    figure = loss_ablation([r[0] for r in ROWS], {c: [results[(r[0], c)][0] for r in ROWS] for c in conditionings},
                           {m: rmse(pred, actual) for m, pred in baselines.items()}, [r[-1] for r in ROWS],
                           "Deep-Dark-Net loss ablation (table 2)", scale)
    write_png(figure, out / "dark_table2.png", overwrite=True)
    print((out / "dark_table2.md").read_text())


if __name__ == "__main__":
    main()
