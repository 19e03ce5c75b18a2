"""Deep-Dark-Net at small scale: the analogues of Qu et al. 2024 table 1 and 2 and figures 6-8.

    python scripts/figure_dark.py OUTDIR [--quick | --smoke]

A scaled-down LAMOST-like camera (2 x 2 channels of 128 x 128 active pixels, the real strip
widths, the same physics: ``dancekit.dark.simulate``) so that everything runs in minutes on a
CPU; widths, frame counts and epochs are far below the paper's (1042-px channels, 20 000
frames, 40 epochs, width 64): the numbers say how the methods compare on this simulated camera,
not what the paper's GAN would reach. Writes:

* ``dark_table1.md``: RMSE [ADU] per temperature and overall of gan (the bundled model's
  configuration, read from its file), gan (paper: strips only, absolute target), median
  (per-pixel median of all training darks, the paper's traditional method) and scaled (overscan
  bias + optical-black level x template), against the actual held-out darks and against their
  noise-free expectation; then the bundled model itself on full-size frames of its camera.
  (The loss ablation, table 2, is ``figure_dark_ablation.py``.)
* ``dark_rmse.png``: the RMSE of table 1 per temperature, from the same numbers;
  ``dark_heatmap.png`` (fig. 6), ``dark_histograms.png`` (fig. 7 and 8).

``--smoke`` is the smallest run through every step (for the tests: seconds; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dancekit.dark.baselines import ScaledDark, rmse
from dancekit.dark.cameras import layout_from_mapping, quadrant_layout
from dancekit.dark.conditioning import fit_adu_scaling, n_input_planes, network_inputs, network_targets, target_adu
from dancekit.dark.inference import MasterDark, fit_master_dark, gan_dark, predict_active_dark
from dancekit.dark.layout import assemble_active, region_stack
from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator
from dancekit.dark.simulate import DarkCameraModel, camera_pattern, simulate_dark_frame
from dancekit.dark.template_codec import decode_template, encode_template
from dancekit.dark.trainer import DarkTrainer, DarkTrainingSettings
from dancekit.io.figure_files import write_png
from dancekit.plots.dark import error_histograms, error_maps, rmse_by_temperature

TEMPERATURES = (-25.0, -15.0, -10.0, -5.0)
# the paper's Deep-Dark-Net: strips only, absolute target, MSE(D) + BCE(G) + MSE(G) + 100 L1(G)
PAPER_RECIPE = {"target": "absolute", "template": False, "coordinates": False,
                "bce": 1.0, "mse": 1.0, "l1": 100.0, "d_loss": "mse"}


def bundled_recipe() -> dict:
    """The bundled model's configuration (conditioning, losses, lr policy, size), read from its file,
    so that the small-scale figures follow whatever ``make weights`` trained."""
    from dancekit.io.dark_files import bundled_dark_model, read_dark_model

    ck = read_dark_model(bundled_dark_model())
    m, c = ck["config"]["model"], ck["conditioning"]
    return {"target": c.get("target", "absolute"), "template": bool(c.get("template", False)),
            "coordinates": bool(c.get("coordinates", False)), "bce": m["loss_bce"], "mse": m["loss_mse"],
            "l1": m["loss_l1"], "d_loss": m["discriminator_loss"], "lr": m["learning_rate"],
            "lr_decay": m.get("lr_decay", 0.0), "n_blocks": ck["generator_config"]["n_blocks"],
            "width": ck["generator_config"]["width"], "checkpoint": ck}


def describe(recipe: dict) -> str:
    planes = "strips" + (" + template" if recipe["template"] else "") + (" + coordinates" if recipe["coordinates"] else "")
    losses = " + ".join(f"{w:g} {name}" for name, w in (("BCE(G)", recipe["bce"]), ("MSE(G)", recipe["mse"]), ("L1(G)", recipe["l1"])) if w)
    return f"{planes}, target {recipe['target']}, {losses}" + (f", {recipe['d_loss'].upper()}(D)" if recipe["bce"] or recipe["mse"] else "")


def simulate(layout, pattern, model, temperatures, n, seed):
    frames, expected, temps = [], [], []
    streams = np.random.SeedSequence(seed).spawn(len(temperatures) * n)
    for k, (t, i) in enumerate((t, i) for t in temperatures for i in range(n)):
        f = simulate_dark_frame(layout, pattern, t, 30.0, np.random.default_rng(streams[k]), model)
        frames.append(f.raw)
        expected.append(f.expected)
        temps.append(t)
    return np.stack(frames), np.stack(expected), np.array(temps)


def train_gan(layout, frames, template, recipe, epochs, seed, width=8, n_blocks=3, lr=1e-3, lr_decay=0.5, crop=64):
    """Deep-Dark-Net of ``recipe`` (conditioning and losses) trained on ``frames``; returns the
    generator (last epoch: no validation set at this scale), the trainer and a predictor."""
    needs = recipe["template"] or recipe["target"] == "above_scaled"
    tmpl = template if needs else None
    plane = template if recipe["template"] else None
    scaling = fit_adu_scaling(np.stack([target_adu(f, layout, recipe["target"], tmpl) for f in frames[::max(1, len(frames) // 8)]]), tail=1e-3)
    inputs = [network_inputs(f, layout, scaling, template=plane, coordinates=recipe["coordinates"]) for f in frames]
    targets = [network_targets(f, layout, scaling, recipe["target"], tmpl) for f in frames]
    n_ch = layout.n_channels
    c = n_input_planes(layout, template=recipe["template"], coordinates=recipe["coordinates"])
    g = DeepDarkGenerator(c, width, n_blocks, "instance", scaling.offset, scaling.scale, seed=seed)
    d = PatchDiscriminator(c + 1, 16, seed=seed + 1)
    settings = DarkTrainingSettings(epochs=epochs, seed=seed, crop=crop, loss_bce=recipe["bce"], loss_mse=recipe["mse"],
                                    loss_l1=recipe["l1"], discriminator_loss=recipe["d_loss"], learning_rate=lr, lr_decay=lr_decay)
    trainer = DarkTrainer(g, d, settings, len(frames) * n_ch)
    trainer.run(lambda i: (inputs[i // n_ch][i % n_ch], targets[i // n_ch][i % n_ch]))
    predict = lambda f: gan_dark(g, f, layout, coordinates=recipe["coordinates"], target=recipe["target"],  # noqa: E731
                                 template=tmpl, template_plane=recipe["template"])
    return g, trainer, predict


def rmse_row(pred, truth, temps, temperatures=TEMPERATURES):
    return [rmse(pred, truth)] + [rmse(pred[temps == t], truth[temps == t]) for t in temperatures]


def full_size_table(recipe: dict, quick: bool, smoke: bool = False) -> tuple[list[str], tuple, dict]:
    """The bundled model itself on full-size simulated LAMOST frames (2094 x 2200) of its camera:
    the table's lines, its temperatures and its rows {(method, against): [total, RMSE per temperature]}."""
    layout = layout_from_mapping(recipe["checkpoint"]["layout"])
    ck = recipe["checkpoint"]
    g = DeepDarkGenerator(**ck["generator_config"])
    g.load_state_dict(ck["state_dict"])
    template = decode_template(ck["template"]) if "template" in ck else None
    model = DarkCameraModel()
    pattern = camera_pattern(layout, model, camera_seed=0)  # the bundled model's camera (simulate-dark default)
    n_train, n_test = (1, 1) if smoke else (2, 1) if quick else (3, 2)
    temperatures = TEMPERATURES[1:2] if smoke else TEMPERATURES
    train, _, _ = simulate(layout, pattern, model, temperatures, n_train, seed=11)
    test, expected, temps = simulate(layout, pattern, model, temperatures, n_test, seed=12)
    master = fit_master_dark(train, layout)
    if template is not None:  # a fair comparison: the scaled baseline with the template the model carries
        master = MasterDark(master.median, ScaledDark(template, ck["conditioning"].get("bias_degree", 3)), master.n_frames)
    cond = ck["conditioning"]
    methods = {
        "gan (bundled model)": lambda f: gan_dark(g, f, layout, cond["mode"], cond["coordinates"], cond.get("target", "absolute"),
                                                   template, bool(cond.get("template", False)), cond.get("bias_degree", 3)),
        "median": lambda f: predict_active_dark("median", f, layout, master=master),
        "scaled": lambda f: predict_active_dark("scaled", f, layout, master=master),
    }
    actual = np.stack([region_stack(f, layout, "active") for f in test])
    noise_free = np.stack([region_stack(f, layout, "active") for f in expected])
    cols = ["total", *[f"{t:g} C" for t in temperatures]]
    lines = ["", "## The bundled model on full-size frames", "",
             f"`lamost_dark_demo.pt` ({describe(recipe)}; {ck['training'].get('steps')} training steps) on {len(test)} "
             f"simulated 2094 x 2200 frames of its camera ({n_test} per temperature, seed 12); median from "
             f"{len(train)} other frames (seed 11); scaled with the master template inside the model file (from its "
             f"{len(ck['training']['data']['train'])} training frames), as the gan uses. RMSE [ADU] over the four "
             "1042 x 1042 active areas.", "",
             "| method | against | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    rows = {}
    for name, fn in methods.items():
        pred = np.stack([fn(f) for f in test])
        for label, truth in (("actual", actual), ("noise-free", noise_free)):
            rows[(name, label)] = rmse_row(pred, truth, temps, temperatures)
            lines.append(f"| {name} | {label} | " + " | ".join(f"{v:.2f}" for v in rows[(name, label)]) + " |")
    gan = rows[("gan (bundled model)", "actual")]
    for base in ("median", "scaled"):
        lines.append(f"| gan / {base} | actual | " + " | ".join(f"{a / b:.3f}" for a, b in zip(gan, rows[(base, "actual")])) + " |")
    return lines, temperatures, rows


def output_folder(doc: str) -> tuple[Path, bool, bool]:
    """OUTDIR (created), --quick and --smoke from the command line of a dark figure script."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--quick", action="store_true", help="fewer frames and epochs (development)")
    parser.add_argument("--smoke", action="store_true", help="the fewest frames and steps that run every step (tests)")
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return out, args.quick, args.smoke


def run_name(quick: bool, smoke: bool) -> str:
    return "--smoke" if smoke else "--quick" if quick else "full"


def small_camera(temperatures, n_train: int, n_test: int, train_seed: int, test_seed: int, active: int = 128):
    """The small LAMOST-like camera of the figures (channels of ``active`` x ``active`` pixels):
    its layout, training and held-out raw darks (with the held-out expected darks and
    temperatures), the master dark, and its template as a model file holds it (uint8-coded)."""
    layout = quadrant_layout(name="lamost-small", active=active)
    model = DarkCameraModel()
    pattern = camera_pattern(layout, model, camera_seed=0)
    train, _, _ = simulate(layout, pattern, model, temperatures, n_train, seed=train_seed)
    test, test_expected, test_t = simulate(layout, pattern, model, temperatures, n_test, seed=test_seed)
    master = fit_master_dark(train, layout)
    template = decode_template(encode_template(master.scaled.template))
    return layout, train, test, test_expected, test_t, master, template


def main() -> None:
    out, quick, smoke = output_folder(__doc__)
    n_train, n_test, epochs = (1, 1, 1) if smoke else (4, 2, 2) if quick else (8, 4, 4)
    active, crop = (64, 32) if smoke else (128, 64)
    start = time.perf_counter()
    bundled = bundled_recipe()
    layout, train, test, test_expected, test_t, master, template = small_camera(TEMPERATURES, n_train, n_test, 1, 2, active)
    gans = {}
    for name, recipe in (("gan", bundled), ("gan (paper)", PAPER_RECIPE)):
        _, trainer, predict = train_gan(layout, train, template, recipe, epochs, seed=3, lr=bundled["lr"], lr_decay=bundled["lr_decay"],
                                        crop=crop)
        gans[name] = (trainer, predict)
    methods = {name: predict for name, (_, predict) in gans.items()}
    methods["median"] = lambda f: predict_active_dark("median", f, layout, master=master)
    methods["scaled"] = lambda f: predict_active_dark("scaled", f, layout, master=master)
    actual = np.stack([region_stack(f, layout, "active") for f in test])
    noise_free = np.stack([region_stack(f, layout, "active") for f in test_expected])
    preds = {m: np.stack([fn(f) for f in test]) for m, fn in methods.items()}

    cols = ["total", *[f"{t:g} C" for t in TEMPERATURES]]
    trainer = gans["gan"][0]
    lines = ["# Table 1 analogue: RMSE [ADU] of the predicted dark on held-out darks", "",
             f"Simulated LAMOST-like camera, 2x2 channels of {active}x{active} active pixels; {len(train)} training darks, "
             f"{len(test)} held-out ({n_test} per temperature); generators of width 8, 3 residual blocks, {epochs} epochs "
             f"({trainer.step} steps of {crop}-px crops, Adam lr {bundled['lr']:g} decaying to 0 over the last "
             f"{100 * bundled['lr_decay']:.0f}%), the last epoch kept. "
             f"**gan**: the bundled model's configuration ({describe(bundled)}); **gan (paper)**: {describe(PAPER_RECIPE)}. "
             "Against 'noise-free': the expected dark without read and shot noise (the floor of the 'actual' rows is "
             "that noise). Paper (1042-px channels, 20 000 frames): traditional 43.9, Deep-Dark-Net 25.5 overall.", "",
             "| method | against | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    table = {}
    for m in methods:
        for label, truth in (("actual", actual), ("noise-free", noise_free)):
            table[(m, label)] = rmse_row(preds[m], truth, test_t)
            lines.append(f"| {m} | {label} | " + " | ".join(f"{v:.2f}" for v in table[(m, label)]) + " |")
    for g_name in gans:
        for base in ("median", "scaled"):
            ratio = [a / b for a, b in zip(table[(g_name, "actual")], table[(base, "actual")])]
            lines.append(f"| {g_name} / {base} | actual | " + " | ".join(f"{v:.3f}" for v in ratio) + " |")
    lines += ["", "Paper ratios gan/median: 25.5/43.9 = 0.58 overall, 16.9/20.6 = 0.82 at -15 C (table 2). Goal: "
              "gan/median at most those ratios and gan/scaled at most 1."]
    full_lines, full_temperatures, full_rows = full_size_table(bundled, quick, smoke)
    lines += full_lines
    lines += ["", f"Script time {time.perf_counter() - start:.0f} s."]
    (out / "dark_table1.md").write_text("\n".join(lines) + "\n")

    run = run_name(quick, smoke)
    scale = (f"scripts/figure_dark.py ({run}): 2x2 channels of {active}x{active} active px, {len(train)} training and "
             f"{len(test)} held-out darks, {epochs} epochs ({trainer.step} steps); the bundled model on full-size "
             "2094x2200 frames of its camera")
    panels = {f"{active}-px channels, trained here": (TEMPERATURES, table),
              "bundled model, full-size frames": (full_temperatures, full_rows)}
    write_png(rmse_by_temperature(panels, "Deep-Dark-Net: RMSE of the predicted dark per temperature (table 1)", scale),
              out / "dark_rmse.png", overwrite=True)

    k = int(np.flatnonzero(test_t == -15.0)[0])
    maps = [(f"|{m} − actual|, −15 °C (RMSE {rmse(preds[m][k], actual[k]):.1f} ADU)",
             np.abs(assemble_active(preds[m][k], layout) - assemble_active(actual[k], layout))) for m in ("gan", "gan (paper)", "scaled")]
    write_png(error_maps(maps, "Deep-Dark-Net: error maps of one held-out dark (fig. 6)", scale), out / "dark_heatmap.png",
              overwrite=True)
    errors = {m: preds[m] - actual for m in methods}
    by_temperature = {f"gan, {t:g} °C": preds["gan"][test_t == t] - actual[test_t == t] for t in TEMPERATURES}
    write_png(error_histograms(errors, by_temperature, "Deep-Dark-Net: errors of the predicted darks (figs. 7-8)", scale),
              out / "dark_histograms.png", overwrite=True)
    print((out / "dark_table1.md").read_text())


if __name__ == "__main__":
    main()
