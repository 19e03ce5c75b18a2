"""Synthetic raw dark frames of a multi-channel CCD (the data behind `simulate-dark`).

Physical model, per pixel, in electrons (e-) then ADU through the gain g [e-/ADU]:

* bias: per channel, a fixed per-camera level + a per-frame drift + a slow drift along the rows
  (a sinusoid with less than one period per channel); present in every sample.
* read noise: Gaussian, sigma_read [e-], in every sample (prescan, overscan, photosites).
* dark current, only in photosites (active and masked optical-black pixels):
  ``N_dark = D_ref * (t / t_ref) * 2**((T - T_ref) / T_2) * P(x, y) + glow(x, y)``
  with D_ref = 240 e- in t_ref = 30 s at T_ref = -15 degC and the doubling interval
  T_2 = 6.4 degC (Qu et al. 2024, sec. 2.1, fig. 1); shot noise Poisson(N_dark).
* P(x, y): a fixed spatial pattern per camera (``camera_seed``): concentric rings from chemical-
  mechanical polishing (Qu et al. 2024, fig. 2), per-pixel dark non-uniformity (log-normal),
  hot pixels and partial hot columns (traps, extending away from the serial register); mean 1
  before the hot pixels. glow(x, y): amplifier glow, decaying exponentially with the distance to
  each channel's readout corner, in e- per frame (made while reading out: independent of T and t).
* the working temperature jitters uniformly in T_set +- ``temperature_jitter_c`` (+-1 degC, sec. 2.3).

The pattern is drawn once per camera over the physical mosaic of photosites (so rings cross
channel boundaries), then cut into channels in readout order. Values are rounded to integer ADU
and clipped to [0, 65535].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancekit.dark.layout import RawLayout, channels_to_mosaic, mosaic_to_channels
from dancekit.errors import ParameterError


@dataclass(frozen=True)
class DarkCameraModel:
    """Parameters of the simulated camera (defaults: LAMOST guide camera, KAF-4320).

    Gain and read noise of the LAMOST camera are not published (notes/dark_zp.md sec. 2): 2.3 e-/ADU
    and 12 e- are estimates (150 ke- full well on 16 bits; third-party KAF-4320 read noise).
    """

    gain: float = 2.3  # e-/ADU
    read_noise: float = 12.0  # e- rms per sample
    bias: float = 1000.0  # ADU, nominal bias level
    bias_channel_spread: float = 20.0  # ADU rms, fixed per-camera offset of each channel
    bias_drift: float = 3.0  # ADU rms, per-frame offset of each channel
    bias_row_drift: float = 1.5  # ADU, amplitude of the slow drift along the rows of a channel
    dark_reference: float = 240.0  # e- per pixel in reference_exposure at reference_temperature
    reference_temperature: float = -15.0  # degC
    reference_exposure: float = 30.0  # s
    doubling_temperature: float = 6.4  # degC per doubling of the dark current
    temperature_jitter: float = 1.0  # degC, half-width of the uniform jitter about the set point
    ring_amplitude: float = 0.06  # relative amplitude of the polishing rings
    ring_period: float = 160.0  # pixels between rings (for the 2084-px LAMOST mosaic; scaled below)
    dark_nonuniformity: float = 0.03  # log-normal sigma of the per-pixel dark rate
    hot_pixel_fraction: float = 2e-4  # of photosites
    hot_pixel_factor: tuple[float, float] = (5.0, 50.0)  # dark-rate multiplier, log-uniform
    hot_columns_per_channel: int = 3
    hot_column_factor: tuple[float, float] = (1.2, 2.0)  # dark-rate multiplier of a hot column
    glow: float = 300.0  # e- per frame at the readout corner (amplifier glow)
    glow_scale: float = 60.0  # pixels, e-folding distance of the glow
    saturation: float = 65535.0  # ADU

    def __post_init__(self):
        for name in ("gain", "doubling_temperature", "reference_exposure", "ring_period", "glow_scale"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("read_noise", "bias_channel_spread", "bias_drift", "bias_row_drift", "dark_reference",
                     "temperature_jitter", "ring_amplitude", "dark_nonuniformity", "glow"):
            if not getattr(self, name) >= 0:
                raise ParameterError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hot_pixel_fraction < 1:
            raise ParameterError(f"hot_pixel_fraction must be in [0, 1), got {self.hot_pixel_fraction}")
        if self.hot_columns_per_channel < 0:
            raise ParameterError(f"hot_columns_per_channel must be >= 0, got {self.hot_columns_per_channel}")


@dataclass(frozen=True)
class CameraPattern:
    """Fixed per-camera dark pattern on each channel's photosites, readout order.

    relative_dark : (n_channels, photosite rows, photosite columns) multiplier of the mean dark rate.
    glow : same shape, amplifier glow in e- per frame.
    bias_offsets : (n_channels,) ADU, fixed offset of each channel's bias.
    """

    relative_dark: np.ndarray
    glow: np.ndarray
    bias_offsets: np.ndarray


@dataclass(frozen=True)
class SimulatedDarkFrame:
    """One simulated raw dark frame.

    raw : (rows, columns) ADU, integer-valued (float32 or uint16).
    expected : (rows, columns) float32 ADU, noise-free expectation (bias + dark + glow).
    bias : (n_channels, channel rows) float32 ADU, true bias of each channel row, readout order.
    temperature : degC actually reached (set point + jitter).
    exposure : s.
    dark_electrons : e- per pixel for P = 1 at this temperature and exposure (glow excluded).
    """

    raw: np.ndarray
    expected: np.ndarray
    bias: np.ndarray
    temperature: float
    exposure: float
    dark_electrons: float


def dark_current_electrons(temperature: float | np.ndarray, exposure: float, model: DarkCameraModel = DarkCameraModel()) -> np.ndarray:
    """Mean dark charge [e- per pixel] after ``exposure`` [s] at ``temperature`` [degC].

    ``D_ref * (t / t_ref) * 2**((T - T_ref) / T_2)`` (Qu et al. 2024 sec. 2.1: halves every 6.4 degC,
    ~240 e- in 30 s at -15 degC). Linear in exposure (dark current is a rate).
    """
    if exposure < 0:
        raise ParameterError(f"exposure must be >= 0 s, got {exposure}")
    return _dark_electrons(np.asarray(temperature, dtype=float), float(exposure), model)


def _dark_electrons(temperature, exposure, model):
    return model.dark_reference * (exposure / model.reference_exposure) * 2.0 ** (
        (temperature - model.reference_temperature) / model.doubling_temperature)


def camera_pattern(layout: RawLayout, model: DarkCameraModel = DarkCameraModel(), camera_seed: int = 0) -> CameraPattern:
    """Draw the fixed dark pattern of one camera (same ``camera_seed`` -> same camera).

    Ring period and glow scale are in pixels of the full-size (2084-px) LAMOST mosaic; for a
    smaller layout they are scaled with the mosaic size so a scaled-down camera looks alike.
    """
    rows, cols = layout.charge_rows(), layout.charge_columns()
    if rows.size == 0 or cols.size == 0:
        raise ParameterError(f"layout '{layout.name}' has no photosites (no segment collects charge)")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(camera_seed).spawn(6)]
    gr, gc = layout.channel_grid
    h, w = rows.size, cols.size
    mosaic_shape = (gr * h, gc * w)
    scale = max(mosaic_shape) / 2092.0  # LAMOST photosite mosaic: 2 x (4 + 1042)

    # polishing rings about a centre somewhere on the chip (Qu et al. 2024 fig. 2)
    y, x = np.indices(mosaic_shape, dtype=np.float64)
    cy, cx = streams[0].uniform(0.2, 0.8, 2) * np.array(mosaic_shape)
    period = model.ring_period * scale
    r = np.hypot(y - cy, x - cx)
    phase = streams[0].uniform(0, 2 * np.pi)
    rings = 1.0 + model.ring_amplitude * np.cos(2 * np.pi * r / period + phase) * np.exp(-r / (1.5 * max(mosaic_shape)))
    dsnu = streams[1].lognormal(-0.5 * model.dark_nonuniformity**2, model.dark_nonuniformity, mosaic_shape)
    rel = rings * dsnu
    rel /= rel.mean()
    relative = mosaic_to_channels(rel, layout)  # (n, h, w) readout order

    # partial hot columns: a trap at row r0 heats the pixels beyond it (read through it)
    lo, hi = model.hot_column_factor
    for c in range(layout.n_channels):
        for _ in range(model.hot_columns_per_channel):
            col = streams[2].integers(0, w)
            r0 = streams[2].integers(0, h)
            relative[c, r0:, col] *= streams[2].uniform(lo, hi)
    # hot pixels
    n_hot = streams[3].binomial(relative.size, model.hot_pixel_fraction)
    flat = relative.reshape(-1)
    idx = streams[3].choice(relative.size, n_hot, replace=False)
    lo, hi = model.hot_pixel_factor
    flat[idx] *= np.exp(streams[3].uniform(np.log(lo), np.log(hi), n_hot))

    # amplifier glow from each channel's readout corner (at [0, 0] in readout order)
    dist = np.hypot(rows[:, None] + 0.5, cols[None, :] + 0.5)
    glow_one = model.glow * np.exp(-dist / (model.glow_scale * scale))
    glow = np.broadcast_to(glow_one, relative.shape).astype(np.float32)
    offsets = streams[4].normal(0.0, model.bias_channel_spread, layout.n_channels)
    return CameraPattern(relative_dark=relative.astype(np.float32), glow=glow.copy(), bias_offsets=offsets.astype(np.float32))


def simulate_dark_frame(
    layout: RawLayout,
    pattern: CameraPattern,
    temperature: float,
    exposure: float,
    seed: int | np.random.Generator,
    model: DarkCameraModel = DarkCameraModel(),
    dtype: str = "float32",
) -> SimulatedDarkFrame:
    """Simulate one raw dark frame of ``layout`` [ADU].

    temperature : set point [degC]; the frame is taken at set point + U(-jitter, +jitter).
    exposure : integration time [s].
    seed : per-frame seed or Generator (the camera is fixed by ``pattern``).
    dtype : "float32" or "uint16" for ``raw``.
    """
    if dtype not in ("float32", "uint16"):
        raise ParameterError(f"dtype must be 'float32' or 'uint16', got {dtype!r}")
    if not np.isfinite(temperature) or not -120.0 <= temperature <= 60.0:
        raise ParameterError(f"temperature must be a finite value in [-120, 60] degC, got {temperature}")
    if not exposure >= 0:
        raise ParameterError(f"exposure must be >= 0 s, got {exposure}")
    rows, cols = layout.charge_rows(), layout.charge_columns()
    if pattern.relative_dark.shape != (layout.n_channels, rows.size, cols.size):
        raise ParameterError(
            f"camera pattern shape {pattern.relative_dark.shape} does not fit layout '{layout.name}' "
            f"({layout.n_channels}, {rows.size}, {cols.size}); draw it with camera_pattern(layout, ...)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return _simulate(layout, pattern, float(temperature), float(exposure), rng, model, dtype)


def _simulate(layout, pattern, temperature, exposure, rng, model, dtype):
    n, (h, w) = layout.n_channels, layout.channel_shape
    rows, cols = layout.charge_rows(), layout.charge_columns()
    t_actual = temperature + rng.uniform(-model.temperature_jitter, model.temperature_jitter)
    dark_e = float(_dark_electrons(t_actual, exposure, model))

    # bias: fixed offset + per-frame drift + slow sinusoidal drift along the rows
    row_index = np.arange(h) / h
    level = model.bias + pattern.bias_offsets + rng.normal(0.0, model.bias_drift, n)
    freq = rng.uniform(0.2, 0.8, n)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None]
    bias = level[:, None] + model.bias_row_drift * np.sin(2 * np.pi * freq * row_index[None, :] + phase)  # (n, h)

    electrons = dark_e * pattern.relative_dark + pattern.glow  # (n, hp, wp) expected e-
    expected = np.broadcast_to(bias[:, :, None], (n, h, w)).astype(np.float64)
    expected[:, rows[:, None], cols[None, :]] += electrons / model.gain

    charge = np.zeros((n, h, w))
    charge[:, rows[:, None], cols[None, :]] = rng.poisson(electrons)
    raw = bias[:, :, None] + (charge + rng.normal(0.0, model.read_noise, (n, h, w))) / model.gain
    raw = np.clip(np.rint(raw), 0, model.saturation)
    raw_frame = channels_to_mosaic(raw, layout).astype(np.float32 if dtype == "float32" else np.uint16)
    return SimulatedDarkFrame(
        raw=raw_frame,
        expected=channels_to_mosaic(expected, layout).astype(np.float32),
        bias=bias.astype(np.float32),
        temperature=float(t_actual),
        exposure=exposure,
        dark_electrons=dark_e,
    )
