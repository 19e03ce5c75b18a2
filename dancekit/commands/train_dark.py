"""``dancekit train-dark``: train Deep-Dark-Net on raw darks, and/or make the master dark of the baselines.

Parses options, reads the frames (``dancekit.io.dark_files``), fits the baselines
(``dark.inference.fit_master_dark``), builds the networks (``dark.networks``), runs
``dark.trainer.DarkTrainer`` and writes the model file after every epoch. Ctrl-C saves and exits 130.
"""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import contextlib
import secrets
import signal
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from dancekit.commands import options as opt
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import InputError, ParameterError

Data = Annotated[list[str], typer.Argument(help="Raw dark frames (FITS) or folders of them.", show_default=False)]
MASTER_STREAM, SPLIT_STREAM, INIT_G, INIT_D = 0, 1, 2, 3
SCALING_FRAMES = 8  # training frames (evenly spread over the sorted list: all set points) that set the ADU affine


@cli_command
def train_dark(
    data: Data,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Model file to write (rewritten after every epoch).")] = None,
    make_master: Annotated[Optional[str], typer.Option("--make-master", help="Also write the master dark (median + scaled template) of these frames to this FITS file.")] = None,
    config: opt.Config = "lamost",
    overrides: opt.Set = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Epochs to reach (an epoch visits every channel of every training frame once) [default 10].")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Generator width (default: config model.width; 8 trains on a CPU).")] = None,
    crop: Annotated[Optional[int], typer.Option("--crop", help="Side of random training crops [px]; 0 = whole channel (default: config model.crop).")] = None,
    master_frames: Annotated[int, typer.Option("--master-frames", help="At most this many training frames (drawn at random) go into the master dark; all are held in memory.")] = 32,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue the training saved in this model file.")] = None,
    device: opt.Device = opt.DeviceChoice.auto,
    seed: opt.Seed = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
):
    """Train the Deep-Dark-Net dark model on raw darks of one camera, or make its master dark.

    Each readout channel of each frame is one sample: its overscan and optical-black strips
    brought to the active grid are the input, its active area the target (ADU through the
    affine stored in the model). Losses MSE(D) + BCE(G) + MSE(G) + L1(G) with the config's
    weights (both adversarial weights 0: L1 only, no discriminator), Adam, batch 1. With
    model.template / model.target above_scaled the master template of the training frames is an
    input plane / the reference the target is measured from, and the model file carries it. A share
    of the frames (model.val_fraction) is held out: after every epoch the RMSE [ADU] of the
    prediction against them is measured and the best weights are kept; the median and scaled
    baselines fitted on the training frames are measured on the same frames. The model records
    its training domain (bias and dark levels, temperature, exposure of up to 64 training frames),
    which predict-dark checks frames against. With --make-master only (no -o), just the master
    dark for predict-dark --method median/scaled is written, also for a camera of several
    amplifiers described by sections; its TEMPLATE is all NaN (with a warning saying why) when
    the frames' optical black holds no measurable dark (biases) or the camera has none.

    Example: dancekit train-dark darks/ --epochs 5 --width 8 --crop 256 --seed 1 -o dark_model.pt --make-master master.fits
    """
    import torch

    from dancekit.dark.cameras import describe_layout, frame_layout_from_config, layout_from_mapping, layout_to_mapping, same_geometry
    from dancekit.dark.frame_layout import describe_frame_layout, same_frame_geometry
    from dancekit.dark.conditioning import (AduScaling, fit_adu_scaling, n_input_planes, network_inputs, network_targets,
                                            target_adu, uses_template)
    from dancekit.dark.template_codec import decode_template, encode_template
    from dancekit.dark.inference import check_frame, fit_frame_masters, gan_dark, predict_active_dark
    from dancekit.dark.layout import region_stack
    from dancekit.dark.baselines import rmse
    from dancekit.dark.networks import DeepDarkGenerator, PatchDiscriminator, count_parameters
    from dancekit.dark.trainer import DarkTrainer, DarkTrainingSettings
    from dancekit.device import resolve_device
    from dancekit.io.config import config_hash, load_config, to_dict
    from dancekit.io.config_schema import DarkConfig
    from dancekit.io.dark_files import (find_raw_frames, measure_domain, read_dark_model, read_raw_frame, write_dark_model,
                                        write_master_darks)
    from dancekit.io.fits_out import check_output
    from dancekit.io.provenance import Provenance

    opt.check_json_with_output(as_json, output or "")
    if output is None and make_master is None:
        raise ParameterError("nothing to do: give -o MODEL.pt to train, --make-master MASTER.fits for the master dark, or both", source="-o")
    if output == "-" or make_master == "-":
        raise ParameterError("a model or master file cannot go to standard output; give a file name", source="-o")
    if master_frames < 1:
        raise ParameterError(f"--master-frames must be >= 1, got {master_frames}", source="--master-frames")
    cfg = load_config(config, DarkConfig, overrides)
    state = read_dark_model(resume, need_resume=True) if resume else None
    same_file = bool(resume) and output is not None and Path(resume).resolve() == Path(output).resolve()
    if output:
        check_output(output, overwrite or same_file)
    if make_master:
        check_output(make_master, overwrite)
    stored = state["resume"]["settings"] if state else {}
    if seed is None:
        seed = stored.get("seed", secrets.randbits(31))
    streams = np.random.SeedSequence(seed).spawn(4)

    paths = find_raw_frames(data)
    first = read_raw_frame(paths[0], with_expected=False)
    try:
        frame_layout = frame_layout_from_config(cfg.detector, first.data.shape, first.header)
    except InputError as exc:
        raise exc.with_source(paths[0])
    layout = frame_layout.single  # the channels a model is trained on (None: several section amplifiers)
    if output is not None and layout is None:
        raise InputError(f"a dark model is trained on one layout of channels; this camera has {len(frame_layout.parts)} amplifiers "
                         "described by sections: make its master dark (--make-master only) and predict with --method "
                         "overscan, median or scaled", source=config)
    if state and (layout is None or not same_geometry(layout_from_mapping(state["layout"]), layout)):
        raise InputError(f"the model was trained on layout {describe_layout(layout_from_mapping(state['layout']))}, "
                         f"these frames are {describe_frame_layout(frame_layout)}", source=resume)

    def read(path):
        frame = read_raw_frame(path, with_expected=False)
        try:
            this = frame_layout_from_config(cfg.detector, frame.data.shape, frame.header)
            if not same_frame_geometry(this, frame_layout):
                raise InputError(f"its layout differs from the first frame's ({describe_frame_layout(frame_layout)})")
            check_frame(frame.data, frame_layout, cfg.detector.saturation)
        except InputError as exc:
            raise exc.with_source(path)
        return frame

    def load(path):
        return read(path).data

    # split: a seeded share of the frames for validation (at least one when training on >= 2);
    # on --resume, the split stored in the checkpoint (by file name)
    if state:
        by_name = {Path(p).name: p for p in paths}
        stored_data = state["training"]["data"]
        missing = [n for n in stored_data["train"] + stored_data["val"] if n not in by_name]
        if missing or len(by_name) != len(stored_data["train"]) + len(stored_data["val"]):
            raise InputError(f"the frames differ from those of the run being resumed ({len(missing)} of its files are "
                             "missing here, or there are others); give the same files", source=resume)
        train_paths = [by_name[n] for n in stored_data["train"]]
        val_paths = [by_name[n] for n in stored_data["val"]]
    else:
        order = np.random.default_rng(streams[SPLIT_STREAM]).permutation(len(paths))
        n_val = 0 if output is None else int(round(cfg.model.val_fraction * len(paths)))
        if output is not None and cfg.model.val_fraction > 0 and len(paths) >= 2:
            n_val = max(1, n_val)
        val_paths = [paths[i] for i in sorted(order[:n_val])]
        train_paths = [paths[i] for i in sorted(order[n_val:])]
    if not train_paths:
        raise InputError(f"no training frames left after holding out {len(val_paths)} for validation", source=data[0])

    m = cfg.model
    conditioning = dict(state["conditioning"]) if state else {
        "mode": m.conditioning, "coordinates": m.coordinates, "target": m.target, "template": m.template,
        "bias_degree": m.bias_degree}
    conditioning.setdefault("template", False)  # model files older than the template option
    conditioning.setdefault("bias_degree", 3)
    needs_template = uses_template(conditioning)

    # master dark from (at most master_frames of) the training frames
    master = None
    if make_master or val_paths or (needs_template and not state):
        pick = np.random.default_rng(streams[MASTER_STREAM]).permutation(len(train_paths))[:master_frames]
        masters = fit_frame_masters(np.stack([load(train_paths[i]) for i in sorted(pick)]), frame_layout, cfg.model.bias_degree)
        master = masters[0]
        log.info("master dark from %d training frames", master.n_frames)
        for i, part in enumerate(masters):
            amp = f" (amplifier {i + 1})" if len(masters) > 1 else ""
            if not part.has_template:
                log.warning("the master's TEMPLATE%s is all NaN: %s. The master serves --method median; --method scaled "
                            "needs a camera with optical black and darks whose optical black holds dark current (not biases)",
                            amp, part.template_note)
            elif part.template_note:
                log.warning("the master's TEMPLATE%s: %s", amp, part.template_note)
    if make_master:
        from astropy.io import fits

        header = fits.Header()
        header["NCOMBINE"] = (master.n_frames, "training frames combined")
        header["BIASDEG"] = (cfg.model.bias_degree, "Legendre degree of the overscan bias fit")
        header["DETECTOR"] = (cfg.detector.name, "sensor")
        Provenance.from_argv(config_hash=config_hash(cfg), seed=seed).apply(header)
        write_master_darks(make_master, frame_layout, masters, header, overwrite)
        log.info("wrote the master dark %s", make_master)
    if output is None:
        if as_json:
            opt.print_json({"command": "train-dark", "master": make_master, "frames": master.n_frames})
        return 0

    # the master template the model carries (input plane / "above_scaled" reference), quantised
    # (``template_codec``) before use so that training and prediction see the same numbers
    stored_template = None
    if needs_template:
        if state:
            stored_template = state["template"]
        else:
            if not np.isfinite(master.scaled.template).all():
                raise InputError(f"model.template / target above_scaled need the scaled baseline's template, which these "
                                 f"frames cannot make: {master.template_note}", source=data[0])
            stored_template = encode_template(master.scaled.template)
    template = decode_template(stored_template) if needs_template else None
    bias_degree = conditioning.get("bias_degree", 3)
    if state:
        gconf = dict(state["generator_config"])
        scaling = AduScaling(gconf["adu_offset"], gconf["adu_scale"])
    else:
        spread = np.unique(np.linspace(0, len(train_paths) - 1, min(SCALING_FRAMES, len(train_paths))).round().astype(int))
        sample_targets = np.concatenate([target_adu(load(train_paths[i]), layout, conditioning["target"], template, bias_degree).ravel()
                                         for i in spread])
        scaling = fit_adu_scaling(sample_targets, tail=m.adu_tail)
        gconf = dict(in_channels=n_input_planes(layout, template=conditioning["template"], coordinates=conditioning["coordinates"]),
                     width=width or m.width,
                     n_blocks=m.n_blocks, norm=m.norm, adu_offset=scaling.offset, adu_scale=scaling.scale)
    # the training domain (bias and dark levels, temperature, exposure) that predict-dark checks frames against
    domain = state.get("domain") if state else None
    if domain is None:
        domain = measure_domain(train_paths, layout, bias_degree)
    log.info("training domain (%d frames): %s", domain["frames"],
             ", ".join(f"{k} {v[0]:.4g}..{v[1]:.4g}" for k, v in domain.items() if k != "frames"))
    if state and width is not None and width != gconf["width"]:
        log.warning("--width is ignored on --resume: the checkpoint's network is used")
    settings = DarkTrainingSettings(
        epochs=epochs if epochs is not None else stored.get("epochs", 10), seed=seed,
        crop=crop if crop is not None else stored.get("crop", m.crop),
        loss_bce=stored.get("loss_bce", m.loss_bce), loss_mse=stored.get("loss_mse", m.loss_mse),
        loss_l1=stored.get("loss_l1", m.loss_l1), discriminator_loss=stored.get("discriminator_loss", m.discriminator_loss),
        learning_rate=stored.get("learning_rate", m.learning_rate), lr_decay=stored.get("lr_decay", m.lr_decay),
    )
    if settings.crop == 0 and min(layout.region_shape("active")) < 24:
        raise InputError(f"the active area {layout.region_shape('active')} is smaller than the PatchGAN's 24 px minimum")
    torch_device = resolve_device(device)
    generator = DeepDarkGenerator(**gconf, seed=int(streams[INIT_G].generate_state(1)[0]))
    dconf = dict(state["discriminator_config"]) if state else dict(in_channels=gconf["in_channels"] + 1, width=m.discriminator_width, n_layers=3, norm="batch")
    discriminator = PatchDiscriminator(**dconf, seed=int(streams[INIT_D].generate_state(1)[0]))
    n_ch = layout.n_channels
    trainer = DarkTrainer(generator, discriminator, settings, len(train_paths) * n_ch, torch_device)
    if state:
        trainer.load_state_dict(state["resume"])
        log.info("resuming %s at step %d of %d", resume, trainer.step, trainer.total_steps)

    cache: dict[int, tuple] = {}
    # samples are cached as float16 (network units: ~1e-3 relative, far below the noise)
    keep_all = len(train_paths) * np.prod(layout.frame_shape) * 2 * (gconf["in_channels"] + 1) < 2 * 2**30

    def sample(index: int):
        f, c = divmod(index, n_ch)
        if f not in cache:
            frame = load(train_paths[f])
            if not keep_all:
                cache.clear()
            cache[f] = (network_inputs(frame, layout, scaling, conditioning["mode"],
                                       template=template if conditioning["template"] else None,
                                       coordinates=conditioning["coordinates"]).astype(np.float16),
                        network_targets(frame, layout, scaling, conditioning["target"], template, bias_degree).astype(np.float16))
        return cache[f][0][c].astype(np.float32), cache[f][1][c].astype(np.float32)

    val_frames = [load(p) for p in val_paths]
    baselines = {}
    if val_frames:
        for method in ("median", "scaled"):
            try:
                preds = [predict_active_dark(method, v, layout, master=master) for v in val_frames]
                baselines[method] = rmse(np.stack(preds), np.stack([region_stack(v, layout, "active") for v in val_frames]))
            except InputError:
                baselines[method] = None

    def validate(g) -> float:
        if not val_frames:
            return float("nan")
        preds = [gan_dark(g, v, layout, conditioning["mode"], conditioning["coordinates"], conditioning["target"],
                          template, conditioning["template"], bias_degree) for v in val_frames]
        return rmse(np.stack(preds), np.stack([region_stack(v, layout, "active") for v in val_frames]))

    meta = {"data": {"train": [Path(p).name for p in train_paths], "val": [Path(p).name for p in val_paths]}}
    written = {"any": same_file or overwrite, "step": None}

    def checkpoint(with_resume: bool = True) -> dict:
        from dancekit import __version__
        from dancekit.io.dark_files import FORMAT, FORMAT_VERSION

        summary = trainer.summary()
        summary.update(data=meta["data"], val_rmse_gan_adu=trainer.best["val"] if val_frames else None,
                       val_rmse_median_adu=baselines.get("median"), val_rmse_scaled_adu=baselines.get("scaled"),
                       val_frames=len(val_frames), train_frames=len(train_paths))
        ck = {"format": FORMAT, "format_version": FORMAT_VERSION, "dancekit_version": __version__,
              "generator_config": generator.config, "state_dict": trainer.best_generator_state(),
              "discriminator_config": discriminator.config, "conditioning": conditioning,
              "adu": {"offset": scaling.offset, "scale": scaling.scale}, "layout": layout_to_mapping(layout), "domain": domain,
              "instrument": cfg.instrument, "config": to_dict(cfg), "config_hash": config_hash(cfg), "training": summary}
        if stored_template is not None:
            ck["template"] = stored_template
        if with_resume:
            ck["resume"] = trainer.state_dict()
        return ck

    def save() -> None:
        write_dark_model(checkpoint(), output, overwrite=written["any"])
        written.update(any=True, step=trainer.step)

    def on_epoch(t) -> None:
        r = t.history[-1]
        d_loss = f"D {r['d']:.4g}, " if "d" in r else ""  # no D when both adversarial weights are 0
        log.info("epoch %d (step %d/%d): %sG %.4g (L1 %.4g), validation RMSE %.3f ADU%s", r["epoch"], r["step"],
                 t.total_steps, d_loss, r["g"], r["g_l1"], r["val"], " [kept]" if t.best["step"] == r["step"] else "")
        save()

    log.info("training Deep-Dark-Net (G %d, D %d parameters) on %d frames x %d channels (+%d frames for validation), "
             "%d epochs, crop %s, on %s, seed %d; layout %s", count_parameters(generator), count_parameters(discriminator),
             len(train_paths), n_ch, len(val_paths), settings.epochs, settings.crop or "none", torch_device, seed, describe_layout(layout))
    with _stop_on_ctrl_c() as stop:
        finished = trainer.run(sample, validate if val_frames else None, should_stop=stop, on_epoch=on_epoch)
    if not finished:
        save()
        log.error("interrupted at step %d of %d; the training state is saved in %s (continue with --resume %s)",
                  trainer.step, trainer.total_steps, output, output)
        return 130
    if written["step"] != trainer.step:
        save()
    summary = checkpoint(False)["training"]
    log.info("done: %d steps in %.1f s; validation RMSE [ADU] gan %s, median %s, scaled %s", trainer.step, summary["seconds"],
             _fmt(summary["val_rmse_gan_adu"]), _fmt(baselines.get("median")), _fmt(baselines.get("scaled")))
    if as_json:
        opt.print_json({"command": "train-dark", "output": output, "master": make_master, "seed": seed,
                        **{k: summary[k] for k in ("steps", "epochs", "seconds", "steps_per_second", "best_epoch",
                                                   "val_rmse_gan_adu", "val_rmse_median_adu", "val_rmse_scaled_adu",
                                                   "train_frames", "val_frames", "history")}})
    return 0


@contextlib.contextmanager
def _stop_on_ctrl_c():
    """The first Ctrl-C asks the loop to stop after the current step (then it saves); a second aborts."""
    requested = {"stop": False}

    def handler(signum, frame):
        if requested["stop"]:
            raise KeyboardInterrupt
        requested["stop"] = True
        log.warning("Ctrl-C: stopping after this step and saving (Ctrl-C again to abort without saving)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield lambda: False
        return
    try:
        yield lambda: requested["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("train-dark")(train_dark)
