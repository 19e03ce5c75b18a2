"""Classical photometric calibration: sep extraction and aperture photometry, WCS sky
matching to a reference catalogue, robust zero-point / colour-term / extinction fit, header
cards, and a synthetic star-field generator for tests and benchmarks.

Typical use (arrays in, results out; the command layer reads and writes the FITS files)::

    cat = reference_catalogue(ra, dec, mag, mag_err, colour)          # radians, mag
    cal = calibrate_exposure(image, wcs, cat, gain=2.0, read_noise=5.0, exptime=30.0,
                             aperture_radius=8.0, airmass=1.2, extinction=0.12)
    cards = zeropoint_header_cards(cal.zeropoint, gain=2.0, exptime=30.0, airmass=1.2)
"""

from dancekit.photometry.calibrate import (
    DEFAULT_REJECT_FLAGS, ExposureCalibration, MatchedStars, calibrate_exposure, calibrate_night,
    matched_stars,
)
from dancekit.photometry.catalogue import ARCSEC, ReferenceCatalogue, reference_catalogue
from dancekit.photometry.extraction import (
    FLAG_BAD_FLUX, FLAG_BLENDED, FLAG_CROWDED, FLAG_EDGE, FLAG_SATURATED, SourceList,
    extract_sources, instrumental_magnitude,
)
from dancekit.photometry.header_cards import failed_zeropoint_cards, zeropoint_header_cards
from dancekit.photometry.matching import SkyMatch, match_to_catalogue, pixel_to_sky, sky_to_pixel
from dancekit.photometry.synthetic import SyntheticField, synthetic_field, tan_wcs
from dancekit.photometry.zeropoint_fit import ZeroPointResult, fit_zeropoint

__all__ = [
    "ARCSEC", "DEFAULT_REJECT_FLAGS", "ExposureCalibration", "FLAG_BAD_FLUX", "FLAG_BLENDED",
    "FLAG_CROWDED", "FLAG_EDGE", "FLAG_SATURATED", "MatchedStars", "ReferenceCatalogue",
    "SkyMatch", "SourceList", "SyntheticField", "ZeroPointResult", "calibrate_exposure",
    "calibrate_night", "extract_sources", "failed_zeropoint_cards", "fit_zeropoint",
    "instrumental_magnitude", "match_to_catalogue", "matched_stars", "pixel_to_sky",
    "reference_catalogue", "sky_to_pixel", "synthetic_field", "tan_wcs", "zeropoint_header_cards",
]
