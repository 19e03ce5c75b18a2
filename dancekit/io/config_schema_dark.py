"""The schema of the ``dark`` config kind (LAMOST guide camera: simulate-dark, train-dark,
predict-dark; any CCD described by sections). Units as in ``config_schema``; ADU, deg C, seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from dancekit.io.config_checks import _require


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
