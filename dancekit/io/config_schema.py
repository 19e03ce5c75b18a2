"""The schemas of dancekit's three config kinds; units are given once, here and in the YAML.

``video`` (C2PU: simulate-video, train-unet, infer-tiles), ``ao`` (NAOMI: fit-r0,
simulate-telemetry) and ``dark`` (LAMOST guide camera: simulate-dark, train-dark, predict-dark).
Lengths in metres, angles on the sky in arcsec (converted once, at the edge), times in seconds.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

_problems: contextvars.ContextVar[list | None] = contextvars.ContextVar("config_problems", default=None)


def _require(condition: bool, message: str) -> None:
    """A range check of a config value: raises ValueError, or inside ``collecting_problems``
    records the message and lets the other checks run (so that all problems are reported at once)."""
    if not condition:
        sink = _problems.get()
        if sink is None:
            raise ValueError(message)
        sink.append(message)


@contextlib.contextmanager
def collecting_problems():
    """Within the block, failed ``_require`` checks are appended to the yielded list instead of raising."""
    found: list[str] = []
    token = _problems.set(found)
    try:
        yield found
    finally:
        _problems.reset(token)


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


# ---------------------------------------------------------------- dark (LAMOST guide camera)
@dataclass(frozen=True)
class ChannelColumns:
    prescan: int  # columns, counted from the readout amplifier
    invalid: int
    amplifier: int
    optical_black: int
    active: int
    overscan: int


DETECTOR_LAYOUTS = ("quadrants", "sections", "fits-sections")
QUADRANT_KEYS = ("channel_grid", "channel_columns", "active_rows", "optical_black_rows", "discarded_rows")


@dataclass(frozen=True)
class Amplifier:
    """One readout amplifier of a ``layout: sections`` detector, as FITS sections '[x1:x2,y1:y2]'
    (1-based, inclusive, x = column; IRAF DATASEC/BIASSEC syntax)."""

    data: str  # its light-sensitive pixels (the DATASEC / TRIMSEC of this amplifier)
    overscan: str  # its serial overscan columns (BIASSEC), covering the rows of its data: the bias of each row
    optical_black: str = ""  # optional masked photosite columns on the rows of its data: the dark level of --method scaled

    def __post_init__(self):
        from dancekit.dark.sections import amplifier_problems

        for message in amplifier_problems([(self.data, self.overscan, self.optical_black)], prefix=""):
            _require(False, message)  # relative keys ('@.data'): the loader puts the amplifier's place for '@.'


@dataclass(frozen=True)
class Detector:
    # a detector that changes ``layout`` from its base config does not inherit the base's geometry
    VARIANT = ("layout", ("rows", "columns", *QUADRANT_KEYS, "amplifiers"))
    name: str
    saturation: float  # ADU
    # "quadrants": mirrored readout channels of the segments below (dancekit.dark.cameras.quadrant_layout);
    # "sections": the amplifiers listed below, each its data minus its own overscan level;
    # "fits-sections": amplifiers from each frame's header: BIASSEC + TRIMSEC (or DATASEC), or per
    #   amplifier DATASECn/BIASSECn, TSECn/DSECn/BSECn, ASECx/BSECx
    layout: str = "quadrants"
    rows: int = 0  # rows of the raw frame (quadrants: required; sections layouts: 0 = any, else checked)
    columns: int = 0  # columns of the raw frame (as rows)
    channel_grid: tuple[int, ...] = (1, 1)  # quadrants: readout channels as (rows, columns) of quadrants
    channel_columns: ChannelColumns | None = None  # quadrants only
    active_rows: int = 0  # quadrants: rows of the active area of each channel
    optical_black_rows: int = 0  # quadrants: masked rows at the outer edge of each channel
    discarded_rows: int = 0  # quadrants: rows of the whole frame (not per channel) that are not used; split evenly between the channel rows
    amplifiers: tuple[Amplifier, ...] = ()  # sections only

    def __post_init__(self):
        _require(self.layout in DETECTOR_LAYOUTS, f"detector.layout must be one of {', '.join(DETECTOR_LAYOUTS)}, got '{self.layout}'")
        _require(self.rows >= 0 and self.columns >= 0, f"detector.rows/columns must be >= 0, got {self.rows}, {self.columns}")
        if self.layout == "quadrants":
            self._check_quadrants()
            return
        defaults = {"channel_grid": (1, 1), "channel_columns": None, "active_rows": 0, "optical_black_rows": 0, "discarded_rows": 0}
        for key, default in defaults.items():
            _require(getattr(self, key) == default, f"detector.{key} applies to layout quadrants only (remove it with layout {self.layout})")
        if self.layout == "fits-sections":
            _require(not self.amplifiers, "detector.amplifiers apply to layout sections; layout fits-sections reads them from each frame's header")
            return
        _require(len(self.amplifiers) >= 1, "detector.amplifiers must list at least one amplifier with layout sections, "
                                            "e.g. [{data: '[1:1024,1:350]', overscan: '[2049:2080,1:350]'}]")
        from dancekit.dark.sections import amplifier_problems

        specs = [(a.data, a.overscan, a.optical_black) for a in self.amplifiers]
        for message in amplifier_problems(specs, (self.rows, self.columns), prefix="detector.amplifiers"):
            _require(False, message)

    def _check_quadrants(self):
        _require(self.rows >= 1 and self.columns >= 1, f"detector.rows/columns must be >= 1 with layout quadrants, got {self.rows}, {self.columns}")
        _require(not self.amplifiers, "detector.amplifiers apply to layout sections, not quadrants")
        grid_ok = len(self.channel_grid) == 2 and all(g in (1, 2) for g in self.channel_grid)
        _require(grid_ok, f"detector.channel_grid must be [rows, columns] of channels, each 1 or 2, got {list(self.channel_grid)}")
        _require(self.channel_columns is not None, "detector.channel_columns is required with detector.layout quadrants")
        _require(self.active_rows >= 1, f"detector.active_rows must be >= 1, got {self.active_rows}")
        if not grid_ok or self.channel_columns is None:
            return
        c = self.channel_columns
        per_channel = c.prescan + c.invalid + c.amplifier + c.optical_black + c.active + c.overscan
        _require(
            per_channel * self.channel_grid[1] == self.columns,
            f"detector.channel_columns add up to {per_channel} per channel, x{self.channel_grid[1]} != columns {self.columns}",
        )
        _require(self.discarded_rows % self.channel_grid[0] == 0,
                 f"detector.discarded_rows ({self.discarded_rows}) must split evenly between the {self.channel_grid[0]} channel rows")
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
class DarkPattern:
    """Fixed per-camera pattern and bias behaviour of the simulated camera (simulate-dark only)."""

    bias_channel_spread: float = 20.0  # ADU rms, fixed offset of each channel's bias
    bias_drift: float = 3.0  # ADU rms, per-frame offset of each channel's bias
    bias_row_drift: float = 1.5  # ADU, amplitude of the slow bias drift along the rows
    ring_amplitude: float = 0.06  # relative amplitude of the polishing rings (Qu et al. 2024 fig. 2)
    ring_period: float = 160.0  # pixels between rings on the full 2084-px mosaic
    dark_nonuniformity: float = 0.03  # log-normal sigma of the per-pixel dark rate
    hot_pixel_fraction: float = 2e-4  # of photosites
    hot_pixel_factor: tuple[float, ...] = (5.0, 50.0)  # dark-rate multiplier of a hot pixel, log-uniform in [min, max]
    hot_columns_per_channel: int = 3
    hot_column_factor: tuple[float, ...] = (1.2, 2.0)  # dark-rate multiplier of a partial hot column
    glow: float = 300.0  # e- per frame at each readout corner (amplifier glow)
    glow_scale: float = 60.0  # pixels, e-folding distance of the glow on the full mosaic

    def __post_init__(self):
        for name in ("hot_pixel_factor", "hot_column_factor"):
            value = getattr(self, name)
            _require(len(value) == 2 and 0 < value[0] <= value[1], f"pattern.{name} must be [min, max] with 0 < min <= max, got {list(value)}")


@dataclass(frozen=True)
class DarkModelSettings:
    """Deep-Dark-Net network, inputs and training (Qu et al. 2024 sec. 2.4-3.1; notes/dark_zp.md sec. 1)."""

    width: int = 64  # generator channels of the first stage (paper 64; 8 trains on a CPU)
    n_blocks: int = 9  # residual blocks at the lowest scale (paper 9)
    discriminator_width: int = 64  # PatchGAN channels of its first layer (paper 64)
    norm: str = "instance"  # generator normalisation: instance, batch or none
    conditioning: str = "profile"  # strips on the active grid: profile (row/column medians) or resize (bilinear, the paper)
    coordinates: bool = False  # add row/column position planes (CoordConv): lets the network place the glow and rings
    template: bool = False  # add the master template (dark per unit optical-black level) as an input plane (ours)
    target: str = "above_overscan"  # what G learns: absolute (paper), above_overscan (minus the row's overscan level) or above_scaled (minus the scaled baseline; ours)
    loss_bce: float = 1.0  # weight of the generator's adversarial BCE-with-logits term
    loss_mse: float = 1.0  # weight of the generator's adversarial least-squares term
    loss_l1: float = 100.0  # weight of the L1 reconstruction term (pix2pix lambda_L1)
    discriminator_loss: str = "mse"  # mse (least squares, Deep-Dark-Net) or bce (pix2pix)
    learning_rate: float = 2e-5  # Adam, both networks (paper)
    lr_decay: float = 0.0  # share of the steps, at the end, over which the lr falls linearly to 0 (pix2pix policy); 0 = constant
    crop: int = 0  # pixels, side of random training crops of a channel's active area; 0 = the whole area (paper)
    val_fraction: float = 0.1  # share of the training frames held out for validation and model selection
    adu_tail: float = 1e-3  # fraction of target pixels (the hottest) left beyond the tanh range on each side
    bias_degree: int = 3  # Legendre degree of the overscan bias fit along the rows (scaled baseline)

    def __post_init__(self):
        _require(self.width >= 1 and self.n_blocks >= 0 and self.discriminator_width >= 1,
                 f"model.width/discriminator_width must be >= 1 and n_blocks >= 0, got {self.width}, {self.discriminator_width}, {self.n_blocks}")
        _require(self.norm in ("instance", "batch", "none"), f"model.norm must be instance, batch or none, got '{self.norm}'")
        _require(self.conditioning in ("profile", "resize"), f"model.conditioning must be profile or resize, got '{self.conditioning}'")
        _require(self.target in ("absolute", "above_overscan", "above_scaled"),
                 f"model.target must be absolute, above_overscan or above_scaled, got '{self.target}'")
        _require(self.discriminator_loss in ("mse", "bce"), f"model.discriminator_loss must be mse or bce, got '{self.discriminator_loss}'")
        _require(min(self.loss_bce, self.loss_mse, self.loss_l1) >= 0, "model.loss_* weights must be >= 0")
        _require(self.learning_rate > 0, f"model.learning_rate must be > 0, got {self.learning_rate}")
        _require(0 <= self.lr_decay <= 1, f"model.lr_decay must be in [0, 1], got {self.lr_decay}")
        _require(self.crop == 0 or self.crop >= 24, f"model.crop must be 0 (whole area) or >= 24 pixels (PatchGAN), got {self.crop}")
        _require(0 <= self.val_fraction < 1, f"model.val_fraction must be in [0, 1), got {self.val_fraction}")
        _require(0 <= self.adu_tail < 0.5, f"model.adu_tail must be in [0, 0.5), got {self.adu_tail}")


@dataclass(frozen=True)
class DarkConfig:
    KIND = "dark"
    DEFAULT = "lamost"
    kind: str
    instrument: str
    detector: Detector
    operation: Operation
    dark_current: DarkCurrent
    pattern: DarkPattern = DarkPattern()
    model: DarkModelSettings = DarkModelSettings()


SCHEMAS = {"video": VideoConfig, "ao": AOConfig, "dark": DarkConfig}
