"""``dancekit catalog``: stars found on the sharp image, fluxes by forced PSF photometry on the average stack."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

from typing import Annotated, Any, Optional

import typer

from dancekit.commands import options as opt
from dancekit.commands.evaluate import _plain, _split_ext
from dancekit.commands.runtime import cli_command, log
from dancekit.errors import DancekitError, InputError, ParameterError

FLAGS_HELP = "1 saturated, 2 edge, 4 blended, 16 non-positive flux (no mag), 32 fit failed"
WCS_TOLERANCE = 0.05  # pixels: two WCS that place the image corners closer than this are one WCS


@cli_command
def catalog(
    image: Annotated[str, typer.Argument(help="Image to detect stars on (the inferred image), FILE or FILE[EXT]; '-' = stdin.", show_default=False)],
    output: opt.Output,
    measure: Annotated[Optional[str], typer.Option("--measure", "-m", help="Image to measure fluxes on (the average stack), FILE or FILE[EXT]; default: the detection image.")] = None,
    psf: Annotated[Optional[str], typer.Option("--psf", help="PSF of the measure image, FILE or FILE[EXT] (OVERSAMP in its header, default 1); default: built from its isolated stars.")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Detection threshold on the detection image, x its background rms.")] = 5.0,
    min_area: Annotated[int, typer.Option("--min-area", help="Pixels above the threshold a detection needs.")] = 5,
    zero_point: Annotated[Optional[float], typer.Option("--zero-point", help="mag = ZP - 2.5 log10(flux) (default: MAGZPT or PHOTZP of the measure image, else 0 = instrumental).")] = None,
    gain: Annotated[Optional[float], typer.Option("--gain", help="Photons (e-) per measure-image unit, for the stars' Poisson noise (default: 1 for BUNIT electron, else GAIN, times NCOMBINE; none when unknown).")] = None,
    saturation: Annotated[Optional[float], typer.Option("--saturation", help="Measure-image level of saturated pixels (default: SATURATE; none when absent).")] = None,
    truth: Annotated[Optional[str], typer.Option("--truth", "-t", help="Simulated stars, FILE[EXT] (default EXT: CATALOG): adds true magnitudes and residuals.")] = None,
    match_radius: Annotated[float, typer.Option("--match-radius", help="Largest distance of a match to a true star [pixels].")] = 2.0,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
):
    """Catalogue the stars of a field: detect on the sharp image, measure on the average stack.

    Stars are found on the detection image (sep, with deblending) and their positions refined
    there (windowed centroids); their fluxes are fitted on the measure image by forced PSF
    photometry at those positions, every star together with all its neighbours and a smooth
    background, with an effective PSF built from the measure image's isolated stars (photutils
    EPSFBuilder, rebuilt once with their neighbours subtracted) or given with --psf.

    Output: a CATALOG table (x, y: 0-based pixels; ra, dec [deg] from the WCS, NaN without one;
    flux, flux_err in measure-image units; mag, mag_err; flags: 1 saturated, 2 edge, 4 blended,
    16 non-positive flux, 32 fit failed) and the PSF used as extension PSF. With --truth, the
    columns true_index, x_true, y_true, mag_true, mag_residual and a summary of the residuals.

    Example: dancekit catalog inferred.fits --measure average.fits --truth video.fits[CATALOG] -o stars.fits --json
    """
    import numpy as np

    from dancekit.io.fits_out import check_output
    from dancekit.photometry.dual_image import DETECTION, MEASURE, dual_image_catalogue
    from dancekit.photometry.extraction import instrumental_magnitude

    opt.check_json_with_output(as_json, output)
    check_output(output, overwrite)
    for name, value in (("--threshold", threshold), ("--match-radius", match_radius)):
        if not value > 0:
            raise ParameterError(f"must be > 0, got {value}", source=name)
    if min_area < 1:
        raise ParameterError(f"must be >= 1 pixel, got {min_area}", source="--min-area")
    if gain is not None and not gain > 0:
        raise ParameterError(f"must be > 0 e- per unit, got {gain}", source="--gain")
    sharp, sharp_header, sharp_name = _read_image(image)
    measured, header, measure_name = (sharp, sharp_header, sharp_name) if measure is None else _read_image(measure)
    if measured.shape != sharp.shape:
        raise InputError(f"{sharp_name} is {sharp.shape[0]}x{sharp.shape[1]} px but {measure_name} is "
                         f"{measured.shape[0]}x{measured.shape[1]} px: detect and measure on one pixel grid",
                         source=measure_name)
    wcs = _common_wcs(sharp_header, header, sharp.shape, sharp_name, measure_name)
    given_psf = _read_psf(psf) if psf else None
    gain = gain if gain is not None else _gain(header)
    saturation = saturation if saturation is not None else _header_float(header, ("SATURATE", "SATLEVEL"))
    zp = zero_point if zero_point is not None else (_header_float(header, ("MAGZPT", "PHOTZP")) or 0.0)
    try:
        result = dual_image_catalogue(sharp, measured, threshold=threshold, min_area=min_area, psf=given_psf,
                                      gain=gain, saturation=np.inf if saturation is None else saturation)
    except DancekitError as exc:
        exc.source = {DETECTION: sharp_name, MEASURE: measure_name}.get(exc.source, exc.source) or measure_name
        raise
    mag, mag_err = instrumental_magnitude(result.flux, result.flux_err, gain=1.0, exptime=1.0)
    columns = {"x": result.x, "y": result.y, **_sky(wcs, result.x, result.y), "flux": result.flux,
               "flux_err": result.flux_err, "mag": mag + zp, "mag_err": mag_err, "flags": result.flags}
    comparison = _compare(truth, columns, sharp.shape, match_radius) if truth else None
    _write(output, overwrite, columns, result, header, sharp_name, measure_name, psf, zp, gain, wcs)
    log.info("%s: %d stars (%d unflagged), PSF %s, FWHM %.2f px -> %s", sharp_name, len(result),
             int(np.sum(result.flags == 0)), f"from {result.psf.n_stars} stars" if psf is None else psf,
             result.psf.fwhm, output)
    if as_json:
        opt.print_json({"command": "catalog", "detect": sharp_name, "measure": measure_name, "output": output,
                        "stars": len(result), "unflagged": int(np.sum(result.flags == 0)),
                        "flagged": _flag_counts(result.flags), "zero_point": zp, "gain": gain,
                        "psf": {"source": psf or "built", "stars": result.psf.n_stars, "fwhm_px": result.psf.fwhm},
                        "detect_rms": result.detect_rms, "measure_rms": result.measure_rms,
                        "confusion_error": result.confusion_error,
                        "truth": _plain(comparison.summary) if comparison else None})


def _read_image(spec: str):
    import numpy as np

    from dancekit.io.fits_in import FitsReader

    path, ext = _split_ext(spec)
    with FitsReader(path) as reader:
        data, header = reader.image(ext, ndim=2), reader.header(ext)
        name = f"{reader.name}[{ext}]" if ext is not None else reader.name
    if not np.isfinite(data).any():
        raise InputError("the image is NaN everywhere", source=name)
    return data, header, name


def _read_psf(spec: str):
    from dancekit.photometry.epsf import psf_from_array

    data, header, name = _read_image(spec)
    try:
        return psf_from_array(data, int(header.get("OVERSAMP", 1)))
    except (InputError, ValueError, TypeError) as exc:
        raise InputError(f"unusable PSF: {getattr(exc, 'message', exc)}", source=name) from None


def _common_wcs(sharp_header, header, shape, sharp_name, measure_name):
    """The celestial WCS of the images; refuses two WCS that place the image differently."""
    import numpy as np

    first, second = _celestial_wcs(sharp_header), _celestial_wcs(header)
    if first is not None and second is not None:
        height, width = shape
        x = np.array([0, width - 1, 0, width - 1, (width - 1) / 2])
        y = np.array([0, 0, height - 1, height - 1, (height - 1) / 2])
        ra, dec = first.all_pix2world(x, y, 0)
        x2, y2 = second.all_world2pix(ra, dec, 0)
        offset = float(np.max(np.hypot(x2 - x, y2 - y)))
        if not offset <= WCS_TOLERANCE:
            raise InputError(f"the WCS of {sharp_name} and {measure_name} differ by {offset:.3g} px on the image: "
                             "detect and measure on one pixel grid", source=measure_name)
    elif (first is None) != (second is None):
        log.warning("only %s has a WCS; ra/dec come from it", sharp_name if first is not None else measure_name)
    return first if first is not None else second


def _celestial_wcs(header):
    import warnings

    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
    except Exception:  # a broken WCS only costs the ra/dec columns
        return None
    return wcs.celestial if wcs.has_celestial else None


def _sky(wcs, x, y) -> dict:
    import numpy as np

    if wcs is None:
        return {"ra": np.full(x.size, np.nan), "dec": np.full(x.size, np.nan)}
    ra, dec = wcs.all_pix2world(x, y, 0)
    return {"ra": np.mod(ra, 360.0), "dec": np.asarray(dec)}


def _gain(header) -> Optional[float]:
    """Photons per measure-image unit: 1 (electrons) or GAIN (ADU), times the frames averaged."""
    unit = str(header.get("BUNIT", "")).strip().lower()
    per_unit = 1.0 if unit in ("electron", "electrons", "e-") else _header_float(header, ("GAIN",)) if unit == "adu" else None
    if per_unit is None or not per_unit > 0:
        return None
    frames = _header_float(header, ("NCOMBINE",)) or 1.0
    return per_unit * max(frames, 1.0)


def _header_float(header, keys) -> Optional[float]:
    for key in keys:
        try:
            return float(header[key])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _compare(truth: str, columns: dict, shape, radius: float):
    """Match to the simulated stars; adds the truth columns to ``columns``."""
    import numpy as np

    from dancekit.io.fits_in import FitsReader
    from dancekit.photometry.truth import compare_to_truth

    path, ext = _split_ext(truth)
    with FitsReader(path) as reader:
        table = reader.table(ext if ext is not None else ("CATALOG" if reader.has("CATALOG") else None))
    names = {n.lower(): n for n in (table.dtype.names or ())}
    missing = [c for c in ("x", "y", "mag") if c not in names]
    if missing:
        raise InputError(f"the truth table has no {', '.join(missing)} column (it has: {', '.join(names.values()) or 'none'})",
                         source=truth)
    x_true, y_true, mag_true = (np.asarray(table[names[c]], float) for c in ("x", "y", "mag"))
    comparison = compare_to_truth(columns["x"], columns["y"], columns["mag"], columns["flags"], x_true, y_true, mag_true,
                                  shape, radius)
    matched = comparison.true_index >= 0
    pick = np.where(matched, comparison.true_index, 0)
    columns.update(true_index=comparison.true_index, x_true=np.where(matched, x_true[pick], np.nan),
                   y_true=np.where(matched, y_true[pick], np.nan), mag_true=np.where(matched, mag_true[pick], np.nan),
                   mag_residual=comparison.mag_residual)
    log.info("truth: %d of %d catalogue stars matched (%d true stars); residual median %.3f, std %.3f mag",
             comparison.n_matched, len(columns["x"]), comparison.n_true, comparison.summary["mag_residual_median"],
             comparison.summary["mag_residual_std"])
    comparison.summary["truth"] = truth
    return comparison


def _write(output, overwrite, columns, result, header, sharp_name, measure_name, psf, zp, gain, wcs) -> None:
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    from dancekit.io.fits_out import write_hdus
    from dancekit.io.provenance import Provenance, carry_header
    from dancekit.photometry.dual_image import CATALOGUE_FLAGS

    primary = fits.PrimaryHDU()
    carry_header(header, primary.header, with_wcs=wcs is not None)
    primary.header["DETECT"] = (sharp_name[-68:], "image the stars were detected on")
    primary.header["MEASURE"] = (measure_name[-68:], "image the fluxes were fitted on")
    Provenance.from_argv().apply(primary.header)
    table = fits.table_to_hdu(Table(columns))
    table.name = "CATALOG"
    unit = str(header.get("BUNIT", "")).strip()
    units = {"x": "pix", "y": "pix", "ra": "deg", "dec": "deg", "flux": unit, "flux_err": unit, "mag": "mag",
             "mag_err": "mag", "x_true": "pix", "y_true": "pix", "mag_true": "mag", "mag_residual": "mag"}
    for index, name in enumerate(columns, 1):
        if units.get(name):
            table.header[f"TUNIT{index}"] = units[name]
    table.header["XYORIGIN"] = (0, "x, y are 0-based pixels (centre of the first pixel = 0)")
    table.header["MAGZPT"] = (zp, "mag = MAGZPT - 2.5 log10(flux)")
    table.header["NSTARS"] = (len(result), "stars in the catalogue")
    if gain:
        table.header["PHOTGAIN"] = (gain, "photons per measure unit used for the Poisson noise")
    table.header["CONFERR"] = (float(result.confusion_error), "confusion flux error in flux_err (unfound stars)")
    for bit, text in CATALOGUE_FLAGS.items():
        table.header[f"FLAG{bit}"] = (text.split(":")[0], text)
    table.header["COMMENT"] = "flags: bit mask, " + FLAGS_HELP
    table.header["COMMENT"] = "flux: light inside the PSF stamp, fitted at fixed positions with all neighbours"
    psf_hdu = fits.ImageHDU(np.asarray(result.psf.psf.data, dtype=np.float32), name="PSF")
    psf_hdu.header["OVERSAMP"] = (int(np.asarray(result.psf.psf.oversampling)[0]), "PSF samples per image pixel")
    psf_hdu.header["PSFSRC"] = ((psf or "built from the measure image")[-68:], "where the PSF came from")
    psf_hdu.header["PSFSTARS"] = (result.psf.n_stars, "stars the ePSF was built from (0: given)")
    psf_hdu.header["PSFFWHM"] = (round(result.psf.fwhm, 4), "[pix] FWHM of the PSF")
    write_hdus(fits.HDUList([primary, table, psf_hdu]), output, overwrite)


def _flag_counts(flags) -> dict:
    from dancekit.photometry.dual_image import CATALOGUE_FLAGS

    return {text.split(":")[0]: int(((flags & bit) != 0).sum()) for bit, text in CATALOGUE_FLAGS.items()}


def register(app: typer.Typer) -> None:
    app.command("catalog")(catalog)
