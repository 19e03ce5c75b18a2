"""What ``dancekit zeropoint`` reads from its inputs, with every problem found at once.

The reference catalogue: ``reference_catalogue_or_problem`` turns a missing band or colour into
a problem to report with the image's (naming the bands the table has), and keeps the catalogue
in another band to count the stars that would be usable.

The image header's keywords, first found wins; the command-line option overrides them all:

* gain (e⁻/ADU): ``GAIN``, ``EGAIN``, ``CCDGAIN``; or per amplifier ``GAIN<x>`` (x a letter or a
  number: DECam's GAINA/GAINB) with ``RDNOISE<x>``/``READNOI<x>`` (e⁻), ``SATURAT<x>`` (ADU) and
  the pixels it reads, ``DATASEC<x>``/``TRIMSEC<x>``/``ASEC<x>`` (FITS sections in physical
  pixels; a cutout's ``LTV1``/``LTV2`` shift them onto its own pixels). Amplifiers whose sections
  cover the image put it on the electron scale amplifier by amplifier, unless its sky is level
  across them (already equalised, ``photometry.detector.gains_match_sky``); then, and without
  sections, the mean of their gains is used (a warning). With no gain at all, an effective gain is estimated from the sky
  (``photometry.detector.sky_gain``), or, where that is not credible, the errors come from the
  background alone: a warning, never a refusal.
* read noise (e⁻): ``RDNOISE``, ``READNOIS``, ``READNOISE``, ``RON``, or the amplifiers'; none:
  the noise is measured on the image's background (a warning).
* exposure time (s): ``EXPTIME``, ``EXPOSURE``, ``EXP_TIME``, ``ITIME`` (needed: a problem).
* airmass: ``AIRMASS``, or the mean of ``AMSTART``/``AMEND`` (UKIRT/CASU).
* saturation (ADU): ``SATURATE``, ``SATLEVEL``, or the amplifiers' (the lowest, in electrons).

Problems (what stops the calibration) and warnings (what was assumed) are collected, not raised,
so that the command reports all of an input's problems in one message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from dancekit.errors import DancekitError, InputError
from dancekit.io.catalogue import magnitude_names, read_reference_catalogue
from dancekit.io.fits_in import FitsReader

GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN")  # e-/ADU
READ_NOISE_KEYS = ("RDNOISE", "READNOIS", "READNOISE", "RON")  # e- rms
EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME")  # s
AIRMASS_KEYS = ("AIRMASS",)  # UKIRT/CASU frames give AMSTART/AMEND instead (their mean is used)
SATURATION_KEYS = ("SATURATE", "SATLEVEL")  # ADU
AMPLIFIER_GAIN = re.compile(r"^GAIN([A-Z]|\d{1,2})$")
AMPLIFIER_READ_NOISE = ("RDNOISE{}", "READNOI{}", "RDNOIS{}", "RON{}")
AMPLIFIER_SATURATION = ("SATURAT{}", "SATLEV{}")
AMPLIFIER_SECTION = ("DATASEC{}", "TRIMSEC{}", "ASEC{}", "DSEC{}", "TSEC{}")
_GAIN_SPREAD = 0.01  # relative: amplifier gains closer than this are one gain
_BAND_COLUMN = re.compile(r"^(?:phot_)?([a-z0-9]+?)(?:_mean_mag|meanpsfmag|_?mag|_psf)$|^mag_([a-z0-9]+)$")


@dataclass(frozen=True)
class ExposureParameters:
    """The detector and exposure numbers of one image, and what went wrong reading them.

    gain : e⁻/ADU of the image given to the photometry (1 after the amplifiers put it in
        electrons; None: unknown, errors from the background only). gain_source : where it
        came from (a keyword, an option, "sky estimate", "none"). read_noise : e⁻ (None: the
        noise is measured on the image). exptime : s. airmass. saturation : in the image's
        units. amplifiers : those used to convert the image to electrons (empty otherwise).
    problems : what prevents a calibration. warnings : what was assumed instead.
    """

    gain: float | None
    gain_source: str
    read_noise: float | None
    exptime: float | None
    airmass: float | None
    saturation: float
    amplifiers: tuple = ()
    problems: tuple = ()
    warnings: tuple = ()

    @property
    def reference_gain(self) -> float | None:
        """The gain PHOTZP refers to, e⁻/ADU: the mean amplifier gain when the image was
        converted (PHOTZP<x> then give each amplifier's), else ``gain``."""
        if self.amplifiers:
            return float(np.mean([a.gain for a in self.amplifiers]))
        return self.gain

    def image_for_photometry(self, image):
        """The image in the units ``gain`` refers to (electrons when amplifiers convert it)."""
        from dancekit.photometry.detector import electrons_image

        return electrons_image(image, self.amplifiers) if self.amplifiers else image


def reference_catalogue_or_problem(path, band, colour):
    """(catalogue, None, None); or, when the table lacks the band or colour asked for, (None,
    the problem naming the bands it has, the catalogue in one of them to count usable stars)."""
    try:
        return read_reference_catalogue(path, band, colour), None, None
    except InputError as exc:
        bands = _catalogue_bands(path) if path != "-" else []
        stand_in = None
        for other in bands:
            try:
                stand_in = read_reference_catalogue(path, other)
                break
            except InputError:
                continue
        if stand_in is None:
            raise  # not a band problem (no positions, unreadable): nothing to calibrate against
        hint = f"; the bands it has: {', '.join(bands)}" if band is None or band.lower() not in bands else ""
        return None, f"{exc}{hint}", stand_in


def _catalogue_bands(path) -> list[str]:
    """Bands with a magnitude column in the catalogue table (lower case, in column order)."""
    with FitsReader(path) as reader:
        names = [str(n).lower() for n in (reader.table(None).dtype.names or ())]
    bands = []
    for name in names:
        match = _BAND_COLUMN.match(name)
        band = match and (match.group(1) or match.group(2))
        if band and name in magnitude_names(band) and band not in bands:
            bands.append(band)
    return bands


def number(header, key):
    """The header value of ``key`` as a finite float, or None (absent, text, bool, NaN)."""
    value = header.get(key) if key in header else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def first_number(header, keys):
    """(value, key) of the first of ``keys`` holding a finite number, else (None, None)."""
    for key in keys:
        value = number(header, key)
        if value is not None:
            return value, key
    return None, None


def read_exposure(header, image, *, gain=None, read_noise=None, exptime=None, airmass=None,
                  saturation=None, measured_noise=False, need_airmass=False) -> ExposureParameters:
    """Gain, read noise, exposure time, airmass and saturation: the option, else the header.

    header : the image's keywords (a mapping). image : (H, W) ADU, for the amplifier sections
    and the sky estimate of the gain. Options (None: from the header) as in ``zeropoint``.
    measured_noise : the user chose background-measured noise (no read noise needed).
    need_airmass : an extinction is applied, so the airmass must be known.
    """
    from dancekit.photometry.detector import combined_read_noise, saturation_in_electrons

    problems, warnings = [], []
    shape = np.shape(image)
    amplifiers = _amplifiers(header, shape, warnings) if gain is None else []
    if exptime is None:
        exptime, _ = first_number(header, EXPTIME_KEYS)
        if exptime is None:
            problems.append(f"no exposure time in the header (looked for {', '.join(EXPTIME_KEYS)}): give --exptime SECONDS")
    if exptime is not None and not exptime > 0:
        problems.append(f"exposure time {exptime!r} s is not > 0: fix the header or give --exptime SECONDS")
        exptime = None
    if read_noise is None and not measured_noise:
        read_noise, _ = first_number(header, READ_NOISE_KEYS)
        if read_noise is None and amplifiers:
            read_noise = combined_read_noise(amplifiers)
    if read_noise is not None and not read_noise >= 0:
        problems.append(f"read noise {read_noise!r} e- is negative: fix the header or give --read-noise ELECTRONS")
        read_noise = None
    gain, gain_source, converted = _gain(header, image, gain, read_noise, amplifiers, problems, warnings)
    if read_noise is None and not measured_noise:
        warnings.append(f"no read noise in the header (looked for {', '.join(READ_NOISE_KEYS)}): the noise is measured "
                        "on the image's background instead (give --read-noise ELECTRONS, or --measured-noise to silence)")
    level = saturation if saturation is not None else first_number(header, SATURATION_KEYS)[0]  # ADU
    if converted:  # electrons: one ADU level applies to every amplifier, else each its own; the lowest
        saturation_value = (min(level * a.gain for a in converted) if level is not None
                            else saturation_in_electrons(converted))
    else:
        levels = [a.saturation for a in amplifiers if np.isfinite(a.saturation)]
        saturation_value = level if level is not None else (min(levels) if levels else None)
    airmass_value = _airmass(header, airmass, need_airmass, problems)
    return ExposureParameters(
        gain=gain, gain_source=gain_source, read_noise=read_noise, exptime=exptime, airmass=airmass_value,
        saturation=np.inf if saturation_value is None else float(saturation_value),
        amplifiers=tuple(converted), problems=tuple(problems), warnings=tuple(warnings))


def _gain(header, image, option, read_noise, amplifiers, problems, warnings):
    """(gain of the photometry's image, its source, the amplifiers converting it to electrons)."""
    from dancekit.photometry.detector import electrons_image, gains_match_sky, sky_gain

    if option is not None:
        if not option > 0:
            problems.append(f"--gain {option!r} is not > 0 e-/ADU")
            return None, "none", []
        return float(option), "--gain", []
    located = [a for a in amplifiers if a.rows is not None]
    names = "/".join(f"GAIN{a.name}" for a in amplifiers)
    if amplifiers and len(located) == len(amplifiers):
        try:
            electrons_image(np.zeros(np.shape(image), np.float32), amplifiers)
        except DancekitError as exc:
            warnings.append(f"amplifier sections unusable ({exc.message}): the mean amplifier gain is used")
        else:
            if gains_match_sky(image, amplifiers) is not False:
                return 1.0, f"{names} by section", list(amplifiers)
            warnings.append(f"the sky is level across the amplifiers although {names} differ: the image looks "
                            "gain-equalised already, so it is not converted amplifier by amplifier")
            return float(np.mean([a.gain for a in amplifiers])), f"mean {names}, equalised image", []
    header_gain, key = first_number(header, GAIN_KEYS)
    if header_gain is not None:
        if header_gain > 0:
            return header_gain, key, []
        problems.append(f"{key} = {header_gain!r} is not > 0 e-/ADU: fix the header or give --gain E_PER_ADU")
        return None, "none", []
    if amplifiers:
        gains = np.array([a.gain for a in amplifiers])
        if np.ptp(gains) > _GAIN_SPREAD * gains.mean():
            warnings.append(f"{names} = {', '.join(f'{g:g}' for g in gains)} e-/ADU differ but no amplifier sections "
                            f"(DATASEC<x>) say which pixels each reads: their mean {gains.mean():.4g} is used for the whole image")
        return float(gains.mean()), f"mean {names}", []
    estimate, sky, variance = sky_gain(image, read_noise)
    looked = ", ".join(GAIN_KEYS) + ", GAIN<amplifier>"
    if np.isfinite(estimate):
        warnings.append(f"no gain in the header (looked for {looked}): an effective gain of {estimate:.3g} e-/ADU is "
                        f"estimated from the sky ({sky:.4g} ADU, variance {variance:.4g} ADU^2), which assumes a "
                        "bias-subtracted, unresampled image; give --gain E_PER_ADU if known")
        return estimate, "sky estimate", []
    warnings.append(f"no gain in the header (looked for {looked}) and none credible from the sky (level {sky:.4g} ADU, "
                    f"rms {np.sqrt(variance):.4g} ADU): flux errors come from the background noise alone, without the "
                    "stars' photon noise; give --gain E_PER_ADU if known")
    return None, "none", []


def _amplifiers(header, shape, warnings) -> list[Amplifier]:
    """Amplifiers named by GAIN<x> keywords, with their noise, saturation and image region."""
    from dancekit.dark.cameras import parse_fits_section
    from dancekit.photometry.detector import Amplifier

    names = sorted({m.group(1) for key in header for m in [AMPLIFIER_GAIN.match(str(key))] if m})
    shift = (number(header, "LTV2") or 0.0, number(header, "LTV1") or 0.0)  # image = physical + LTV
    scaled = any((number(header, k) or 1.0) != 1.0 for k in ("LTM1_1", "LTM2_2"))
    amplifiers = []
    for name in names:
        gain = number(header, f"GAIN{name}")
        if gain is None or not gain > 0:
            continue
        read_noise = first_number(header, [k.format(name) for k in AMPLIFIER_READ_NOISE])[0]
        saturation = first_number(header, [k.format(name) for k in AMPLIFIER_SATURATION])[0]
        rows = columns = None
        section_key = next((k.format(name) for k in AMPLIFIER_SECTION if k.format(name) in header), None)
        if section_key is not None and not scaled:
            try:
                rows, columns = _clip(parse_fits_section(header[section_key]), shift, shape)
            except DancekitError as exc:
                warnings.append(f"{section_key}: {exc.message}; amplifier {name} is located nowhere")
        amplifiers.append(Amplifier(name, gain, read_noise, np.inf if saturation is None else saturation, rows, columns))
    located = [a for a in amplifiers if a.rows is not None]
    if located and len(located) < len(amplifiers):
        warnings.append("only some amplifiers have a data section: " + ", ".join(a.name for a in located))
    # Amplifiers outside this image (a cutout of one half) do not read any of its pixels.
    return [a for a in amplifiers if a.rows is None or (a.rows.stop > a.rows.start and a.columns.stop > a.columns.start)]


def _clip(section, shift, shape):
    """Physical-pixel (rows, columns) slices moved onto the image by LTV and clipped to it."""
    (rows, columns), (dy, dx) = section, (int(round(shift[0])), int(round(shift[1])))
    r0, r1 = max(rows.start + dy, 0), min(rows.stop + dy, shape[0])
    c0, c1 = max(columns.start + dx, 0), min(columns.stop + dx, shape[1])
    return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))


def _airmass(header, option, needed, problems):
    value = option if option is not None else first_number(header, AIRMASS_KEYS)[0]
    if value is None and all(number(header, k) is not None for k in ("AMSTART", "AMEND")):
        value = 0.5 * (number(header, "AMSTART") + number(header, "AMEND"))
    if value is None:
        if needed:
            problems.append("no airmass in the header (AIRMASS, AMSTART/AMEND) for the extinction: give --airmass X")
        return 1.0 if not needed else None  # k = 0: the airmass does not enter the zero point
    if not value >= 1.0:
        problems.append(f"airmass {value!r} is below 1: fix the header or give --airmass X")
        return None
    return float(value)
