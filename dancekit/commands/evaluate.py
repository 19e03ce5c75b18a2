"""``dancekit evaluate``: the quality metrics of Bialek et al. 2024 §4 of images against their truth."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import re
from typing import Annotated, Any, Optional

import typer

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, for_each_input, log
from dancekit.errors import InputError, ParameterError

DEFAULT_SWEEP = "1.5,2,3,4,5,7,10,15,20,30,50"
STAR_COLUMNS = ("truth_index", "x_true", "y_true", "x", "y", "mag_true", "mag_residual", "centroid_residual", "d50", "d50_true",
                "strehl")


@cli_command
def evaluate(
    inputs: Annotated[list[str], typer.Argument(help="Images to judge, each FILE or FILE[EXT] (e.g. out.fits[AVERAGE]); '-' = stdin.", show_default=False)],
    truth: Annotated[str, typer.Option("--truth", "-t", help="Turbulence-free truth, FILE[EXT] (default EXT: TRUTH if present, else the first image).")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="FITS file of tables: SUMMARY, BYMAG, SWEEP, STARS ('-' = stdout).")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Detection threshold, in units of the image's background rms.")] = 5.0,
    truth_level: Annotated[Optional[float], typer.Option("--truth-level", help="Detection level on the truth [truth units per pixel] (default: --threshold x the lowest background rms of the images), one true-star list for all images.")] = None,
    thresholds: Annotated[str, typer.Option("--thresholds", help="Thresholds of the precision-recall sweep (comma-separated, x rms).")] = DEFAULT_SWEEP,
    match_radius: Annotated[float, typer.Option("--match-radius", help="Largest distance of a true match [pixels].")] = 2.0,
    aperture: Annotated[float, typer.Option("--aperture", help="Aperture diameter for magnitudes [pixels] (the paper: 10).")] = 10.0,
    mag_bins: Annotated[Optional[str], typer.Option("--mag-bins", help="Magnitude bins START:STOP:STEP (default: 1-mag bins over the truth).")] = None,
    zero_point: Annotated[Optional[float], typer.Option("--zero-point", help="Magnitude zero point (default: the truth's MAGZPT or PHOTZP, else 0 = instrumental).")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Measure precision, recovered stars, D50, Strehl and residuals of images against the truth.

    Stars are found with sep on each image and on the truth (one true-star list for all
    images, at --truth-level) and matched one-to-one within the match radius; matched stars
    give D50 (diameter holding half the flux, other sources masked), the Strehl ratio of
    Roberts et al. 2004 (10x10-px boxes, relative to the truth), 10-px aperture magnitude
    residuals and centroid residuals, all binned by truth magnitude, plus a detection-threshold
    sweep (precision-recall curve) and its best-F1 point. With several images, the means are
    also given over the common stars, those matched in every image.

    Example: dancekit evaluate image.fits image.fits[AVERAGE] --truth video.fits[TRUTH] --json
    """
    import numpy as np

    from dancekit.io.fits_in import FitsReader
    from dancekit.metrics.evaluate import (best_operating_point, common_star_summary, evaluate_image, noise_level,
                                           threshold_sweep)

    if output is not None:
        opt.check_json_with_output(as_json, output)
    if output is None and not as_json:
        raise ParameterError("nothing to write: give -o metrics.fits and/or --json", source="-o")
    sweep_levels = _numbers(thresholds, "--thresholds")
    bins = _bins(mag_bins)
    for name, value in (("--threshold", threshold), ("--match-radius", match_radius), ("--aperture", aperture)):
        if not value > 0:
            raise ParameterError(f"must be > 0, got {value}", source=name)
    if output is not None:
        from dancekit.io.fits_out import check_output

        check_output(output, overwrite)
    truth_path, truth_ext = _split_ext(truth)
    with FitsReader(truth_path) as reader:
        if truth_ext is None:
            truth_ext = "TRUTH" if reader.has("TRUTH") else None
        truth_image = reader.image(truth_ext, ndim=2)
        truth_header = reader.header(truth_ext)
    truth_name = f"{reader.name}[{truth_ext}]" if truth_ext is not None else reader.name
    zp = zero_point if zero_point is not None else _zero_point(truth_header)
    if truth_level is not None and not truth_level > 0:
        raise ParameterError(f"must be > 0, got {truth_level}", source="--truth-level")
    loaded: dict[str, list[tuple[Any, Any]]] = {}  # spec -> (image, header) per occurrence

    def load(spec: str) -> None:
        path, ext = _split_ext(spec)
        with FitsReader(path) as image_reader:
            image = image_reader.image(ext, ndim=2)
            header = image_reader.header(ext)
        if image.shape != truth_image.shape:
            raise InputError(f"image {spec} is {image.shape[0]}x{image.shape[1]} px but the truth {truth_name} "
                             f"is {truth_image.shape[0]}x{truth_image.shape[1]} px")
        loaded.setdefault(spec, []).append((image, header))

    code = for_each_input(inputs, load)
    if not loaded:
        return code
    level = truth_level if truth_level is not None else threshold * min(noise_level(im) for each in loaded.values() for im, _ in each)
    images = [(spec, *loaded[spec].pop(0)) for spec in inputs if loaded.get(spec)]

    def one(item: tuple) -> tuple:
        spec, image, header = item
        evaluation = evaluate_image(image, truth_image, threshold, match_radius, aperture, zp, bins, truth_level=level)
        sweep = threshold_sweep(image, truth_image, sweep_levels, match_radius, truth_level=level)
        scale = _pixel_scale(header) or _pixel_scale(truth_header)
        summary = {"image": spec, **evaluation.summary(), "truth_level": level, "zero_point": zp,
                   "pixel_scale_arcsec": scale,
                   "mean_d50_arcsec": evaluation.mean_d50 * scale if scale else None,
                   "mean_d50_truth_arcsec": evaluation.mean_d50_truth * scale if scale else None,
                   "best": best_operating_point(sweep)}
        log.info("%s: precision %.3f, recovered %.3f, mean D50 %.2f px, mean Strehl %.3f", spec,
                 evaluation.precision, evaluation.recall, evaluation.mean_d50, evaluation.mean_strehl)
        return {"summary": summary, "by_magnitude": evaluation.by_magnitude, "sweep": sweep,
                "stars": evaluation.stars}, evaluation

    ran = map_inputs(images, one, scheduler, names=[spec for spec, _, _ in images])
    results, evaluations = [r for r, _ in ran.results], [e for _, e in ran.results]
    code = max(code, ran.code)
    if len(evaluations) > 1:
        for result, common in zip(results, common_star_summary(evaluations)):
            scale = result["summary"]["pixel_scale_arcsec"]
            common["common_mean_d50_arcsec"] = common["common_mean_d50"] * scale if scale else None
            result["summary"].update(common)
    if output is not None and results:
        from dancekit.io.fits_out import write_hdus

        write_hdus(_tables(results, truth_name), output, overwrite)
    if as_json:
        opt.print_json({
            "command": "evaluate", "truth": truth_name, "truth_level": level, "failed": len(inputs) - len(results),
            "results": [{**_plain(r["summary"]), "by_magnitude": _listed(r["by_magnitude"]), "sweep": _listed(r["sweep"])}
                        for r in results],
        })
    return code


