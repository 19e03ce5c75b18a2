"""The schemas of dancekit's three config kinds; units are given once, here and in the YAML.

``video`` (C2PU: simulate-video, train-unet, infer-tiles), ``ao`` (NAOMI: fit-r0,
simulate-telemetry) and ``dark`` (LAMOST guide camera: simulate-dark, train-dark, predict-dark).
Lengths in metres, angles on the sky in arcsec (converted once, at the edge), times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from dancekit.io.config_checks import _require
from dancekit.io.config_schema_dark import (  # noqa: F401  (the dark kind, re-exported)
    DETECTOR_LAYOUTS, Amplifier, ChannelColumns, DarkConfig, DarkCurrent, DarkModelSettings, DarkPattern, Detector,
    Operation,
)


# ---------------------------------------------------------------- video (C2PU)
@dataclass(frozen=True)
class Telescope:
    name: str
    aperture: float  # m, primary diameter
    obstruction: float  # linear central obstruction, fraction of the aperture
    focal_ratio: float = 0.0  # f-number at the camera (0: not needed)
    site_altitude: float = 0.0  # m above sea level

    def __post_init__(self):
        _require(self.aperture > 0, f"telescope.aperture must be > 0 m, got {self.aperture}")
        _require(0 <= self.obstruction < 1, f"telescope.obstruction must be in [0, 1), got {self.obstruction}")


@dataclass(frozen=True)
class Optics:
    wavelength: float  # m, central wavelength of the band
    bandwidth: float = 0.0  # m, full width of a top-hat band (flat photon spectrum); used when n_wavelengths > 1
    n_wavelengths: int = 1  # wavelengths sampling the band (midpoints of equal sub-bands); 1 = monochromatic
    propagation: str = "fresnel"  # "fresnel" (split-step, scintillation) or "geometric" (phases summed)
    oversampling: int = 2  # PSF samples per detector pixel (then pixel-integrated and binned)
    filter: str = ""  # name of the filter, written to FILTER

    def __post_init__(self):
        _require(self.wavelength > 0, f"optics.wavelength must be > 0 m, got {self.wavelength}")
        _require(0 <= self.bandwidth < self.wavelength,
                 f"optics.bandwidth must be in [0, wavelength = {self.wavelength:g}) m, got {self.bandwidth}")
        _require(self.n_wavelengths >= 1, f"optics.n_wavelengths must be >= 1, got {self.n_wavelengths}")
        _require(self.n_wavelengths == 1 or self.bandwidth > 0,
                 f"optics.n_wavelengths = {self.n_wavelengths} needs optics.bandwidth > 0 m")
        _require(self.propagation in ("fresnel", "geometric"), f"optics.propagation must be 'fresnel' or 'geometric', got '{self.propagation}'")
        _require(self.oversampling >= 1, f"optics.oversampling must be >= 1, got {self.oversampling}")


@dataclass(frozen=True)
class Camera:
    name: str
    sensor: str
    pixel_scale: float  # arcsec/pixel
    frame_rate: float  # frames/s
    exposure: float  # s per frame
    read_noise: float  # e- rms per pixel
    gain: float  # e-/ADU
    full_well: float  # e-
    bits: int = 16  # ADC depth, used when quantize is true
    bunit: str = "electron"  # "electron" or "adu": unit of simulated cubes
    quantize: bool = False  # round to integer ADU and clip to the ADC range
    read_noise_map: bool = False  # sCMOS: per-pixel read noise drawn around read_noise

    def __post_init__(self):
        _require(self.pixel_scale > 0, f"camera.pixel_scale must be > 0 arcsec/px, got {self.pixel_scale}")
        _require(self.frame_rate > 0, f"camera.frame_rate must be > 0 Hz, got {self.frame_rate}")
        _require(0 < self.exposure <= 1 / self.frame_rate + 1e-9, f"camera.exposure must be in (0, 1/frame_rate] s, got {self.exposure}")
        _require(self.bunit in ("electron", "adu"), f"camera.bunit must be 'electron' or 'adu', got '{self.bunit}'")


@dataclass(frozen=True)
class Layer:
    altitude: float  # m above the telescope
    cn2_fraction: float  # fraction of the total Cn2 integral
    wind_speed: float  # m/s, mean
    wind_speed_sigma: float  # m/s, spread of the per-video draw
    wind_direction: float  # degrees, mean direction the wind blows towards (from +x towards +y)
    L0: float  # m, outer scale


@dataclass(frozen=True)
class Atmosphere:
    layers: tuple[Layer, ...]
    seeing: float  # arcsec FWHM at 500 nm at zenith, median of the site
    seeing_sigma: float  # arcsec, spread of the per-video draw of the seeing
    substeps: int = 4  # turbulence sub-steps integrated within one exposure
    ground_jitter: float = 0.0  # arcsec rms of intermittent whole-field motion from the ground layer; 0 = off
    intermittency: float = 0.0  # relative rms of the per-frame r0 modulation; 0 = off

    def __post_init__(self):
        _require(len(self.layers) > 0, "atmosphere.layers must list at least one layer")
        total = sum(layer.cn2_fraction for layer in self.layers)
        _require(abs(total - 1) < 1e-3, f"atmosphere.layers cn2_fraction must sum to 1, got {total:.4f}")
        _require(self.seeing > 0, f"atmosphere.seeing must be > 0 arcsec, got {self.seeing}")


@dataclass(frozen=True)
class Sky:
    background: float  # mag/arcsec2 in the band
    zero_point: float  # mag of a source giving 1 e-/s through telescope and camera


@dataclass(frozen=True)
class UNetSettings:
    context: int  # frames per inference window
    tile: int  # pixels, side of a training/inference tile
    overlap: float  # fraction of a tile shared with its neighbour when tiling
    architecture: str  # "small" (CPU default) or "paper" (Bialek et al. 2024, ~28 M parameters)


@dataclass(frozen=True)
class VideoConfig:
    KIND = "video"
    DEFAULT = "c2pu"
    kind: str
    instrument: str
    telescope: Telescope
    optics: Optics
    camera: Camera
    atmosphere: Atmosphere
    sky: Sky
    unet: UNetSettings


# ---------------------------------------------------------------- ao (NAOMI)
@dataclass(frozen=True)
class AOTelescope:
    name: str
    diameter: float  # m
    obstruction: float  # linear central obstruction, fraction of the diameter

    def __post_init__(self):
        _require(self.diameter > 0, f"telescope.diameter must be > 0 m, got {self.diameter}")
        _require(0 <= self.obstruction < 1, f"telescope.obstruction must be in [0, 1), got {self.obstruction}")


@dataclass(frozen=True)
class Wavefront:
    lenslets: int  # subapertures across the pupil
    valid_subapertures: int
    pixel_scale: float  # arcsec/pixel of the Shack-Hartmann
    wavelength: float  # m, wavelength the modal coefficients are expressed at when in radians


@dataclass(frozen=True)
class Loop:
    frame_rate: float  # Hz, default loop rate
    frame_rate_min: float  # Hz
    frame_rate_max: float  # Hz
    delay: float  # s, total loop delay
    gain: float  # integrator gain of the simulated closed loop
    controlled_noll_min: int  # first controlled Noll mode
    controlled_noll_max: int  # last controlled Noll mode
    modal_unit: str  # unit of AOT modal coefficients: 'um' (NAOMI SPARTA), 'nm', 'm' of wavefront, or 'rad' at wavefront_sensor.wavelength

    def __post_init__(self):
        _require(self.frame_rate > 0, f"loop.frame_rate must be > 0 Hz, got {self.frame_rate}")
        _require(self.delay >= 0, f"loop.delay must be >= 0 s, got {self.delay}")
        _require(2 <= self.controlled_noll_min <= self.controlled_noll_max,
                 f"loop.controlled_noll_min/max must satisfy 2 <= min <= max, got {self.controlled_noll_min}, {self.controlled_noll_max}")
        _require(self.modal_unit in ("um", "nm", "m", "rad"), f"loop.modal_unit must be 'um', 'nm', 'm' or 'rad', got '{self.modal_unit}'")


@dataclass(frozen=True)
class R0Fit:
    radial_order_min: int  # first fitted radial order (2: Noll 4)
    radial_order_max: int  # last fitted radial order (4: Noll 15)
    remaining_error_order: int  # highest radial order in the aliasing/cross-talk correction
    min_iterations: int
    max_iterations: int
    tolerance: float  # relative change of r0 that ends the iteration
    fit_L0: bool  # fit L0 (in log) or keep it at reference.L0
    L0_min: float  # m
    L0_max: float  # m
    sigma_floor: float  # floor of the per-radial-order sigma, as a fraction of that order's mean variance
    noise_lags: int  # autocorrelation lags used to extrapolate the noise to lag 0
    noise_degree: int  # degree in tau^2 of the polynomial fitted to those lags (< noise_lags)
    mc_draws: int  # Monte-Carlo draws for the statistical uncertainty
    seeing_wavelength: float  # m, wavelength of the reported seeing

    def __post_init__(self):
        _require(1 <= self.min_iterations <= self.max_iterations,
                 f"fit.min_iterations/max_iterations must satisfy 1 <= min <= max, got {self.min_iterations}, {self.max_iterations}")
        _require(0 < self.L0_min < self.L0_max, f"fit.L0_min/L0_max must satisfy 0 < min < max m, got {self.L0_min}, {self.L0_max}")
        _require(0 <= self.noise_degree < self.noise_lags,
                 f"fit.noise_degree must be in [0, noise_lags - 1], got {self.noise_degree} with noise_lags {self.noise_lags}")
        _require(self.mc_draws == 0 or self.mc_draws >= 2, f"fit.mc_draws must be 0 or >= 2, got {self.mc_draws}")


@dataclass(frozen=True)
class Reference:
    r0: float  # m at 500 nm, Paranal median
    L0: float  # m, Paranal median
    n_layers: int


@dataclass(frozen=True)
class AOLayer:
    altitude: float  # m above the telescope
    cn2_fraction: float  # fraction of the total Cn2 integral
    wind_speed: float  # m/s
    wind_direction: float  # degrees, direction the wind blows towards (from +x towards +y)

    def __post_init__(self):
        _require(self.altitude >= 0, f"simulation.layers altitude must be >= 0 m, got {self.altitude}")
        _require(self.cn2_fraction >= 0, f"simulation.layers cn2_fraction must be >= 0, got {self.cn2_fraction}")
        _require(self.wind_speed >= 0, f"simulation.layers wind_speed must be >= 0 m/s, got {self.wind_speed}")


@dataclass(frozen=True)
class AOSimulation:
    wind_speed: float  # m/s, effective frozen-flow speed setting the modal correlation times (model 'exact')
    max_radial_order: int  # highest radial order of the simulated turbulence reaching the sensor (model 'exact'; true modes recorded for 'screens')
    snr: float  # default modal S/N (turbulence / noise variance over the fitted modes)
    model: str = "screens"  # 'screens' (moving multi-layer phase screens) or 'exact' (modes drawn from the von Karman covariance)
    samples_per_subaperture: int = 12  # phase-screen pixels across one subaperture (model 'screens')
    layers: tuple[AOLayer, ...] = ()  # frozen-flow layers of model 'screens' (none: one ground layer at wind_speed)

    def __post_init__(self):
        _require(self.wind_speed > 0, f"simulation.wind_speed must be > 0 m/s, got {self.wind_speed}")
        _require(self.snr > 0, f"simulation.snr must be > 0, got {self.snr}")
        _require(self.model in ("screens", "exact"), f"simulation.model must be 'screens' or 'exact', got '{self.model}'")
        _require(self.samples_per_subaperture >= 4,
                 f"simulation.samples_per_subaperture must be >= 4, got {self.samples_per_subaperture}")
        if self.layers:
            total = sum(layer.cn2_fraction for layer in self.layers)
            _require(abs(total - 1) < 1e-3, f"simulation.layers cn2_fraction must sum to 1, got {total:.4f}")


@dataclass(frozen=True)
class AOConfig:
    KIND = "ao"
    DEFAULT = "naomi"
    kind: str
    instrument: str
    telescope: AOTelescope
    wavefront_sensor: Wavefront
    loop: Loop
    fit: R0Fit
    reference: Reference
    simulation: AOSimulation


SCHEMAS = {"video": VideoConfig, "ao": AOConfig, "dark": DarkConfig}
