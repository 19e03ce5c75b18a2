"""Issue 13's done-when criteria on held-out fields, as one Markdown table made from the numbers.

For each field (King clusters of 2500 and 6000 stars on 256² at seeing 1.3", and random fields; 96
frames; seeds never used for training or model selection) the video is simulated once and kept
in OUTDIR with its average stack and lucky stack (`dancekit average`, `--lucky 0.1`); the model
(bundled by default, or --model) makes the inferred image (`dancekit infer-tiles`, default
options), and `dancekit catalog inferred --measure average` the catalogue. Products that depend
on the model carry a tag of its file's hash, so another checkpoint is inferred afresh while the
videos and stacks are reused. Then, all measured by the real commands:

* `dancekit evaluate average lucky inferred --truth video[TRUTH]`: precision, recall, mean and
  median D50, Strehl, and σΔmag (10-px apertures against the truth image's, over the true stars
  matched in every image), plus the threshold sweep for recall at equal precision;
* the catalogue: precision and recall against evaluate's true-star list (2 px, one-to-one), and
  σΔmag of its magnitudes against the simulated (CATALOG) ones, beside 10-px aperture photometry
  on the average stack of the same stars at the same positions (each minus its median: the zero
  point). Stars matched brightest first within 2 px (`catalog --truth`).

Criteria (issue 13, "Done when"): mean D50 average/inferred >= 2.5; Strehl inferred/average >= 4;
more stars recovered at equal precision than the average stack (recall of each from its sweep at
precision >= P, P the lower of the two best-F1 precisions, as figures/table1.md); σΔmag inferred
<= average (stars matched in both); catalogue σΔmag <= 0.8 x the aperture one; catalogue recall
>= the inferred image's. A field can also be an existing video, FILE.fits (its TRUTH and CATALOG
extensions as simulate-video writes them).

Usage (nice it: it simulates and infers on a shared machine; PYTHONPATH=the checkout):
    python scripts/heldout_check.py OUTDIR [--model PATH] [--fields king:93101 king:94001:6000 random:93111 random:93112]
        [--frames 96] [--propagation geometric] [--report OUTDIR/heldout.md]
Writes the table to --report and every number to the same name with .json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from dancekit.metrics.detection import background_subtracted, detect_stars, match_one_to_one
from dancekit.metrics.evaluate import recall_at_precision
from dancekit.metrics.star_quality import aperture_magnitude
from figure_table1 import dancekit  # the same runner of the real commands (scripts/ is on sys.path)

HELD_OUT = ["king:93101", "king:94001:6000", "random:93111", "random:93112"]  # training used 10000-10206, 20000-20015
BUNDLED = Path(__file__).resolve().parent.parent / "dancekit" / "weights" / "c2pu_default.pt"
MAD = 1.4826
IMAGES = ("average", "lucky", "inferred")
GOALS = {"d50_ratio": 2.5, "strehl_ratio": 4.0, "catalogue_ratio": 0.8}


def model_tag(model: Path) -> str:
    return f"{model.stem}-{hashlib.sha256(model.read_bytes()).hexdigest()[:8]}"


def products(out: Path, spec: str, frames: int, model: Path, tag: str, propagation: str,
             size: int = 256, stride: int = 1) -> dict[str, Path]:
    """The video (simulated, or a FILE.fits given as the field) and its stacks, made once and shared
    by every model; the model's inferred image and catalogue."""
    given = Path(spec) if spec.endswith(".fits") else None
    parts = spec.split(":")
    kind, seed = ("file", 0) if given else (parts[0], int(parts[1]))
    stars = int(parts[2]) if len(parts) > 2 else 2500 * size**2 // 256**2
    name = given.stem if given else f"{kind}_{seed}" + (f"_{stars}" if len(parts) > 2 else "")
    paths = {"video": given or out / f"{name}.fits", "average": out / f"{name}_average.fits",
             "lucky": out / f"{name}_lucky.fits", "inferred": out / tag / f"{name}_inferred.fits",
             "stars": out / tag / f"{name}_stars.fits", "metrics": out / tag / f"{name}_metrics.fits"}
    paths["inferred"].parent.mkdir(parents=True, exist_ok=True)
    if not paths["video"].exists():
        field = ["--cluster", "king", "--stars", str(stars)] if kind == "king" else []
        partial = paths["video"].with_suffix(".partial.fits")
        dancekit("simulate-video", "--frames", str(frames), "--size", str(size), "--seeing", "1.3", *field,
                 "--propagation", propagation, "--seed", str(seed), "-o", str(partial), "--overwrite", "-q")
        partial.rename(paths["video"])
    if not paths["average"].exists():
        dancekit("average", str(paths["video"]), "-o", str(paths["average"]), "-q")
    if not paths["lucky"].exists():
        dancekit("average", str(paths["video"]), "--lucky", "0.1", "-o", str(paths["lucky"]), "-q")
    if not paths["inferred"].exists():
        dancekit("infer-tiles", str(paths["video"]), "--model", str(model), "--stride", str(stride), "-o",
                 str(paths["inferred"]), "-q")
    return paths


