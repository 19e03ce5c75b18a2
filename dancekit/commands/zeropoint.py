"""``dancekit zeropoint``: photometric zero point of exposures against a reference catalogue."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import dataclasses
import math
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Annotated, Optional

import numpy as np
import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, for_each_input, log, report_error
from dancekit.errors import DancekitError, InputError, ParameterError
from dancekit.io.catalogue import read_reference_catalogue
from dancekit.io.fits_in import FitsReader, display_name
from dancekit.io.fits_out import check_output, output_for, write_hdus
from dancekit.io.provenance import Provenance

ARCSEC = math.pi / 180.0 / 3600.0
# Header keywords read for each exposure parameter, in order of preference.
GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN")  # e-/ADU
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "READNOISE", "RON")  # e- rms
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME")  # s
AIRMASS_KEYS = ("AIRMASS",)  # UKIRT/CASU frames give AMSTART/AMEND instead (their mean is used)
SATURATION_KEYS = ("SATURATE", "SATLEVEL")  # ADU
# Telemetry the learned correction (--model) reads from the header, in order of preference.
TELEMETRY_KEYS = {
    "temperature": ("TEMPERAT", "AMBTEMP", "TEMPOUT"),  # deg C, ambient air
    "humidity": ("HUMIDITY", "RELHUMID", "HUMIDIT"),  # percent
    "wind": ("WINDSPD", "WINDSPEE", "WIND"),  # m/s
}
_MODELS: dict = {}  # model path -> (model, normalisation, checkpoint), one load per process


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything one exposure's calibration needs besides its file (picklable for --jobs)."""

    catalogue: object
    output: str
    n_inputs: int
    ext: Optional[str]
    gain: Optional[float]
    read_noise: Optional[float]
    exptime: Optional[float]
    airmass: Optional[float]
    saturation: Optional[float]
    extinction: float
    fit_extinction: bool
    colour_term: Optional[float]
    match_radius: float
    aperture: Optional[float]
    kron: bool
    aperture_correction: bool
    measured_noise: bool
    min_stars: int
    table: bool
    overwrite: bool
    model: Optional[str] = None