def _tables(results: list[dict], truth_name: str) -> Any:
    """SUMMARY (one row per image), BYMAG (image x bin), SWEEP (image x threshold), STARS (matched)."""
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    from dancekit.io.provenance import Provenance

    primary = fits.PrimaryHDU()
    primary.header["TRUTH"] = (truth_name[-68:], "truth image the metrics are against")
    Provenance.from_argv().apply(primary.header)
    rows = [{k: (np.nan if v is None else v) for k, v in r["summary"].items() if k != "best"} for r in results]
    for row, r in zip(rows, results):
        row.update({f"best_{k}": v for k, v in r["summary"]["best"].items()})
    hdus = [primary, fits.table_to_hdu(Table(rows=rows, names=list(rows[0])))]
    hdus[-1].name = "SUMMARY"
    for name, key in (("BYMAG", "by_magnitude"), ("SWEEP", "sweep"), ("STARS", "stars")):
        parts = []
        for r in results:
            columns = {k: np.asarray(v) for k, v in r[key].items() if key != "stars" or k in STAR_COLUMNS}
            length = len(next(iter(columns.values())))
            parts.append({"image": np.array([r["summary"]["image"]] * length), **columns})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        hdu = fits.table_to_hdu(Table(merged))
        hdu.name = name
        hdus.append(hdu)
    hdus[-1].header["COMMENT"] = "x, y: 0-based pixels; d50 in pixels; mag_residual = image - truth (10-px aperture)"
    return fits.HDUList(hdus)


def _split_ext(spec: str) -> tuple[str, Optional[str]]:
    """``file.fits[EXT]`` -> ('file.fits', 'EXT'); a plain path -> (path, None)."""
    match = re.fullmatch(r"(.+)\[([^\[\]]+)\]", spec)
    return (match.group(1), match.group(2)) if match else (spec, None)


def _numbers(text: str, option: str) -> Any:
    import numpy as np

    try:
        values = np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError:
        raise ParameterError(f"'{text}' is not a comma-separated list of numbers", source=option) from None
    if len(values) == 0 or not (values > 0).all():
        raise ParameterError(f"needs positive numbers, got '{text}'", source=option)
    return values


def _bins(text: Optional[str]) -> Any:
    import numpy as np

    if not text:
        return None
    try:
        start, stop, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise ParameterError(f"'{text}' is not START:STOP:STEP", source="--mag-bins") from None
    if not (step > 0 and stop > start):
        raise ParameterError(f"'{text}' needs STOP > START and STEP > 0", source="--mag-bins")
    return np.arange(start, stop + step / 2, step)


def _zero_point(header: Any) -> float:
    for key in ("MAGZPT", "PHOTZP"):
        if key in header:
            return float(header[key])
    return 0.0


def _pixel_scale(header: Any) -> Optional[float]:
    """Pixel scale [arcsec] from a celestial WCS, or None."""
    import warnings

    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial:
            return None
        return float(proj_plane_pixel_scales(wcs.celestial).mean() * 3600.0)
    except Exception:  # a broken WCS only costs the arcsec columns
        return None


def _listed(table: dict) -> dict:
    return {k: _plain(v.tolist() if hasattr(v, "tolist") else v) for k, v in table.items()}


def _plain(value: Any) -> Any:
    """NaN -> None (JSON null), recursively: strict JSON parsers refuse NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
