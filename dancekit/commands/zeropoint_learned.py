"""``dancekit zeropoint --model``: the learned correction (AZP-RC) of one calibrated exposure.

The model file (``train-zeropoint``) is loaded once per process (``weights_only``: nothing in it
is executed). Before predicting, the exposure is compared with the model's training domain
(``photometry.learned_domain``): telemetry, the matched stars' magnitudes and colours, the
seeing, the pixel scale and the instrument. Outside it, the exposure is refused with every
reason in one line, unless ``--ignore-domain`` asks for the correction anyway, flagged in
``ZPMLDOM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dancekit.commands.zeropoint_inputs import number
from dancekit.errors import DancekitError, InputError

# Telemetry the learned correction reads from the header, in order of preference.
TELEMETRY_KEYS = {
    "temperature": ("TEMPERAT", "AMBTEMP", "TEMPOUT"),  # deg C, ambient air
    "humidity": ("HUMIDITY", "RELHUMID", "HUMIDIT"),  # percent
    "wind": ("WINDSPD", "WINDSPEE", "WIND"),  # m/s
}
_MODELS: dict = {}  # model path -> (model, normalisation, checkpoint), one load per process


@dataclass(frozen=True)
class LearnedCorrection:
    """correction : ZP_true − ZP_classical predicted, mag. outside : {quantity: why} of the domain
    violations that --ignore-domain let through (empty inside the domain)."""

    correction: float
    outside: dict


def learned_model(path):
    """The model of a train-zeropoint file, loaded once per process."""
    if path not in _MODELS:
        from dancekit.io.checkpoint import read_checkpoint
        from dancekit.photometry.learned_training import model_from_checkpoint

        try:
            _MODELS[path] = model_from_checkpoint(read_checkpoint(path))
        except DancekitError as exc:
            raise exc.with_source(path)
    return _MODELS[path]


def learned_correction(path, image, calibration, header, airmass, wcs, *, ignore_domain=False) -> LearnedCorrection:
    """The model's correction for one exposure, after checking its telemetry and domain.

    Raises InputError listing every missing telemetry keyword and every quantity outside the
    training domain (the latter only without ``ignore_domain``).
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    from dancekit.photometry.learned_data import exposure_inputs, stack_inputs
    from dancekit.photometry.learned_domain import domain_violations, exposure_domain_values
    from dancekit.photometry.learned_training import predict

    model, normalisation, checkpoint = learned_model(path)
    telemetry, missing = [airmass], []
    for what, keys in TELEMETRY_KEYS.items():
        value = next((number(header, k) for k in keys if number(header, k) is not None), None)
        if value is None:
            missing.append(f"the {what} ({', '.join(keys)})")
        telemetry.append(value)
    if missing:
        raise InputError(f"the learned model needs {' and '.join(missing)} but the header has none: add them or run without --model")
    scale = float(proj_plane_pixel_scales(wcs).mean()) * 3600.0  # arcsec/pixel
    instrument = header.get("INSTRUME") if isinstance(header.get("INSTRUME"), str) else None
    outside = domain_violations(checkpoint.get("domain"), exposure_domain_values(calibration, telemetry, scale), instrument)
    if outside and not ignore_domain:
        raise InputError(f"outside the learned model's training domain: {'; '.join(outside.values())}; "
                         "give --ignore-domain to apply it anyway (flagged in ZPMLDOM), or run without --model")
    inputs = stack_inputs([exposure_inputs(image, calibration, telemetry)])
    correction = float(predict(model, inputs, normalisation)[0])
    if not math.isfinite(correction):
        raise InputError("the learned model returned a non-finite correction")
    return LearnedCorrection(correction, outside)


def learned_cards(result: LearnedCorrection, photzp: float, model_path: str) -> list[tuple[str, object, str]]:
    """Header cards of the learned correction."""
    import os

    domain = "inside" if not result.outside else "outside: " + ", ".join(result.outside)
    return [
        ("PHOTZPML", photzp + result.correction, "[mag] PHOTZP + ZPMLCOR (learned, AZP-RC)"),
        ("ZPMLCOR", result.correction, "[mag] learned ZP correction, ZP_true - ZP_classical"),
        ("ZPMODEL", os.path.basename(model_path)[-68:], "zero-point model file (train-zeropoint)"),
        ("ZPMLDOM", domain[:68], "exposure vs the model's training domain"),
    ]
