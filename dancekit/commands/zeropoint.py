"""``dancekit zeropoint``: photometric zero point of exposures against a reference catalogue."""

# No "from __future__ import annotations" in command modules: typer reads the live Annotated types.

import dataclasses
import math
from concurrent.futures import ProcessPoolExecutor
from typing import Annotated, Optional

import numpy as np
import typer
from astropy.io import fits

from dancekit.commands import options as opt
from dancekit.commands.execution import map_inputs
from dancekit.commands.runtime import cli_command, for_each_input, log, report_error
from dancekit.commands.zeropoint_inputs import read_exposure, reference_catalogue_or_problem
from dancekit.commands.zeropoint_learned import learned_cards, learned_correction, learned_model
from dancekit.errors import DancekitError, InputError, ParameterError
from dancekit.io.fits_in import FitsReader, display_name
from dancekit.io.fits_out import check_output, output_for, write_hdus
from dancekit.io.provenance import Provenance

ARCSEC = math.pi / 180.0 / 3600.0


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
    ignore_domain: bool = False
    catalogue_problem: Optional[str] = None  # the catalogue cannot calibrate (e.g. no such band)
    stand_in_catalogue: object = None  # then: another band of it, to count the usable stars


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
    no_aperture_correction: Annotated[bool, typer.Option("--no-aperture-correction", help="Keep aperture magnitudes: no correction to total flux (curve of growth, or a Moffat PSF fitted to the stars when they are few).")] = False,
    measured_noise: Annotated[bool, typer.Option("--measured-noise", help="Noise from the image's background rms instead of the CCD equation (scanned plates; automatic when no read noise is known).")] = False,
    min_stars: Annotated[int, typer.Option("--min-stars", help="Fewest stars for a zero point; fewer is a failure (exit 2).")] = 5,
    table: Annotated[bool, typer.Option("--table", help="Add the matched stars as a ZPSTARS binary table extension.")] = False,
    gain: Annotated[Optional[float], typer.Option("--gain", help="e-/ADU for every pixel (default: GAIN, or GAINA/GAINB... per amplifier with DATASECA...; none: estimated from the sky, with a warning).")] = None,
    read_noise: Annotated[Optional[float], typer.Option("--read-noise", help="e- rms (default: RDNOISE, READNOIS, or RDNOISEA... per amplifier; none: noise measured on the background).")] = None,
    exptime: Annotated[Optional[float], typer.Option("--exptime", help="Seconds (default: EXPTIME).")] = None,
    airmass: Annotated[Optional[float], typer.Option("--airmass", help="Airmass (default: AIRMASS, or the mean of AMSTART/AMEND).")] = None,
    saturation: Annotated[Optional[float], typer.Option("--saturation", help="ADU (default: SATURATE, or SATURATA... per amplifier; none when absent).")] = None,
    ext: Annotated[Optional[str], typer.Option("--ext", help="Image extension (name or index).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Exposures calibrated in parallel (processes).")] = 1,
    model: Annotated[Optional[str], typer.Option("--model", help="Learned correction (train-zeropoint): PHOTZPML = PHOTZP + its correction; PHOTZP stays classical. Needs TEMPERAT, HUMIDITY, WINDSPD in the header; refuses exposures outside the model's training domain.")] = None,
    ignore_domain: Annotated[bool, typer.Option("--ignore-domain", help="Apply --model even outside its training domain (telemetry, magnitudes, colours, seeing, pixel scale, instrument); ZPMLDOM lists what is outside.")] = False,
    overwrite: opt.Overwrite = False,
    as_json: opt.Json = False,
    scheduler: opt.Scheduler = None,
):
    """Fit the photometric zero point of each image and write it into a copy of its header.

    Sources are extracted (sep) and measured in apertures, matched on the sky through the
    header WCS to the reference catalogue, and m_ref - m_inst = ZP - k·X + c·colour is fitted
    with 3-sigma clipping and capped inverse-variance weights. The output is the input
    file with PHOTZP/PHOTZPER, MAGZPT/MAGZRR, NUMZPT, the colour term and extinction in the
    header; pixels are not touched. PHOTZP is for total fluxes: aperture magnitudes are
    corrected by APCOR, from the curve of growth of 30 or more bright isolated stars, else from
    a Moffat PSF fitted to the detected stars (APCORMTH says which). Gains per amplifier
    (GAINA/GAINB with DATASECA/DATASECB) put the image in electrons and give PHOTZPA, PHOTZPB...;
    a missing gain is estimated from the sky (ZPGAINSR), a missing read noise replaced by the
    measured background noise, each with a warning. Whatever stops a calibration (catalogue
    band, exposure time, WCS, too few stars) is reported in one line (exit 2, no output).

    ZPFLAG bits (also as COMMENT cards in the header): 1 fewer than 20 stars used; 2 reduced
    chi2 above 3 (PHOTZPER inflated by it); 4 more than 20% of the stars clipped; 8 colour term
    fitted over less than 0.3 mag of colour; 16 clipping did not converge; 32 calibration failed;
    64 no aperture correction (PHOTZP for aperture magnitudes); 128 gain estimated from the sky
    or unknown.

    With --model, a network trained by train-zeropoint predicts ZP_true - ZP_classical from the
    image, the matched stars and the telemetry; PHOTZPML = PHOTZP + ZPMLCOR is added and PHOTZP
    stays the classical value. An exposure outside the model's training domain is refused
    (exit 2, every reason in one line) unless --ignore-domain (then ZPMLDOM lists them).

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
        learned_model(model)  # a missing or corrupt model file fails before any work
    catalogue, catalogue_problem, stand_in = reference_catalogue_or_problem(catalog, band, color)
    settings = Settings(
        catalogue=catalogue, output=output, n_inputs=len(inputs),
        ext=ext, gain=gain, read_noise=read_noise, exptime=exptime, airmass=airmass,
        saturation=saturation, extinction=0.0 if extinction is None else extinction, fit_extinction=fit_extinction,
        colour_term=(0.0 if color is None else color_term), match_radius=radius * ARCSEC,
        aperture=aperture, kron=kron, aperture_correction=not no_aperture_correction and not kron,
        measured_noise=measured_noise, min_stars=min_stars, table=table, overwrite=overwrite, model=model,
        ignore_domain=ignore_domain, catalogue_problem=catalogue_problem, stand_in_catalogue=stand_in,
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
    """Read one exposure and fit its zero point; a dict of what _write needs. Every problem that
    stops it (catalogue, header, WCS, too few stars) is raised together in one InputError."""
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
    params = read_exposure(keywords, image, gain=settings.gain, read_noise=settings.read_noise,
                           exptime=settings.exptime, airmass=settings.airmass, saturation=settings.saturation,
                           measured_noise=settings.measured_noise,
                           need_airmass=settings.extinction != 0.0 or settings.fit_extinction)
    wcs, wcs_problem = _celestial_wcs(header)
    problems = [p for p in (settings.catalogue_problem, *params.problems, wcs_problem) if p]
    catalogue = settings.catalogue if settings.catalogue is not None else settings.stand_in_catalogue

    def run():
        return calibrate_exposure(
            params.image_for_photometry(image), wcs, catalogue, gain=params.gain, read_noise=params.read_noise,
            exptime=params.exptime or 1.0, aperture_radius=settings.aperture, airmass=params.airmass or 1.0,
            extinction=settings.extinction, colour_term=settings.colour_term, min_stars=settings.min_stars,
            match_radius=settings.match_radius, saturation=params.saturation,
            photometry="kron" if settings.kron else "circle", aperture_correction=settings.aperture_correction,
            noise_model="ccd" if params.gain is not None and params.read_noise is not None
            and not settings.measured_noise else "measured",
        )

    try:
        if problems and wcs is not None and catalogue is not None:
            run()  # only to learn whether there would also be too few stars
        calibration = None if problems else run()
    except InputError as exc:
        if "stars usable" not in exc.message and "survived" not in exc.message:
            raise InputError(_one_line([*problems, exc.message], params.warnings)) from None
        problems.append(exc.message)
    if problems:
        raise InputError(_one_line(problems, params.warnings))
    for warning in params.warnings:
        log.warning("%s: %s", display_name(path), warning)
    learned = None
    if settings.model is not None:
        try:
            learned = learned_correction(settings.model, params.image_for_photometry(image), calibration, keywords,
                                         params.airmass, wcs, ignore_domain=settings.ignore_domain)
        except InputError as exc:
            raise InputError(f"{exc.message} (the classical zero point was fine; nothing was written)") from None
        for reason in learned.outside.values():
            log.warning("%s: outside the learned model's training domain: %s (--ignore-domain)", display_name(path), reason)
    return {"local_path": local_path, "index": info.index, "result": calibration.zeropoint,
            "stars": calibration.stars, "learned": learned, "params": params,
            "gain": params.reference_gain or 1.0, "exptime": params.exptime, "airmass": params.airmass,
            "saturation": params.saturation}


def _one_line(problems, notes) -> str:
    """Every problem of an input in one line; the assumptions made on the way follow."""
    text = problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(
        f"({i}) {p}" for i, p in enumerate(problems, start=1))
    if any("stars usable" in p or "survived" in p for p in problems):
        text = "zero-point calibration failed (ZPFLAG=32, no output written): " + text
    if notes:
        text += "; also assumed: " + "; ".join(notes)
    return text


def _celestial_wcs(header):
    """(WCS, None), or (None, the problem)."""
    import warnings

    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises several kinds on malformed WCS keywords
            return None, f"the header WCS cannot be read ({exc})"
    if not wcs.has_celestial:
        return None, ("the image has no celestial WCS (CTYPE1/CTYPE2 RA---/DEC--); "
                      "solve its astrometry first (e.g. astrometry.net)")
    return wcs, None


def _write(path, exposure, settings):
    """The input file copied with the zero-point cards added (pixels byte for byte)."""
    from dancekit.photometry.header_cards import (
        ZP_FLAG_GAIN_UNKNOWN, ZP_FLAG_NO_APERTURE_CORRECTION, aperture_correction_cards, is_zpflag_comment,
        zeropoint_header_cards, zpflag_comments,
    )

    result, params = exposure["result"], exposure["params"]
    target = output_for(path, settings.output, settings.n_inputs)
    cards = zeropoint_header_cards(result, gain=exposure["gain"], exptime=exposure["exptime"],
                                   airmass=exposure["airmass"])
    photzp = cards[0][1]
    sources = exposure["stars"].sources
    flags = int(result.flags)
    if settings.aperture_correction and sources.aperture_correction_method == "none":
        flags |= ZP_FLAG_NO_APERTURE_CORRECTION
        log.warning("%s: only %d bright isolated stars and no PSF model could be fitted: no aperture correction, "
                    "PHOTZP is for %.1f-pixel aperture magnitudes (give --aperture larger, or --no-aperture-correction "
                    "to silence)", display_name(path), sources.n_aperture_correction, sources.aperture_radius)
    if params.gain_source in ("sky estimate", "none"):
        flags |= ZP_FLAG_GAIN_UNKNOWN
    cards = [(k, flags if k == "ZPFLAG" else v, c) for k, v, c in cards]
    cards += aperture_correction_cards(sources, settings.aperture_correction)
    cards += [("ZPGAIN", float(exposure["gain"]) if params.gain is not None else -1.0,
               "[e-/ADU] gain PHOTZP refers to (-1: unknown)"),
              ("ZPGAINSR", params.gain_source[:68], "where ZPGAIN came from"),
              ("ZPNIGHT", int(exposure.get("night", 0)), "exposures in a joint ZP/k fit (0: this one)")]
    gain_term = -2.5 * math.log10(exposure["gain"])
    cards += [(f"PHOTZP{a.name}", photzp - gain_term - 2.5 * math.log10(a.gain),
               f"[mag] PHOTZP for amplifier {a.name}'s ADU (GAIN{a.name})") for a in params.amplifiers]
    if exposure.get("learned") is not None:
        cards += learned_cards(exposure["learned"], photzp, settings.model)
    with fits.open(exposure["local_path"], do_not_scale_image_data=True, memmap=True) as hdus:
        header = hdus[exposure["index"]].header  # edited in memory only: the input is opened read-only
        for key, value, comment in cards:
            header[key] = (value, comment)
        for index in reversed([i for i, card in enumerate(header.cards)
                               if card.keyword == "COMMENT" and is_zpflag_comment(card.value)]):
            del header[index]
        for line in reversed(zpflag_comments()):  # each goes right after ZPFLAG
            header.add_comment(line, after="ZPFLAG")
        Provenance.from_argv().apply(header)
        if settings.table:
            hdus.append(_stars_table(exposure))
        write_hdus(hdus, target, settings.overwrite)
    log.info("%s: PHOTZP %.4f +- %.4f (%d of %d stars, APCOR %.4f by %s) -> %s", display_name(path), photzp, cards[1][1],
             result.n_used, result.n_available, sources.aperture_correction, sources.aperture_correction_method, target)
    learned = exposure.get("learned")
    return {"input": path, "output": target, "photzp": photzp, "photzper": cards[1][1],
            "magzpt": cards[2][1], "magzrr": cards[3][1], "n_used": result.n_used,
            "n_available": result.n_available, "colour_term": result.colour_term,
            "colour_term_err": result.colour_term_err, "extinction": result.extinction,
            "extinction_err": result.extinction_err, "airmass": exposure["airmass"],
            "aperture_radius": float(sources.aperture_radius), "aperture_correction": float(sources.aperture_correction),
            "aperture_correction_method": sources.aperture_correction_method if settings.aperture_correction else "off",
            "gain": exposure["gain"] if params.gain is not None else None, "gain_source": params.gain_source,
            "flags": flags, "rejections": dict(result.rejections),
            **({"photzp_ml": photzp + learned.correction, "ml_correction": learned.correction,
                "ml_outside_domain": list(learned.outside)} if learned is not None else {})}


def _stars_table(exposure) -> fits.BinTableHDU:
    stars, result = exposure["stars"], exposure["result"]
    src = stars.sources
    index = stars.source_index
    flux_unit = "electron" if exposure["params"].amplifiers else "adu"
    columns = [
        ("X", src.x[index] + 1.0, "pix", "FITS pixel (1 = centre of the first)"),
        ("Y", src.y[index] + 1.0, "pix", "FITS pixel"),
        ("FLUX", src.flux[index], flux_unit, "aperture flux"),
        ("FLUX_ERR", src.flux_err[index], flux_unit, ""),
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


def register(app: typer.Typer) -> None:
    app.command("zeropoint")(zeropoint)
