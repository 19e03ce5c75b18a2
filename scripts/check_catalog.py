"""Check `dancekit catalog` against the goals of issue 13 on simulated fields it was not tuned on.

For each field (a King cluster of 2500 stars on 256² at seeing 1.3", and random fields), the video
is simulated (once: kept in OUTDIR), reduced by `dancekit average` and by `dancekit infer-tiles`
with the bundled model and default options, judged by `dancekit evaluate`, and catalogued by
`dancekit catalog inferred --measure average --truth video[CATALOG]`. Then:

* σΔmag: the catalogue's magnitudes against the true (simulated) magnitudes of the stars it
  matched (brightest first, 2 px), against 10-px-diameter aperture photometry of the same stars
  at the same positions on the average stack (background subtracted as `dancekit evaluate` does);
  each minus its median (the zero point). Goal: catalogue ≤ 0.8 × aperture.
* recall, counted as `dancekit evaluate` counts it: true stars found by sep on the TRUTH image at
  evaluate's level, matched one-to-one within 2 px. Goal: catalogue ≥ the inferred image's.

Every number comes from the real commands; nothing is typed by hand. Usage:
    python scripts/check_catalog.py OUTDIR [--fields king:93101 random:93111 random:93112] [--frames 96]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from dancekit.metrics.detection import background_subtracted, detect_stars, match_one_to_one
from dancekit.metrics.star_quality import aperture_magnitude

HELD_OUT = ["king:93101", "random:93111", "random:93112"]  # seeds never used while developing the command
MAD = 1.4826


def dancekit(*args: str) -> str:
    command = [sys.executable, "-m", "dancekit", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def products(out: Path, kind: str, seed: int, frames: int) -> dict[str, Path]:
    """The video, its average stack and inferred image (each made once)."""
    name = f"{kind}_{seed}"
    paths = {k: out / f"{name}{suffix}.fits" for k, suffix in (("video", ""), ("average", "_average"),
                                                              ("inferred", "_inferred"), ("stars", "_stars"))}
    if not paths["video"].exists():
        field = ["--cluster", "king", "--stars", "2500"] if kind == "king" else []
        dancekit("simulate-video", "--frames", str(frames), "--size", "256", "--seeing", "1.3", *field,
                 "--seed", str(seed), "-o", str(paths["video"]), "-q")
    if not paths["average"].exists():
        dancekit("average", str(paths["video"]), "-o", str(paths["average"]), "-q")
    if not paths["inferred"].exists():
        dancekit("infer-tiles", str(paths["video"]), "-o", str(paths["inferred"]), "-q")
    return paths


def spread(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    median = float(np.median(values))
    return {"std": float(np.std(values - median)), "robust_std": float(MAD * np.median(np.abs(values - median)))}


def check(paths: dict[str, Path]) -> dict:
    report = json.loads(dancekit("evaluate", str(paths["average"]), str(paths["inferred"]), "--truth",
                                 f"{paths['video']}[TRUTH]", "--json", "-q"))
    average, inferred = report["results"]
    summary = json.loads(dancekit("catalog", str(paths["inferred"]), "--measure", str(paths["average"]), "--truth",
                                  f"{paths['video']}[CATALOG]", "-o", str(paths["stars"]), "--overwrite", "--json",
                                  "-q"))
    stars = Table.read(paths["stars"], hdu="CATALOG")
    # recall as evaluate counts it: one true-star list from the TRUTH image at evaluate's level
    truth, _ = background_subtracted(fits.getdata(paths["video"], "TRUTH").astype(float))
    true_stars = detect_stars(truth, report["truth_level"])
    i, _ = match_one_to_one(np.asarray(stars["x"]), np.asarray(stars["y"]), true_stars.x, true_stars.y, 2.0)
    # σΔmag: the same matched stars, PSF magnitudes against 10-px apertures on the average stack
    data, _ = background_subtracted(fits.getdata(paths["average"]).astype(float))
    aperture = aperture_magnitude(data, np.asarray(stars["x"]), np.asarray(stars["y"]), 10.0)
    matched = np.asarray(stars["true_index"]) >= 0
    both = matched & np.isfinite(stars["mag"]) & np.isfinite(aperture)
    clean = both & (np.asarray(stars["flags"]) == 0)
    psf_residual = np.asarray(stars["mag"] - stars["mag_true"])
    aperture_residual = aperture - np.asarray(stars["mag_true"])
    result = {
        "stars": summary["stars"], "psf_stars": summary["psf"]["stars"], "fwhm_px": summary["psf"]["fwhm_px"],
        "n_true_evaluate": len(true_stars), "recall_catalog": len(i) / len(true_stars),
        "recall_inferred": inferred["recall"], "recall_average": average["recall"],
        "precision_inferred": inferred["precision"], "n_compared": int(both.sum()), "n_clean": int(clean.sum()),
        "psf": spread(psf_residual[both]), "aperture": spread(aperture_residual[both]),
        "psf_clean": spread(psf_residual[clean]), "aperture_clean": spread(aperture_residual[clean]),
        "psf_offset": float(np.median(psf_residual[both])),
    }
    result["ratio"] = result["psf"]["std"] / result["aperture"]["std"]
    result["ratio_robust"] = result["psf"]["robust_std"] / result["aperture"]["robust_std"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--fields", nargs="+", default=HELD_OUT, help="KIND:SEED, KIND king or random")
    parser.add_argument("--frames", type=int, default=96)
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    lines = ["| field | stars | σΔmag catalogue (robust) | σΔmag 10-px aperture (robust) | ratio (goal <= 0.8) | "
             "unflagged: catalogue / aperture | recall catalogue | recall inferred (average) | goals met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for spec in args.fields:
        kind, seed = spec.split(":")
        r = check(products(args.outdir, kind, int(seed), args.frames))
        met = r["ratio"] <= 0.8 and r["recall_catalog"] >= r["recall_inferred"]
        lines.append(
            f"| {kind} {seed} | {r['stars']} ({r['n_compared']} matched) | {r['psf']['std']:.3f} ({r['psf']['robust_std']:.3f}) | "
            f"{r['aperture']['std']:.3f} ({r['aperture']['robust_std']:.3f}) | {r['ratio']:.2f} | "
            f"{r['psf_clean']['std']:.3f} / {r['aperture_clean']['std']:.3f} ({r['n_clean']}) | "
            f"{r['recall_catalog']:.3f} | {r['recall_inferred']:.3f} ({r['recall_average']:.3f}) | {'yes' if met else 'NO'} |")
        print(json.dumps({"field": spec, **r}), file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
