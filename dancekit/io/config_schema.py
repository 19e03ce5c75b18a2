"""The schemas of dancekit's three config kinds; units are given once, here and in the YAML.

``video`` (C2PU: simulate-video, train-unet, infer-tiles), ``ao`` (NAOMI: fit-r0,
simulate-telemetry) and ``dark`` (LAMOST guide camera: simulate-dark, train-dark, predict-dark).
Lengths in metres, angles on the sky in arcsec (converted once, at the edge), times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


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
    bandwidth: float = 0.0  # m, full width of the band; 0 = monochromatic
    n_wavelengths: int = 1  # wavelengths sampled across the band when bandwidth > 0
    propagation: str = "fresnel"  # "fresnel" (split-step, scintillation) or "geometric" (phases summed)
    oversampling: int = 2  # PSF samples per detector pixel (then pixel-integrated and binned)
    filter: str = ""  # name of the filter, written to FILTER

    def __post_init__(self):
        _require(self.wavelength > 0, f"optics.wavelength must be > 0 m, got {self.wavelength}")
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
    sigma_floor: float  # rad2, floor of the per-radial-order variance uncertainty
    noise_lags: int  # autocorrelation lags used to extrapolate the noise to lag 0
    mc_draws: int  # Monte-Carlo draws for the statistical uncertainty
    seeing_wavelength: float  # m, wavelength of the reported seeing


@dataclass(frozen=True)
class Reference:
    r0: float  # m at 500 nm, Paranal median
    L0: float  # m, Paranal median
    n_layers: int


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


# ---------------------------------------------------------------- dark (LAMOST guide camera)
@dataclass(frozen=True)
class ChannelColumns:
    prescan: int  # columns, counted from the readout amplifier
    invalid: int
    amplifier: int
    optical_black: int
    active: int
    overscan: int


@dataclass(frozen=True)
class Detector:
    name: str
    rows: int  # rows of the raw frame
    columns: int  # columns of the raw frame
    channel_grid: tuple[int, ...]  # readout channels as (rows, columns) of quadrants
    channel_columns: ChannelColumns
    active_rows: int  # rows of the active area of each channel
    optical_black_rows: int  # masked rows at the outer edge of each channel
    discarded_rows: int  # rows in the middle of the frame that are not used
    saturation: float  # ADU

    def __post_init__(self):
        c = self.channel_columns
        per_channel = c.prescan + c.invalid + c.amplifier + c.optical_black + c.active + c.overscan
        _require(len(self.channel_grid) == 2, "detector.channel_grid must be [rows, columns] of channels")
        _require(
            per_channel * self.channel_grid[1] == self.columns,
            f"detector.channel_columns add up to {per_channel} per channel, x{self.channel_grid[1]} != columns {self.columns}",
        )
        per_rows = self.channel_grid[0] * (self.optical_black_rows + self.active_rows) + self.discarded_rows
        _require(
            per_rows == self.rows,
            f"detector rows: {self.channel_grid[0]} x (optical_black_rows + active_rows) + discarded_rows = {per_rows} != rows {self.rows}",
        )


@dataclass(frozen=True)
class Operation:
    temperature: float  # deg C, working temperature
    exptime: float  # s, dark exposure time
    gain: float  # e-/ADU
    read_noise: float  # e- rms
    bias: float  # ADU, mean bias level


@dataclass(frozen=True)
class DarkCurrent:
    reference_electrons: float  # e-/pixel accumulated in reference_exptime at reference_temperature
    reference_temperature: float  # deg C
    reference_exptime: float  # s
    doubling_temperature: float  # deg C per doubling of the dark current
    temperature_jitter: float  # deg C, half-range of the uniform temperature jitter


@dataclass(frozen=True)
class DarkConfig:
    KIND = "dark"
    DEFAULT = "lamost"
    kind: str
    instrument: str
    detector: Detector
    operation: Operation
    dark_current: DarkCurrent


SCHEMAS = {"video": VideoConfig, "ao": AOConfig, "dark": DarkConfig}