@cli_command
def zeropoint(
    inputs: opt.Inputs,
    output: opt.Output,
    catalog: Annotated[str, typer.Option("--catalog", help="Reference catalogue: FITS table with ra, dec (deg), the band's mag, optional errors and colours.")],
    band: Annotated[Optional[str], typer.Option("--band", help="Band of the catalogue to calibrate to (r, g, K, bp...); default: a column named 'mag'.")] = None,
    color: Annotated[Optional[str], typer.Option("--color", help="Colour index for the colour term, e.g. g-r (a column, or the difference of two bands).")] = None,
    color_term: Annotated[Optional[float], typer.Option("--color-term", help="Fix the colour term c (mag/mag) instead of fitting it.")] = None,
    extinction: Annotated[Optional[float], typer.Option("--extinction", help="Extinction k (mag/airmass), fixed. Default 0: the ZP absorbs it.")] = None,
    fit_extinction: Annotated[bool, typer.Option("--fit-extinction", help="Fit k and one ZP over all inputs (a photometric night at several airmasses).")] = False,
    radius: Annotated[float, typer.Option("--radius", help="Match radius, arcsec.")] = 1.5,
    aperture: Annotated[Optional[float], typer.Option("--aperture", help="Aperture radius, pixels. Default: 1.5 x the seeing FWHM measured on the image.")] = None,
    kron: Annotated[bool, typer.Option("--kron", help="Adaptive elliptical Kron apertures (SExtractor MAG_AUTO) instead of circles.")] = False,
    no_aperture_correction: Annotated[bool, typer.Option("--no-aperture-correction", help="Do not correct aperture magnitudes to total with the curve of growth.")] = False,
    measured_noise: Annotated[bool, typer.Option("--measured-noise", help="Noise from the image's background rms instead of the CCD equation (scanned plates, unknown read noise).")] = False,
    min_stars: Annotated[int, typer.Option("--min-stars", help="Fewest stars for a zero point; fewer is a failure (exit 2).")] = 5,
    table: Annotated[bool, typer.Option("--table", help="Add the matched stars as a ZPSTARS binary table extension.")] = False,
    gain: Annotated[Optional[float], typer.Option("--gain", help="e-/ADU (default: GAIN of the header).")] = None,
    read_noise: Annotated[Optional[float], typer.Option("--read-noise", help="e- rms (default: RDNOISE or READNOIS).")] = None,
    exptime: Annotated[Optional[float], typer.Option("--exptime", help="Seconds (default: EXPTIME).")] = None,
    airmass: Annotated[Optional[float], typer.Option("--airmass", help="Airmass (default: AIRMASS, or the mean of AMSTART/AMEND).")] = None,
    saturation: Annotated[Optional[float], typer.Option("--saturation", help="ADU (default: SATURATE; none when absent).")] = None,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Image extension (name or index).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Exposures calibrated in parallel (processes).")] = 1,
    model: Annotated[Optional[str], typer.Option("--model", help="Learned correction (train-zeropoint): PHOTZPML = PHOTZP + its correction; PHOTZP stays classical. Needs TEMPERAT, HUMIDITY, WINDSPD in the header.")] = None,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Fit the photometric zero point of each image and write it into a copy of its header.

    Sources are extracted (sep) and measured in apertures, matched on the sky through the
    header WCS to the reference catalogue, and m_ref - m_inst = ZP - k*X + c*colour is fitted
    with 3-sigma clipping and capped inverse-variance weights. The output is the input
    file with PHOTZP/PHOTZPER, MAGZPT/MAGZRR, NUMZPT, the colour term and extinction in the
    header; pixels are not touched. Too few usable stars is a failure (exit 2, no output).
    With --model, a network trained by train-zeropoint predicts ZP_true - ZP_classical from the
    image, the matched stars and the telemetry; PHOTZPML = PHOTZP + ZPMLCOR is added and PHOTZP
    stays the classical value.

    Example: dancekit zeropoint night/*.fits --catalog gaia.fits --band g --color bp-rp -o calibrated/
    """
    opt.check_json_with_output(as_json, output)
    if extinction is not None and fit_extinction:
        raise ParameterError("give either --extinction K or --fit-extinction, not both", source="--extinction")
    if fit_extinction and len(inputs) < 2:
        raise ParameterError("--fit-extinction needs several exposures at different airmasses", source="--fit-extinction")
    if not 0 < radius < 3600:
        raise ParameterError(f"match radius must be in (0, 3600) arcsec, got {radius}", source="--radius")
    if jobs < 1:
        raise ParameterError(f"--jobs must be >= 1, got {jobs}", source="--jobs")
    if jobs > 1 and scheduler is not None:
        raise ParameterError("give either --jobs (processes here) or --scheduler (Dask), not both", source="--jobs")
    if catalog == "-" and "-" in inputs:
        raise ParameterError("the catalogue and an image cannot both come from standard input", source="--catalog")
    if color is None and color_term not in (None, 0.0):
        raise ParameterError("--color-term needs --color (the colour index it multiplies)", source="--color-term")
    for path in inputs:
        check_output(output_for(path, output, len(inputs)), overwrite)
    if model is not None:
        if fit_extinction:
            raise ParameterError("--model corrects single-exposure zero points; it cannot be combined with --fit-extinction", source="--model")
        _learned_model(model)  # a missing or corrupt model file fails before any work
    settings = Settings(
        catalogue=read_reference_catalogue(catalog, band, color), output=output, n_inputs=len(inputs),
        ext=ext, gain=gain, read_noise=read_noise, exptime=exptime, airmass=airmass,
        saturation=saturation, extinction=0.0 if extinction is None else extinction, fit_extinction=fit_extinction,
        colour_term=(0.0 if color is None else color_term), match_radius=radius * ARCSEC,
        aperture=aperture, kron=kron, aperture_correction=not no_aperture_correction and not kron,
        measured_noise=measured_noise, min_stars=min_stars, table=table, overwrite=overwrite, model=model,
    )
    if fit_extinction:
        summaries, code = _night(inputs, settings, scheduler)
    else:
        summaries, code = _each(inputs, settings, jobs, scheduler)
    if as_json:
        opt.print_json({"command": "zeropoint", "results": summaries, "failed": len(inputs) - len(summaries)})
    return code


def _each(inputs, settings, jobs, scheduler=None):
    """Calibrate and write every input on its own (k fixed)."""
    summaries = []
    if jobs == 1 or len(inputs) == 1 or "-" in inputs:
        ran = map_inputs(inputs, lambda path: _write(path, _calibrate(path, settings), settings), scheduler,
                         output=settings.output)
        return ran.results, ran.code
    failed = 0
    with ProcessPoolExecutor(max_workers=min(jobs, len(inputs))) as pool:
        for path, (summary, error) in zip(inputs, pool.map(_calibrate_and_write, inputs, [settings] * len(inputs))):
            if error is not None:
                report_error(error)
                failed += 1
            else:
                summaries.append(summary)
                log.info("%s: PHOTZP %.4f +- %.4f (%d stars) -> %s", path, summary["photzp"],
                         summary["photzper"], summary["n_used"], summary["output"])
    if failed:
        report_error(f"{failed} of {len(inputs)} inputs failed; the others were written")
    return summaries, 2 if failed else 0


def _calibrate_and_write(path, settings):
    """One exposure in a worker process: (summary, None) or (None, the one-line error)."""
    try:
        return _write(path, _calibrate(path, settings), settings), None
    except DancekitError as exc:
        return None, str(exc.with_source(display_name(path)))


def _night(inputs, settings, scheduler=None):
    """--fit-extinction: match every exposure, fit one ZP and k over the night, write each."""
    from dancekit.photometry import calibrate_night

    ran = map_inputs(inputs, lambda path: (path, _calibrate(path, settings)), scheduler)
    exposures, code = dict(ran.results), ran.code
    if len(exposures) < 2:
        report_error(f"--fit-extinction: only {len(exposures)} exposure(s) calibrated; need at least 2")
        return [], 2
    try:
        night = calibrate_night([e["stars"] for e in exposures.values()],
                                [e["airmass"] for e in exposures.values()],
                                colour_term=settings.colour_term, min_stars=settings.min_stars)
    except DancekitError as exc:
        report_error(f"--fit-extinction: {exc}")
        return [], 2
    log.info("night: ZP %.4f +- %.4f, k %.4f +- %.4f mag/airmass from %d stars in %d exposures",
             night.zp, night.zp_err, night.extinction, night.extinction_err, night.n_used, len(exposures))
    summaries = []
    # The night's residuals follow the exposures concatenated in order: give each its slice.
    start = 0
    for path, exposure in exposures.items():
        n = len(exposure["stars"])
        exposure["result"] = dataclasses.replace(
            night, residuals=night.residuals[start:start + n], used=night.used[start:start + n])
        exposure["night"] = len(exposures)
        start += n
    code = max(code, for_each_input(list(exposures), lambda path: summaries.append(_write(path, exposures[path], settings))))
    return summaries, code


def _calibrate(path, settings):
    """Read one exposure and fit its zero point; a dict of what _write needs."""
    from astropy.wcs import WCS

    from dancekit.photometry import calibrate_exposure

    with FitsReader(path) as reader:
        info = reader.image_info(settings.ext, 2)
        header = reader.header(info.index)
        image = reader.image(info.index)
        keywords = header
        if info.index > 0 and reader.hdus[0].kind == "empty":  # MEF: observation keywords live in the primary
            keywords = reader.header(0, kind="empty")
            keywords.update(header)
        local_path = reader.local_path  # the spooled copy for '-': the output is a copy of this file
    params = exposure_parameters(keywords, settings)
    wcs = _celestial_wcs(header, WCS)
    try:
        calibration = calibrate_exposure(
            image, wcs, settings.catalogue, gain=params["gain"], read_noise=params["read_noise"],
            exptime=params["exptime"], aperture_radius=settings.aperture, airmass=params["airmass"],
            extinction=settings.extinction, colour_term=settings.colour_term, min_stars=settings.min_stars,
            match_radius=settings.match_radius, saturation=params["saturation"],
            photometry="kron" if settings.kron else "circle", aperture_correction=settings.aperture_correction,
            noise_model="measured" if settings.measured_noise else "ccd",
        )
    except InputError as exc:
        if "stars usable" in exc.message or "survived" in exc.message:
            raise InputError(f"zero-point calibration failed (ZPFLAG=32, no output written): {exc.message}") from None
        raise
    learned = None
    if settings.model is not None:
        learned = _learned_correction(settings.model, image, calibration, keywords, params["airmass"])
    return {"local_path": local_path, "index": info.index, "result": calibration.zeropoint,
            "stars": calibration.stars, "learned": learned, **params}


def _learned_model(path):
    """The model of a train-zeropoint file, loaded once per process (weights_only: nothing executed)."""
    if path not in _MODELS:
        from dancekit.io.checkpoint import read_checkpoint
        from dancekit.photometry.learned_training import model_from_checkpoint

        try:
            _MODELS[path] = model_from_checkpoint(read_checkpoint(path))
        except DancekitError as exc:
            raise exc.with_source(path)
    return _MODELS[path]


def _learned_correction(path, image, calibration, header, airmass) -> float:
    """ZP_true - ZP_classical predicted by the model (mag) from the image, stars and header telemetry."""
    from dancekit.photometry.learned_data import exposure_inputs, stack_inputs
    from dancekit.photometry.learned_training import predict

    model, normalisation, _ = _learned_model(path)
    telemetry = [airmass]
    for what, keys in TELEMETRY_KEYS.items():
        value = next((header[k] for k in keys if isinstance(header.get(k), (int, float)) and not isinstance(header.get(k), bool)), None)
        if value is None or not math.isfinite(value):
            raise InputError(f"the learned model needs the {what} but the header has none of {', '.join(keys)}; "
                             "add it or run without --model")
        telemetry.append(float(value))
    inputs = stack_inputs([exposure_inputs(image, calibration, telemetry)])
    return float(predict(model, inputs, normalisation)[0])


def exposure_parameters(header, settings) -> dict:
    """Gain, read noise, exposure time, airmass and saturation: the option, else the header."""
    def pick(value, keys, what, option, required=True):
        if value is not None:
            return float(value)
        for key in keys:
            if key in header and isinstance(header[key], (int, float)) and not isinstance(header[key], bool):
                return float(header[key])
        if required:
            raise InputError(f"no {what} in the header (looked for {', '.join(keys)}); give {option}")
        return None

    gain = pick(settings.gain, GAIN_KEYS, "gain", "--gain E_PER_ADU")
    read_noise = pick(settings.read_noise, READ_NOISE_KEYS, "read noise", "--read-noise ELECTRONS (or --measured-noise)",
                      required=not settings.measured_noise)
    exptime = pick(settings.exptime, EXPTIME_KEYS, "exposure time", "--exptime SECONDS")
    airmass = pick(settings.airmass, AIRMASS_KEYS, "airmass", "--airmass X", required=False)
    if airmass is None and all(isinstance(header.get(k), (int, float)) for k in ("AMSTART", "AMEND")):
        airmass = 0.5 * (float(header["AMSTART"]) + float(header["AMEND"]))
    if airmass is None:
        if settings.extinction != 0.0 or settings.fit_extinction:
            raise InputError("no airmass in the header (AIRMASS, AMSTART/AMEND) for the extinction; give --airmass X")
        airmass = 1.0  # k = 0: the airmass does not enter the zero point
    saturation = pick(settings.saturation, SATURATION_KEYS, "saturation", "", required=False)
    if saturation is None:
        log.debug("no SATURATE in the header: saturated stars are not flagged (give --saturation ADU)")
    for name, value, allowed in (("gain", gain, value_positive), ("exposure time", exptime, value_positive),
                                 ("read noise", read_noise, value_non_negative)):
        if value is not None and not allowed(value):
            raise InputError(f"{name} {value!r} is not usable (must be > 0, or >= 0 for read noise); fix the header or give the option")
    if not (math.isfinite(airmass) and airmass >= 1.0):
        raise InputError(f"airmass {airmass!r} is below 1; fix the header or give --airmass X")
    return {"gain": gain, "read_noise": read_noise, "exptime": exptime, "airmass": airmass,
            "saturation": np.inf if saturation is None else saturation}


def value_positive(value):
    return math.isfinite(value) and value > 0


def value_non_negative(value):
    return math.isfinite(value) and value >= 0


def _celestial_wcs(header, WCS):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises several kinds on malformed WCS keywords
            raise InputError(f"the header WCS cannot be read ({exc})") from None
    if not wcs.has_celestial:
        raise InputError("the image has no celestial WCS (CTYPE1/CTYPE2 RA---/DEC--); "
                         "solve its astrometry first (e.g. astrometry.net)")
    return wcs


def _write(path, exposure, settings):
    """The input file copied with the zero-point cards added (pixels byte for byte)."""
    from dancekit.photometry import zeropoint_header_cards
    from dancekit.photometry.aperture import MIN_CORRECTION_STARS

    result = exposure["result"]
    target = output_for(path, settings.output, settings.n_inputs)
    cards = zeropoint_header_cards(result, gain=exposure["gain"], exptime=exposure["exptime"],
                                   airmass=exposure["airmass"])
    sources = exposure["stars"].sources
    cards += [
        ("APRADIUS", float(sources.aperture_radius), "[pixel] aperture radius (Kron: fallback)"),
        ("ZPFWHM", _finite(sources.fwhm), "[pixel] median FWHM of bright isolated stars"),
        ("APCOR", float(sources.aperture_correction), "[mag] m_total = m_aper - APCOR"),
        ("APCORERR", _finite(sources.aperture_correction_err), "[mag] error of APCOR (in PHOTZPER)"),
        ("ZPNIGHT", int(exposure.get("night", 0)), "exposures in a joint ZP/k fit (0: this one)"),
    ]
    learned = exposure.get("learned")
    if learned is not None:
        cards += [
            ("PHOTZPML", cards[0][1] + learned, "[mag] PHOTZP + ZPMLCOR (learned, AZP-RC)"),
            ("ZPMLCOR", learned, "[mag] learned ZP correction, ZP_true - ZP_classical"),
            ("ZPMODEL", os.path.basename(settings.model)[-68:], "zero-point model file (train-zeropoint)"),
        ]
    if settings.aperture_correction and sources.n_aperture_correction < MIN_CORRECTION_STARS:
        log.warning("%s: only %d bright isolated stars: no aperture correction, PHOTZP is for %.1f-pixel "
                    "aperture magnitudes (give --aperture larger, or --no-aperture-correction to silence)",
                    display_name(path), sources.n_aperture_correction, sources.aperture_radius)
    with fits.open(exposure["local_path"], do_not_scale_image_data=True, memmap=True) as hdus:
        header = hdus[exposure["index"]].header  # edited in memory only: the input is opened read-only
        for key, value, comment in cards:
            header[key] = (value, comment)
        Provenance.from_argv().apply(header)
        if settings.table:
            hdus.append(_stars_table(exposure))
        write_hdus(hdus, target, settings.overwrite)
    log.info("%s: PHOTZP %.4f +- %.4f (%d of %d stars) -> %s", display_name(path), cards[0][1], cards[1][1],
             result.n_used, result.n_available, target)
    return {"input": path, "output": target, "photzp": cards[0][1], "photzper": cards[1][1],
            "magzpt": cards[2][1], "magzrr": cards[3][1], "n_used": result.n_used,
            "n_available": result.n_available, "colour_term": result.colour_term,
            "colour_term_err": result.colour_term_err, "extinction": result.extinction,
            "extinction_err": result.extinction_err, "airmass": exposure["airmass"],
            "aperture_radius": float(sources.aperture_radius), "aperture_correction": float(sources.aperture_correction),
            "flags": result.flags, "rejections": dict(result.rejections),
            **({"photzp_ml": cards[0][1] + learned, "ml_correction": learned} if learned is not None else {})}


def _stars_table(exposure) -> fits.BinTableHDU:
    stars, result = exposure["stars"], exposure["result"]
    src = stars.sources
    index = stars.source_index
    columns = [
        ("X", src.x[index] + 1.0, "pix", "FITS pixel (1 = centre of the first)"),
        ("Y", src.y[index] + 1.0, "pix", "FITS pixel"),
        ("FLUX", src.flux[index], "adu", "aperture flux"),
        ("FLUX_ERR", src.flux_err[index], "adu", ""),
        ("MAG_INST", stars.m_inst, "mag", "-2.5lg(e-/s) - APCOR"),
        ("MAG_INST_ERR", stars.m_inst_err, "mag", ""),
        ("MAG_REF", stars.m_ref, "mag", "catalogue"),
        ("MAG_REF_ERR", stars.m_ref_err, "mag", ""),
        ("COLOUR", stars.colour, "mag", "catalogue colour (NaN: none)"),
        ("SEPARATION", stars.separation / ARCSEC, "arcsec", "match distance"),
        ("RESIDUAL", result.residuals, "mag", "m_ref - m_inst - model"),
        ("USED", result.used.astype(np.int16), "", "1: kept by the clipping"),
        ("REF_INDEX", stars.reference_index.astype(np.int64), "", "row of the catalogue (0-based)"),
    ]
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name=name, format="K" if values.dtype == np.int64 else ("I" if values.dtype == np.int16 else "D"),
                    unit=unit or None, array=values)
        for name, values, unit, _ in columns
    ], name="ZPSTARS")
    for i, (_, _, _, comment) in enumerate(columns, start=1):
        if comment:
            hdu.header.comments[f"TTYPE{i}"] = comment
    Provenance.from_argv().apply(hdu.header)
    return hdu


def _finite(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else -1.0


def register(app: typer.Typer) -> None:
    app.command("zeropoint")(zeropoint)
