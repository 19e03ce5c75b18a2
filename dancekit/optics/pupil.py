"""Telescope pupil and the apodised incident wave on the square pupil-plane grid.

Grid convention shared by the whole optics package: an ``n x n`` grid of spacing ``sampling``
(m/px) whose pixel ``j`` (row or column) has its centre at ``(j - n // 2) * sampling``; the optical
axis is the centre of pixel ``(n // 2, n // 2)``, which is also where ``torch.fft.fftshift`` puts
the zero frequency, so a centred PSF peaks there. Arrays are indexed ``[..., y, x]``.
"""

from __future__ import annotations

import math

import torch

from dancekit.errors import ParameterError
from dancekit.optics._validate import grid_size, obstruction_ratio, positive


def _check_grid(n: int, sampling: float) -> tuple[int, float]:
    return grid_size(n), positive("sampling", sampling, "m/px")


def grid_coordinates(n: int, sampling: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates (m) of one axis of the pupil grid, shape (n,): (j - n//2) * sampling."""
    return (torch.arange(n, device=device, dtype=torch.float64) - n // 2).mul(sampling).to(dtype)


def annular_pupil(
    n: int,
    sampling: float,
    diameter: float,
    obstruction: float = 0.0,
    *,
    supersampling: int = 8,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Transmission (0..1) of an annular pupil, shape (n, n), centred on pixel (n//2, n//2).

    diameter: outer diameter D (m); obstruction: linear central obstruction eps = D'/D in [0, 1);
    sampling: grid spacing (m/px). Edge pixels carry the fraction of their area inside the annulus,
    estimated on a ``supersampling`` x ``supersampling`` sub-grid (anti-aliased edges, so the pupil
    area and hence the PSF peak do not jump with the sampling). The paper's pupil (Bialek et al.
    2024, Sect. 2.1): a circular obstruction of diameter D' then the circular primary of diameter D.
    """
    n, sampling = _check_grid(n, sampling)
    diameter = positive("diameter", diameter, "m")
    obstruction = obstruction_ratio(obstruction)
    if int(supersampling) != supersampling or supersampling < 1:
        raise ParameterError(f"supersampling = {supersampling!r}: must be an integer >= 1")
    s = int(supersampling)
    # sub-pixel centres within one pixel, in pixel units
    sub = (torch.arange(s, dtype=torch.float64, device=device) + 0.5) / s - 0.5
    axis = torch.arange(n, dtype=torch.float64, device=device) - n // 2
    fine = ((axis[:, None] + sub[None, :]) * sampling).reshape(-1)  # (n*s,)
    r_out, r_in = diameter / 2, obstruction * diameter / 2
    out = torch.empty(n, n, dtype=torch.float64, device=device)
    rows_per_chunk = max(1, 2**22 // (n * s * s))
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        y = fine[start * s: stop * s]
        r2 = y[:, None] ** 2 + fine[None, :] ** 2  # (rows*s, n*s)
        inside = ((r2 <= r_out**2) & (r2 >= r_in**2)).to(torch.float64)
        out[start:stop] = inside.reshape(stop - start, s, n, s).mean(dim=(1, 3))
    return out.to(dtype)


def tukey_incident_wave(
    n: int,
    sampling: float,
    diameter: float,
    *,
    inner: float = 1.5,
    outer: float = 2.0,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Radially Tukey-apodised amplitude of the incident plane wave, shape (n, n), real.

    1 inside the diameter ``inner * D``, a cosine taper 0.5 (1 + cos(pi (r - r_in) / (r_out - r_in)))
    down to 0 at the diameter ``outer * D``, 0 beyond (Harris 1978; Bialek et al. 2024 Sect. 2.1 use
    1.5 D and 2 D). It keeps the field away from the periodic edges of the Fresnel propagation grid,
    so the grid should span at least ``outer * D`` (``n * sampling >= 2 D``).
    """
    n, sampling = _check_grid(n, sampling)
    diameter = positive("diameter", diameter, "m")
    if not (0 < inner < outer):
        raise ParameterError(f"inner = {inner!r}, outer = {outer!r}: need 0 < inner < outer (in D)")
    x = grid_coordinates(n, sampling, device=device, dtype=torch.float64)
    r = torch.sqrt(x[:, None] ** 2 + x[None, :] ** 2)
    r_in, r_out = inner * diameter / 2, outer * diameter / 2
    u = ((r - r_in) / (r_out - r_in)).clamp(0.0, 1.0)
    return (0.5 * (1 + torch.cos(math.pi * u))).to(dtype)
