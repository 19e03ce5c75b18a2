"""Frozen-flow layers: a phase screen blown by the wind, seen by stars at different field angles.

Taylor's frozen-flow hypothesis: the layer at height h moves rigidly with the wind velocity v, so
the phase it puts on the wavefront at pupil point x at time t is

    phi(x, t; theta) = screen(x + h theta - v t)

(as GalSim's ``AtmosphericScreen._wavefront``): a star at field angle theta (rad, 2-vector) crosses
the layer displaced by h theta (anisoplanatism, small-angle), and the turbulence seen at x at time t
was at x - v t at t = 0, i.e. ``phi(x, t) == phi(x - v t, 0)``. ``v`` is the velocity of the air.

Each screen is generated in a frame whose column axis points along the wind, so a long flight needs
a long thin rectangle, never a huge square; the window is sampled by bilinear interpolation at the
rotated, shifted pupil grid and never wraps (asking for a point outside the screen is an error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import grid_size, non_negative, positive
from dancekit.optics.phase_screens import fft_phase_screen


@dataclass(frozen=True)
class LayerScreen:
    """One turbulent layer: its screen and where the pupil sits on it.

    phase: (rows, cols) phase (rad) at the simulation wavelength; sampling: screen spacing (m/px),
    equal to the pupil-grid spacing (of the shortest wavelength of a band); height: above the telescope (m); wind: (vx, vy) air velocity in
    the sky frame (m/s); direction: unit vector (sky frame) of the screen's column axis; origin:
    (col, row) screen-pixel coordinates of the sky-frame point (0, 0) at t = 0.
    """

    phase: torch.Tensor
    sampling: float
    height: float
    wind: tuple[float, float]
    direction: tuple[float, float]
    origin: tuple[float, float]


def wind_direction(wind) -> tuple[float, float]:
    """Unit vector along ``wind`` (m/s); (1, 0) for a calm layer."""
    vx, vy = (float(v) for v in wind)
    speed = math.hypot(vx, vy)
    return (1.0, 0.0) if speed == 0 else (vx / speed, vy / speed)


def _to_screen_frame(points: torch.Tensor, direction, sampling: float) -> torch.Tensor:
    """Sky-frame points (..., 2) in metres -> screen-frame (col, row) offsets in pixels."""
    ex, ey = direction
    u = points[..., 0] * ex + points[..., 1] * ey
    w = -points[..., 0] * ey + points[..., 1] * ex
    return torch.stack((u, w), dim=-1) / sampling


def screen_geometry(
    n: int,
    sampling: float,
    height: float,
    wind,
    duration: float,
    field_angles,
    *,
    margin: int = 2,
) -> tuple[tuple[int, int], tuple[float, float], tuple[float, float]]:
    """Shape, origin and direction of the smallest wind-aligned screen that a video never leaves.

    n: pupil grid size (px); sampling (m/px); height (m); wind (vx, vy) (m/s); duration: time span
    of the video, exposures included (s); field_angles: (K, 2) angles (rad) of the stars, or just
    the corners of the field. The window of every star at every t in [0, duration] lies inside the
    screen with ``margin`` pixels to spare. Returns ``((rows, cols), (col0, row0), direction)``.
    """
    n = grid_size(n)
    sampling = positive("sampling", sampling, "m/px")
    height = non_negative("height", height, "m")
    duration = non_negative("duration", duration, "s")
    direction = wind_direction(wind)
    angles = torch.as_tensor(field_angles, dtype=torch.float64).reshape(-1, 2)
    lo, hi = -(n // 2) * sampling, (n - 1 - n // 2) * sampling
    corners = torch.tensor([[lo, lo], [lo, hi], [hi, lo], [hi, hi]], dtype=torch.float64)
    drift = torch.tensor([[0.0, 0.0], [-float(wind[0]) * duration, -float(wind[1]) * duration]],
                         dtype=torch.float64)
    points = (corners[:, None, None, :] + height * angles[None, :, None, :]
              + drift[None, None, :, :]).reshape(-1, 2)
    px = _to_screen_frame(points, direction, sampling)
    low, high = px.min(dim=0).values, px.max(dim=0).values
    cols, rows = (int(math.ceil(float(s))) + 1 + 2 * margin for s in (high - low))
    origin = (margin - float(low[0]), margin - float(low[1]))
    return (rows, cols), origin, direction


def make_layer_screen(
    n: int,
    sampling: float,
    height: float,
    wind,
    duration: float,
    field_angles,
    r0: float,
    L0: float = math.inf,
    l0: float = 0.0,
    *,
    generator: torch.Generator,
    subharmonics: int | None = None,
    device=None,
) -> LayerScreen:
    """A von Karman layer (r0 (m) at the simulation wavelength, L0, l0 in m) sized by
    :func:`screen_geometry` for a video of ``duration`` (s) over stars at ``field_angles`` (rad)."""
    shape, origin, direction = screen_geometry(n, sampling, height, wind, duration, field_angles)
    phase = fft_phase_screen(shape, sampling, r0, L0, l0, generator=generator,
                             subharmonics=subharmonics, device=device)
    return LayerScreen(phase, float(sampling), float(height), (float(wind[0]), float(wind[1])),
                       direction, origin)


def layer_phase(layer: LayerScreen, n: int, angles, times) -> torch.Tensor:
    """Phase (rad) the layer puts on the n x n pupil grid, one window per (angle, time) pair.

    angles: (B, 2) field angles (rad); times: (B,) (s). Returns (B, n, n) float32 on the screen's
    device: phi(x, t; theta) = screen(x + h theta - v t), bilinearly interpolated.
    """
    n = grid_size(n)
    phase = layer.phase
    angles = torch.as_tensor(angles, dtype=torch.float64, device=phase.device).reshape(-1, 2)
    times = torch.as_tensor(times, dtype=torch.float64, device=phase.device).reshape(-1)
    if angles.shape[0] != times.shape[0]:
        raise ParameterError(f"{angles.shape[0]} angles but {times.shape[0]} times: one each per window")
    return WindowSampler(layer, n)(angles, times).reshape(-1, n, n)


class WindowSampler:
    """Bilinear samples of one layer at a fixed set of pupil pixels, for many windows.

    The window of (angle theta, time t) samples the screen at base + offset: base (P, 2) is the
    pupil grid in screen pixels (rotated into the wind frame, fixed), offset (2,) is
    (h theta - v t) in screen pixels. ``pixels``: (P,) flat indices into the n x n grid (row-major)
    where the phase is needed (e.g. inside the pupil), None for all n^2. Windows of a ground
    layer (h = 0) that share a time are interpolated once. Raises like :func:`layer_phase` when a
    window leaves the screen. ``spacing``: the pupil grid's spacing (m/px) when it differs from the
    screen's (another wavelength: :mod:`dancekit.optics.spectrum`); ``phase_scale``: factor on the
    sampled phases (lambda_screen / lambda for an optical-path screen seen at lambda).
    """

    def __init__(self, layer: LayerScreen, n: int, pixels: torch.Tensor | None = None, *,
                 spacing: float | None = None, phase_scale: float = 1.0):
        self.layer = layer
        self.phase_scale = float(phase_scale)
        rows, cols = layer.phase.shape
        base = _base_coordinates(layer, n, spacing)  # (n, n, 2) float64
        device = base.device
        self._corners = base[[0, 0, -1, -1], [0, -1, 0, -1]]  # the window is affine: extremes at corners
        self._scale = torch.tensor([2.0 / (cols - 1), 2.0 / (rows - 1)], dtype=torch.float64, device=device)
        self._wind = torch.tensor(layer.wind, dtype=torch.float64, device=device)
        base = base.reshape(-1, 2) if pixels is None else base.reshape(-1, 2)[pixels.to(device)]
        # align_corners=True: pixel i at normalised -1 + 2 i / (size - 1); float32 normalised
        # coordinates cost ~6e-8 * size px of position accuracy. Planar (2, P): a broadcast add
        # over an interleaved last axis of 2 is ~10x slower.
        self._grid = (base * self._scale - 1.0).to(torch.float32).T.contiguous()  # (2, P)
        self._source = layer.phase.to(torch.float32)[None, None]  # (1, 1, rows, cols)

    def offsets(self, angles: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(B, 2) screen-pixel offsets (col, row) of the windows, float64."""
        layer = self.layer
        shift = layer.height * angles - times[:, None] * self._wind  # (B, 2) metres
        return _to_screen_frame(shift, layer.direction, layer.sampling)

    def __call__(self, angles: torch.Tensor, times: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Phases (B, P) float32 (rad) for float64 angles (B, 2) (rad) and times (B,) (s)."""
        samples, inverse = self.distinct(angles, times, check)
        return samples if inverse is None else samples[inverse]

    def distinct(self, angles: torch.Tensor, times: torch.Tensor,
                 check: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Phases (U, P) of the distinct windows and the index (B,) of each window among them
        (None when all B are computed). ``check=False`` skips the bounds check (for callers that
        checked the extreme windows already, with :meth:`check_inside`)."""
        device = self._source.device
        angles, times = angles.to(device), times.to(device)
        inverse = None
        if self.layer.height == 0:  # every star sees the same window at a given time
            unique, where = torch.unique(times, return_inverse=True)
            if unique.shape[0] < times.shape[0]:
                # any window of a time will do: they are identical (h theta = 0)
                first = torch.empty_like(unique, dtype=torch.long).scatter_(
                    0, where, torch.arange(times.shape[0], device=device))
                angles, times, inverse = angles[first], times[first], where
        offset = self.offsets(angles, times)
        if check:
            self._check_offsets(offset)
        grid = self._grid[None] + (offset * self._scale).to(torch.float32)[:, :, None]  # (U, 2, P)
        samples = torch.nn.functional.grid_sample(self._source, grid.permute(0, 2, 1)[None], mode="bilinear",
                                                  padding_mode="border", align_corners=True)[0, 0]
        if self.phase_scale != 1.0:
            samples.mul_(self.phase_scale)
        return samples, inverse

    def check_inside(self, angles: torch.Tensor, times: torch.Tensor) -> None:
        """Raise unless every window (angles (B, 2), times (B,)) lies inside the screen."""
        device = self._source.device
        self._check_offsets(self.offsets(angles.to(device), times.to(device)))

    def _check_offsets(self, offset: torch.Tensor) -> None:
        layer = self.layer
        rows, cols = layer.phase.shape
        reach = self._corners[None] + offset[:, None, :]  # (B, 4, 2)
        low, high = reach.amin(dim=(0, 1)), reach.amax(dim=(0, 1))
        if low.min() < 0 or high[0] > cols - 1 or high[1] > rows - 1:
            raise ParameterError(
                f"a pupil window leaves the {rows}x{cols} screen of the layer at {layer.height:g} m "
                f"(screen pixels {low.tolist()} to {high.tolist()}): make the screen with "
                "screen_geometry() for the longest time and widest field used"
            )


def _base_coordinates(layer: LayerScreen, n, spacing: float | None = None) -> torch.Tensor:
    """Screen coordinates (col, row) (n, n, 2) float64 of the pupil pixels at zero offset, for a
    pupil grid of ``spacing`` (m/px; None: the screen's sampling)."""
    device = layer.phase.device
    spacing = layer.sampling if spacing is None else float(spacing)
    axis = (torch.arange(n, dtype=torch.float64, device=device) - n // 2) * spacing
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)  # (n, n, 2) = (x, y)
    origin = torch.tensor(layer.origin, dtype=torch.float64, device=device)
    return _to_screen_frame(grid, layer.direction, layer.sampling) + origin


def fourier_shift_screen(screen: torch.Tensor, shift) -> torch.Tensor:
    """Exact translation of a periodic, band-limited screen: returns s(x + shift).

    shift: (dx, dy) in pixels, any real values (Fourier shift theorem, e.g. Schmidt 2010 Sect. 2).
    Exact for screens made with ``subharmonics=0`` (periodic); others wrap at their edges.
    """
    rows, cols = screen.shape[-2:]
    dx, dy = (float(s) for s in shift)
    fx = torch.fft.fftfreq(cols, dtype=torch.float64, device=screen.device)
    fy = torch.fft.fftfreq(rows, dtype=torch.float64, device=screen.device)
    ramp = torch.exp(2j * math.pi * (fy[:, None] * dy + fx[None, :] * dx))
    spectrum = torch.fft.fft2(screen.to(torch.float64))
    return torch.fft.ifft2(spectrum * ramp).real.to(screen.dtype)
