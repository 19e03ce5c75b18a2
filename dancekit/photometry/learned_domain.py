"""The domain the learned zero-point correction was trained on, and where an exposure leaves it.

A network extrapolates badly: the correction AZP-RC predicts for an exposure unlike its training
exposures is a number without meaning. ``generator_domain`` describes what ``train-zeropoint``
trains on (the ranges :func:`dancekit.photometry.exposures.generate_exposure` draws from);
the model file stores it, and ``domain_violations`` lists every quantity of an exposure that
falls outside, each with the value and the trained range:

* telemetry: airmass, temperature (°C), relative humidity (%), wind (m/s);
* the matched stars: median reference magnitude and median colour (mag);
* the image: seeing FWHM (pixels, as ``extract_sources`` measures it), pixel scale (arcsec);
* the instrument (``INSTRUME``) when the model names the ones it knows and the header names one.

A range is widened by ``RANGE_TOLERANCE`` of its span (5 %) on each side, a single value
(pixel scale) by ``SCALE_TOLERANCE`` (10 %).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gamma

from dancekit.photometry.catalogue import ARCSEC
from dancekit.photometry.exposures import (
    FWHM_RANGE, HUMIDITY_RANGE, MAGNITUDE_RANGE, MAX_ZENITH_ANGLE, SURVEYS, TEMPERATURE_SPREAD, WIND_GAMMA,
)

RANGE_TOLERANCE = 0.05
SCALE_TOLERANCE = 0.10
GENERATED_INSTRUMENT = "dancekit generated (photometry.exposures)"
_UNITS = {"airmass": "", "temperature": " C", "humidity": " %", "wind": " m/s", "magnitude": " mag",
          "colour": " mag", "fwhm": " px", "pixel_scale": " arcsec/px"}


def generator_domain(surveys=SURVEYS) -> dict:
    """The ranges ``generate_exposure`` draws from (plain lists: stored in the model file).

    Airmass up to 1/cos(60°) = 2, temperature the surveys' means ± 3σ, humidity and reference
    magnitudes their uniform ranges, wind up to the 99.9th percentile of its gamma law, colours
    and pixel scale ``synthetic_field``'s defaults, seeing the generator's clipping range.
    """
    import inspect

    from dancekit.photometry.synthetic import synthetic_field

    defaults = inspect.signature(synthetic_field).parameters
    temperatures = [s.temperature for s in surveys]
    return {
        "instruments": [GENERATED_INSTRUMENT],
        "airmass": [1.0, round(float(1.0 / np.cos(np.radians(MAX_ZENITH_ANGLE))), 6)],
        "temperature": [min(temperatures) - 3 * TEMPERATURE_SPREAD, max(temperatures) + 3 * TEMPERATURE_SPREAD],
        "humidity": list(HUMIDITY_RANGE),
        "wind": [0.0, float(gamma(WIND_GAMMA[0], scale=WIND_GAMMA[1]).ppf(0.999))],
        "magnitude": list(MAGNITUDE_RANGE),
        "colour": [float(v) for v in defaults["colour_range"].default],
        "fwhm": list(FWHM_RANGE),
        "pixel_scale": [float(defaults["pixel_scale"].default / ARCSEC)] * 2,
    }


def domain_violations(domain: dict | None, values: dict, instrument: str | None = None) -> dict[str, str]:
    """Every quantity of ``values`` (keys of the domain, NaN/None = unknown and skipped) outside
    ``domain``: {name: "name value (trained lo-hi)"}; a model without a domain is one violation."""
    if not domain:
        return {"domain": "the model records no training domain (written by an older dancekit): retrain it"}
    problems = {}
    for name, value in values.items():
        if name not in domain or value is None or not np.isfinite(value):
            continue
        low, high = (float(v) for v in domain[name])
        margin = SCALE_TOLERANCE * abs(high) if high == low else RANGE_TOLERANCE * (high - low)
        if not low - margin <= value <= high + margin:
            unit = _UNITS.get(name, "")
            trained = f"{low:g}{unit}" if high == low else f"{low:g}-{high:g}{unit}"
            problems[name] = f"{name.replace('_', ' ')} {value:.3g}{unit} (trained {trained})"
    known = domain.get("instruments") or []
    if instrument and known and instrument.strip() not in known:
        problems["instrument"] = f"instrument {instrument.strip()!r} (trained: {', '.join(known)})"
    return problems


def exposure_domain_values(calibration, telemetry, pixel_scale: float) -> dict:
    """The quantities ``domain_violations`` checks, from a calibrated exposure.

    calibration : :class:`~dancekit.photometry.calibrate.ExposureCalibration`.
    telemetry : (airmass, temperature °C, humidity %, wind m/s). pixel_scale : arcsec/pixel.
    """
    stars, used = calibration.stars, np.asarray(calibration.zeropoint.used, bool)
    colour = stars.colour[used]
    colour = colour[np.isfinite(colour)]
    airmass, temperature, humidity, wind = (float(v) for v in telemetry)
    return {"airmass": airmass, "temperature": temperature, "humidity": humidity, "wind": wind,
            "magnitude": float(np.median(stars.m_ref[used])) if used.any() else None,
            "colour": float(np.median(colour)) if colour.size else None,
            "fwhm": float(stars.sources.fwhm), "pixel_scale": float(pixel_scale)}

