"""Generated exposures with a known zero point, from two "surveys" with different systematics.

The training and evaluation set of the learned zero-point correction (AZP-RC, seed 003). Each
exposure is a :func:`dancekit.photometry.synthetic.synthetic_field` image whose stars are dimmed
by what changes the zero point of a real night, each driven by the site telemetry:

* extinction k·X (Bouguer law), k = the survey's k plus a humidity-correlated nightly term
  (water vapour; Burke et al. 2010 find k varying by a few 0.01 mag/airmass between nights);
* thin cloud: grey (colour independent), present with a probability that rises with humidity,
  its mean depth exponential, patchy across the field (a Gaussian random field with the
  survey's correlation length and contrast; Ivezić et al. 2007 SDSS cloud structure);
* flat-field residuals: a fixed smooth pattern per survey (illumination-correction error);
* seeing: FWHM ∝ X^0.6 (Fried 1965; Roddier 1981 r0 ∝ X^−3/5) growing with wind speed,
  log-normal jitter. It enters through the aperture loss of the photometry, not the truth.

The truth of an exposure is its zero point for **total** fluxes at colour 0, averaged over the
image area (mag, for m_inst = −2.5 log10(e⁻/s)):

    ZP_true = ZP₀ − k·X − ⟨cloud(x, y) + flat(x, y)⟩_image,

and ``delta_zp = ZP_true − ZP₀`` its offset from the survey's nominal (photometric, airmass 0)
zero point. The stars' colour term c is applied as m_ref − m_inst = ZP − k·X + c·colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.errors import ParameterError
from dancekit.photometry.catalogue import ReferenceCatalogue
from dancekit.photometry.synthetic import synthetic_field

TELEMETRY_NAMES = ("airmass", "temperature", "humidity", "wind")  # 1, deg C, percent, m/s
# What generate_exposure draws from (also the learned model's training domain, learned_domain.py)
MAX_ZENITH_ANGLE = 60.0  # degrees: airmass 1-2
TEMPERATURE_SPREAD = 4.0  # deg C, Gaussian rms around the survey's mean
HUMIDITY_RANGE = (10.0, 95.0)  # percent, uniform
WIND_GAMMA = (2.0, 2.5)  # shape, scale (m/s) of the wind speed's gamma law
MAGNITUDE_RANGE = (14.0, 20.5)  # mag of the reference stars, uniform
FWHM_RANGE = (1.5, 6.0)  # pixels: the seeing is clipped to it


@dataclass(frozen=True)
class SurveySystematics:
    """What differs between two instruments/sites (mag unless stated).

    zeropoint : nominal ZP₀ above the atmosphere. extinction : k, mag/airmass.
    colour_term : c, mag/mag. flat_amplitude : amplitude of the flat-field residual pattern.
    flat_angle : direction of its ripple, radians. cloud_humidity : humidity (%) at which cloud
    becomes likely. cloud_depth : mean depth of a cloud, mag. cloud_contrast : rms of the patchy
    field / mean depth. cloud_scale : correlation length of the patches, pixels.
    seeing : median FWHM at zenith and no wind, pixels. temperature : mean site temperature, °C.
    """

    zeropoint: float
    extinction: float
    colour_term: float
    flat_amplitude: float
    flat_angle: float
    cloud_humidity: float
    cloud_depth: float
    cloud_contrast: float
    cloud_scale: float
    seeing: float
    temperature: float


SURVEYS = (
    SurveySystematics(zeropoint=25.0, extinction=0.12, colour_term=0.04, flat_amplitude=0.010,
                      flat_angle=0.3, cloud_humidity=70.0, cloud_depth=0.08, cloud_contrast=0.2,
                      cloud_scale=60.0, seeing=2.2, temperature=12.0),
    SurveySystematics(zeropoint=24.6, extinction=0.20, colour_term=-0.06, flat_amplitude=0.025,
                      flat_angle=1.9, cloud_humidity=55.0, cloud_depth=0.15, cloud_contrast=0.35,
                      cloud_scale=30.0, seeing=2.7, temperature=4.0),
)


@dataclass(frozen=True)
class Exposure:
    """One generated exposure and its truth.

    image : (H, W) float32 ADU. wcs : its TAN WCS. catalogue : the reference catalogue.
    gain (e⁻/ADU), read_noise (e⁻), exptime (s), saturation (ADU): detector.
    telemetry : (4,) airmass, temperature °C, humidity %, wind m/s (``TELEMETRY_NAMES``).
    survey : 0 or 1. zeropoint_nominal : ZP₀ of the survey, mag.
    zeropoint_true : total-flux ZP at this airmass, colour 0, image-area mean, mag.
    delta_zp : zeropoint_true − zeropoint_nominal, mag.
    fwhm : seeing, pixels. cloud : image-mean cloud depth, mag. extinction : k used, mag/airmass.
    colour_term : the survey's c, mag/mag (an instrument constant, known to its pipeline).
    """

    image: np.ndarray
    wcs: object
    catalogue: ReferenceCatalogue
    gain: float
    read_noise: float
    exptime: float
    saturation: float
    telemetry: np.ndarray
    survey: int
    zeropoint_nominal: float
    zeropoint_true: float
    delta_zp: float
    fwhm: float
    cloud: float
    extinction: float
    colour_term: float

    @property
    def airmass(self) -> float:
        return float(self.telemetry[0])


def flat_residual(x, y, shape, systematics: SurveySystematics):
    """Flat-field residual (mag) at pixel (x, y): a vignetting-like bowl plus a ripple, zero-mean
    over the image (the flat was normalised), amplitude ``flat_amplitude``."""
    height, width = shape
    u = (np.asarray(x, float) - (width - 1) / 2) / (width / 2)
    v = (np.asarray(y, float) - (height - 1) / 2) / (height / 2)
    bowl = (u**2 + v**2) - 2.0 / 3.0
    ripple = np.sin(np.pi * (u * np.cos(systematics.flat_angle) + v * np.sin(systematics.flat_angle)))
    return systematics.flat_amplitude * (0.6 * bowl + 0.8 * ripple)


def gaussian_random_field(shape, correlation_length: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance field with a Gaussian covariance of ``correlation_length`` pixels
    (white noise filtered in Fourier space)."""
    height, width = shape
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    kernel = np.exp(-2.0 * (np.pi * correlation_length) ** 2 * (fx**2 + fy**2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * kernel).real
    return (field - field.mean()) / max(field.std(), 1e-12)


def generate_exposure(seed, survey: int = 0, *, shape=(256, 256), exptime: float = 30.0,
                      gain: float = 2.0, read_noise: float = 5.0, saturation: float = 50000.0,
                      surveys=SURVEYS) -> Exposure:
    """One exposure of ``survey`` (index into ``surveys``) with telemetry drawn at random.

    seed : int, SeedSequence or Generator. shape : (H, W) pixels. exptime : s.
    gain : e⁻/ADU. read_noise : e⁻. saturation : ADU.
    """
    if survey not in range(len(surveys)):
        raise ParameterError(f"survey must be one of 0..{len(surveys) - 1}, got {survey!r}")
    sys_ = surveys[survey]
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
        seed.integers(0, 2**63) if isinstance(seed, np.random.Generator) else seed)
    s_tel, s_cloud, s_field = seq.spawn(3)
    rng = np.random.default_rng(s_tel)
    airmass = 1.0 / rng.uniform(np.cos(np.radians(MAX_ZENITH_ANGLE)), 1.0)
    temperature = rng.normal(sys_.temperature, TEMPERATURE_SPREAD)
    humidity = rng.uniform(*HUMIDITY_RANGE)
    wind = rng.gamma(*WIND_GAMMA)
    k = sys_.extinction + 0.0006 * (humidity - 50.0) + rng.normal(0.0, 0.008)
    fwhm = float(np.clip(sys_.seeing * airmass**0.6 * (1.0 + 0.04 * wind) * rng.lognormal(0.0, 0.15), *FWHM_RANGE))
    cloudy = rng.random() < 1.0 / (1.0 + np.exp(-(humidity - sys_.cloud_humidity) / 6.0))
    depth = rng.exponential(sys_.cloud_depth) if cloudy else 0.0
    n_stars = int(rng.integers(40, 160))
    sky = rng.uniform(200.0, 800.0) * (1.0 + 2.0 * depth)  # moonlight scattered by cloud
    cloud_map = depth * np.maximum(
        1.0 + sys_.cloud_contrast * gaussian_random_field(shape, sys_.cloud_scale, np.random.default_rng(s_cloud)), 0.0)
    rows, cols = np.indices(shape)
    flat_map = flat_residual(cols, rows, shape, sys_)

    def loss(x, y):
        ix = np.clip(np.rint(x).astype(int), 0, shape[1] - 1)
        iy = np.clip(np.rint(y).astype(int), 0, shape[0] - 1)
        return cloud_map[iy, ix] + flat_residual(x, y, shape, sys_)

    field = synthetic_field(
        shape, n_stars, zeropoint=sys_.zeropoint, colour_term=sys_.colour_term, extinction=k,
        airmass=airmass, exptime=exptime, gain=gain, read_noise=read_noise, sky=sky,
        saturation=saturation, fwhm=fwhm, mag_range=MAGNITUDE_RANGE, ref_mag_err=0.01,
        throughput_loss=loss, seed=s_field,
    )
    zp_true = sys_.zeropoint - k * airmass - float(cloud_map.mean() + flat_map.mean())
    return Exposure(
        image=field.image, wcs=field.wcs, catalogue=field.catalogue, gain=gain, read_noise=read_noise,
        exptime=exptime, saturation=saturation,
        telemetry=np.array([airmass, temperature, humidity, wind]), survey=survey,
        zeropoint_nominal=sys_.zeropoint, zeropoint_true=zp_true, delta_zp=zp_true - sys_.zeropoint,
        fwhm=fwhm, cloud=float(cloud_map.mean()), extinction=float(k), colour_term=sys_.colour_term,
    )


def generate_exposures(n: int, seed, *, survey_fraction: float = 0.5, **options) -> list[Exposure]:
    """``n`` exposures, each from survey 1 with probability ``survey_fraction`` (else survey 0),
    with independent child seeds (``SeedSequence.spawn``). Options: see :func:`generate_exposure`."""
    if n < 1:
        raise ParameterError(f"need at least 1 exposure, got {n}")
    if not 0.0 <= survey_fraction <= 1.0:
        raise ParameterError(f"survey_fraction must be in [0, 1], got {survey_fraction!r}")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    s_pick, s_each = root.spawn(2)
    which = (np.random.default_rng(s_pick).random(n) < survey_fraction).astype(int)
    return [generate_exposure(child, int(s), **options) for child, s in zip(s_each.spawn(n), which)]