def spread(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if values.size < 2:
        return {"std": float("nan"), "robust_std": float("nan"), "n": int(values.size)}
    median = float(np.median(values))
    return {"std": float(np.std(values - median)), "robust_std": float(MAD * np.median(np.abs(values - median))),
            "n": int(values.size)}


def image_metrics(paths: dict[str, Path]) -> tuple[dict, float]:
    """evaluate's numbers per image, median D50 and σΔmag over common stars from its STARS table."""
    report = json.loads(dancekit("evaluate", *(str(paths[k]) for k in IMAGES), "--truth", f"{paths['video']}[TRUTH]",
                                 "-o", str(paths["metrics"]), "--overwrite", "--json", "-q"))
    stars = Table.read(paths["metrics"], hdu="STARS")
    images = np.char.strip(np.asarray(stars["image"]).astype(str))
    index = {k: np.asarray(stars["truth_index"])[images == str(paths[k])] for k in IMAGES}
    residual = {k: dict(zip(index[k], np.asarray(stars["mag_residual"])[images == str(paths[k])])) for k in IMAGES}
    common = set.intersection(*(set(index[k].tolist()) for k in IMAGES))
    pair = sorted(set(index["average"].tolist()) & set(index["inferred"].tolist()))
    metrics = {}
    for key, result in zip(IMAGES, report["results"]):
        mine = images == str(paths[key])
        d50 = np.asarray(stars["d50"])[mine]
        in_pair = np.isin(index[key], pair)
        metrics[key] = {
            "precision": result["precision"], "recall": result["recall"], "n_detected": result["n_detected"],
            "mean_d50": result["mean_d50"], "median_d50": float(np.nanmedian(d50)), "strehl": result["mean_strehl"],
            "pair_mean_d50": float(np.nanmean(d50[in_pair])),
            "pair_strehl": float(np.nanmean(np.asarray(stars["strehl"])[mine][in_pair])),
            "sigma_mag": spread(np.array([residual[key][j] for j in sorted(common)], float)),
            "sigma_mag_pair": spread(np.array([residual[key].get(j, np.nan) for j in pair], float)),
            "best": result["best"], "sweep": {k: list(v) for k, v in result["sweep"].items()},
        }
    return metrics, report["truth_level"]


def catalogue_metrics(paths: dict[str, Path], truth_level: float) -> dict:
    summary = json.loads(dancekit("catalog", str(paths["inferred"]), "--measure", str(paths["average"]), "--truth",
                                  f"{paths['video']}[CATALOG]", "-o", str(paths["stars"]), "--overwrite", "--json",
                                  "-q"))
    stars = Table.read(paths["stars"], hdu="CATALOG")
    x, y = np.asarray(stars["x"], float), np.asarray(stars["y"], float)
    # precision and recall as evaluate counts them: its true-star list, from the TRUTH image at its level
    truth, _ = background_subtracted(fits.getdata(paths["video"], "TRUTH").astype(float))
    true_stars = detect_stars(truth, truth_level)
    i, _ = match_one_to_one(x, y, true_stars.x, true_stars.y, 2.0)
    # σΔmag against the simulated magnitudes; the same stars by 10-px apertures on the average stack
    data, _ = background_subtracted(fits.getdata(paths["average"]).astype(float))
    aperture = aperture_magnitude(data, x, y, 10.0)
    mag, mag_true = np.asarray(stars["mag"], float), np.asarray(stars["mag_true"], float)
    both = (np.asarray(stars["true_index"]) >= 0) & np.isfinite(mag) & np.isfinite(aperture)
    clean = both & (np.asarray(stars["flags"]) == 0)
    result = {
        "stars": summary["stars"], "psf_stars": summary["psf"]["stars"], "fwhm_px": summary["psf"]["fwhm_px"],
        "precision": len(i) / len(x) if len(x) else float("nan"), "recall": len(i) / len(true_stars),
        "sigma_mag": spread((mag - mag_true)[both]), "sigma_mag_aperture": spread((aperture - mag_true)[both]),
        "sigma_mag_clean": spread((mag - mag_true)[clean]), "sigma_mag_aperture_clean": spread((aperture - mag_true)[clean]),
        "offset": float(np.median((mag - mag_true)[both])) if both.any() else float("nan"),
    }
    result["ratio"] = result["sigma_mag"]["std"] / result["sigma_mag_aperture"]["std"]
    return result


def criteria(images: dict, catalogue: dict) -> list[tuple[str, str, bool]]:
    """(criterion, the numbers, met) for one field."""
    average, inferred = images["average"], images["inferred"]
    d50_ratio = average["mean_d50"] / inferred["mean_d50"]
    strehl_ratio = inferred["strehl"] / average["strehl"]
    target = min(average["best"]["precision"], inferred["best"]["precision"])  # as figures/table1.md
    recall = {k: recall_at_precision({q: np.asarray(v, float) for q, v in images[k]["sweep"].items()}, target)
              for k in ("average", "inferred")}
    recall = {k: 0.0 if not np.isfinite(v) else v for k, v in recall.items()}  # never that precise: nothing recovered
    sigma_avg, sigma_inf = average["sigma_mag_pair"], inferred["sigma_mag_pair"]
    sigma_cat, sigma_ap = catalogue["sigma_mag"], catalogue["sigma_mag_aperture"]
    return [
        ("mean D50 average / inferred >= 2.5",
         f"{average['mean_d50']:.2f} / {inferred['mean_d50']:.2f} = {d50_ratio:.2f} "
         f"(stars matched in both: {average['pair_mean_d50'] / inferred['pair_mean_d50']:.2f})",
         d50_ratio >= GOALS["d50_ratio"]),
        ("Strehl inferred / average >= 4",
         f"{inferred['strehl']:.3f} / {average['strehl']:.3f} = {strehl_ratio:.2f} "
         f"(stars matched in both: {inferred['pair_strehl'] / average['pair_strehl']:.2f})",
         strehl_ratio >= GOALS["strehl_ratio"]),
        ("recall at equal precision: inferred > average",
         f"recall at precision >= {target:.3f}: {recall['inferred']:.3f} vs {recall['average']:.3f}",
         recall["inferred"] > recall["average"]),
        ("σΔmag inferred <= average (10-px apertures, stars matched in both)",
         f"{sigma_inf['std']:.3f} vs {sigma_avg['std']:.3f} ({sigma_inf['n']} stars)", sigma_inf["std"] <= sigma_avg["std"]),
        ("catalogue σΔmag <= 0.8 x 10-px aperture on the average, same stars",
         f"{sigma_cat['std']:.3f} vs {sigma_ap['std']:.3f} = {catalogue['ratio']:.2f} x ({sigma_cat['n']} stars)",
         catalogue["ratio"] <= GOALS["catalogue_ratio"]),
        ("catalogue recall >= inferred's", f"{catalogue['recall']:.3f} vs {inferred['recall']:.3f}",
         catalogue["recall"] >= inferred["recall"]),
    ]


def field_table(spec: str, images: dict, catalogue: dict) -> list[str]:
    n_common = images["average"]["sigma_mag"]["n"]
    lines = [f"### {spec}", "",
             f"| | precision | recall | mean D50 [px] | median D50 [px] | Strehl | σΔmag |", "|---|---|---|---|---|---|---|"]
    names = {"average": "average stack", "lucky": "lucky stack (best 10 %)", "inferred": "inferred (infer-tiles)"}
    for key in IMAGES:
        r = images[key]
        lines.append(f"| {names[key]} | {r['precision']:.3f} | {r['recall']:.3f} | {r['mean_d50']:.2f} | "
                     f"{r['median_d50']:.2f} | {r['strehl']:.3f} | {r['sigma_mag']['std']:.3f} |")
    c = catalogue
    lines.append(f"| catalogue (inferred → average) | {c['precision']:.3f} | {c['recall']:.3f} | – | – | – | "
                 f"{c['sigma_mag']['std']:.3f}* |")
    lines.append(f"| 10-px aperture on average, catalogue's stars | – | – | – | – | – | {c['sigma_mag_aperture']['std']:.3f}* |")
    lines += ["", f"σΔmag of the images: 10-px apertures against the truth image's, over the {n_common} true stars "
                  f"matched in all three images. *: against the simulated magnitudes, over the {c['sigma_mag']['n']} "
                  f"catalogue stars matched to a true star (robust σ {c['sigma_mag']['robust_std']:.3f} vs "
                  f"{c['sigma_mag_aperture']['robust_std']:.3f}; unflagged only: {c['sigma_mag_clean']['std']:.3f} vs "
                  f"{c['sigma_mag_aperture_clean']['std']:.3f}, {c['sigma_mag_clean']['n']} stars). "
                  f"Catalogue: {c['stars']} stars, PSF from {c['psf_stars']} stars, FWHM {c['fwhm_px']:.2f} px.", "",
              "| criterion | numbers | met |", "|---|---|---|"]
    lines += [f"| {name} | {numbers} | {'yes' if met else '**no**'} |" for name, numbers, met in criteria(images, catalogue)]
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--model", type=Path, default=BUNDLED, help="U-Net checkpoint (default: the bundled model)")
    parser.add_argument("--fields", nargs="+", default=HELD_OUT, help="KIND:SEED[:STARS] (KIND king or random; STARS of a King cluster, default 2500 on 256²), or an existing video FILE.fits")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", type=int, default=256, help="field size, pixels (smaller only to try the script)")
    parser.add_argument("--propagation", default="geometric", choices=("geometric", "fresnel"),
                        help="of the simulated videos (geometric, as the training set)")
    parser.add_argument("--stride", type=int, default=1,
                        help="infer-tiles --stride (default 1, its default; larger only when CPU is short)")
    parser.add_argument("--report", type=Path, help="Markdown table (default: OUTDIR/heldout.md)")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    report = args.report or args.outdir / "heldout.md"
    tag = model_tag(args.model) + (f"-s{args.stride}" if args.stride != 1 else "")
    lines = [f"## Held-out fields, model {args.model} ({tag})", "",
             f"Made by `python scripts/heldout_check.py {args.outdir} --model {args.model} --stride {args.stride}`; "
             f"infer-tiles stride {args.stride}{' (its default)' if args.stride == 1 else ' (NOT the default 1)'}; "
             f"{args.frames} frames, "
             f"{args.size}², seeing 1.3\", {args.propagation} propagation; issue 13's criteria.", ""]
    numbers, all_met = {"model": str(args.model), "tag": tag, "fields": {}}, True
    for spec in args.fields:
        paths = products(args.outdir, spec, args.frames, args.model, tag, args.propagation, args.size, args.stride)
        images, truth_level = image_metrics(paths)
        catalogue = catalogue_metrics(paths, truth_level)
        met = [m for _, _, m in criteria(images, catalogue)]
        all_met &= all(met)
        numbers["fields"][spec] = {"images": images, "catalogue": catalogue, "criteria_met": met}
        lines += field_table(spec, images, catalogue)
        print(f"{spec}: {sum(met)} of {len(met)} criteria met", file=sys.stderr)
    lines.append(f"All criteria met on every field: {'yes' if all_met else '**no**'}.")
    report.write_text("\n".join(lines) + "\n")
    report.with_suffix(".json").write_text(json.dumps(numbers, indent=1, default=float) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
