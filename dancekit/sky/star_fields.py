"""Star fields to simulate: random homogeneous fields, star clusters, and user catalogues.

Positions are 0-based pixel coordinates (x along columns, y along rows, pixel centres at
integers); magnitudes are in the band of the config. Random draws come from the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from dancekit.errors import InputError, ParameterError


@dataclass(frozen=True)
class StarField:
    """Stars as arrays: ``x``, ``y`` (0-based pixels), ``mag``; ``ra``/``dec`` (deg) when a WCS placed them."""

    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def with_sky(self, wcs: WCS) -> "StarField":
        ra, dec = wcs.all_pix2world(self.x, self.y, 0)
        return StarField(self.x, self.y, self.mag, np.asarray(ra), np.asarray(dec))


def sample_magnitudes(n: int, rng: np.random.Generator, mag_max: float = 21.0, mag_min: float = 12.0) -> np.ndarray:
    """Magnitudes with p(m) ∝ 10^(0.4 (m − mag_max)) on [mag_min, mag_max] (Bialek et al. 2024 §3.1).

    The density grows by 10^0.4 per magnitude: faint stars dominate, as in a real field.
    Sampled by inverting the cumulative distribution.
    """
    if not mag_min < mag_max:
        raise ParameterError(f"mag_min ({mag_min}) must be brighter (smaller) than mag_max ({mag_max})")
    lo, hi = 10 ** (0.4 * (mag_min - mag_max)), 1.0
    u = rng.uniform(lo, hi, n)
    return mag_max + 2.5 * np.log10(u)


def homogeneous_field(shape: tuple[int, int], rng: np.random.Generator, n_stars: int | None = None,
                      n_range: tuple[int, int] = (3, 2000), mag_max: float = 21.0, mag_min: float = 12.0) -> StarField:
    """A random field: N ~ U[n_range] stars (unless ``n_stars``), uniform over the frame (§3.1)."""
    n = int(rng.integers(n_range[0], n_range[1] + 1)) if n_stars is None else int(n_stars)
    if n < 0:
        raise ParameterError(f"number of stars must be >= 0, got {n}")
    height, width = shape
    x = rng.uniform(-0.5, width - 0.5, n)
    y = rng.uniform(-0.5, height - 0.5, n)
    return StarField(x, y, sample_magnitudes(n, rng, mag_max, mag_min))


def king_radii(n: int, core_radius: float, tidal_radius: float, rng: np.random.Generator) -> np.ndarray:
    """Projected radii drawn from King's (1962) surface density.

    Σ(r) ∝ [1/sqrt(1 + (r/rc)²) − 1/sqrt(1 + (rt/rc)²)]² for r < rt, sampled by inverting the
    numerically integrated cumulative distribution of 2πrΣ(r).
    """
    if not 0 < core_radius < tidal_radius:
        raise ParameterError(f"need 0 < core radius ({core_radius}) < tidal radius ({tidal_radius})")
    r = np.linspace(0, tidal_radius, 4097)
    sigma = (1 / np.sqrt(1 + (r / core_radius) ** 2) - 1 / np.sqrt(1 + (tidal_radius / core_radius) ** 2)) ** 2
    density = 2 * np.pi * r * sigma
    cdf = np.concatenate([[0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(r))])
    return np.interp(rng.uniform(0, cdf[-1], n), cdf, r)


def plummer_radii(n: int, scale_radius: float, max_radius: float, rng: np.random.Generator) -> np.ndarray:
    """Projected radii from a Plummer profile Σ(r) ∝ (1 + r²/a²)^−2, truncated at ``max_radius``.

    The projected cumulative fraction is r²/(r² + a²), inverted analytically.
    """
    if not 0 < scale_radius < max_radius:
        raise ParameterError(f"need 0 < scale radius ({scale_radius}) < max radius ({max_radius})")
    u_max = max_radius**2 / (max_radius**2 + scale_radius**2)
    u = rng.uniform(0, u_max, n)
    return scale_radius * np.sqrt(u / (1 - u))


def cluster_field(shape: tuple[int, int], n_stars: int, rng: np.random.Generator, profile: str = "king",
                  core_radius: float = 70.0, tidal_radius: float = 3800.0, centre: tuple[float, float] | None = None,
                  mag_max: float = 21.0, mag_min: float = 12.0) -> StarField:
    """A globular cluster of ``n_stars`` inside the frame (radii in pixels).

    Defaults are M92-like at 0.235"/px: core radius 0.26' ≈ 70 px, tidal radius ≈ 15' ≈ 3800 px
    (Harris 1996, 2010 edition). Stars drawn outside the frame are redrawn, so the frame holds
    exactly ``n_stars``.
    """
    if profile not in ("king", "plummer"):
        raise ParameterError(f"cluster profile must be 'king' or 'plummer', got '{profile}'")
    height, width = shape
    cx, cy = centre if centre is not None else ((width - 1) / 2, (height - 1) / 2)
    x, y = np.empty(0), np.empty(0)
    while len(x) < n_stars:
        m = 2 * (n_stars - len(x)) + 16
        r = (king_radii(m, core_radius, tidal_radius, rng) if profile == "king"
             else plummer_radii(m, core_radius, tidal_radius, rng))
        phi = rng.uniform(0, 2 * np.pi, m)
        px, py = cx + r * np.cos(phi), cy + r * np.sin(phi)
        inside = (px >= -0.5) & (px < width - 0.5) & (py >= -0.5) & (py < height - 0.5)
        x, y = np.concatenate([x, px[inside]]), np.concatenate([y, py[inside]])
    return StarField(x[:n_stars], y[:n_stars], sample_magnitudes(n_stars, rng, mag_max, mag_min))


def catalogue_field(columns: dict[str, np.ndarray], shape: tuple[int, int], wcs: WCS | None = None,
                    rng: np.random.Generator | None = None, max_offset: float = 0.0) -> StarField:
    """Stars from a user catalogue with ``x``/``y`` (0-based pixels) or ``ra``/``dec`` (deg), and ``mag``.

    Sky positions are placed through ``wcs``; ``max_offset`` (a fraction of the field, up to 0.5)
    shifts the whole catalogue by a uniform random offset in both axes (Bialek et al. 2024 §3.1),
    making varied training fields from one cluster. Stars that fall outside the frame are dropped.
    """
    names = {k.lower(): k for k in columns}
    if "mag" not in names:
        raise InputError(f"catalogue has no 'mag' column (columns: {', '.join(columns)})")
    if "x" in names and "y" in names:
        x, y = (np.asarray(columns[names[k]], float) for k in ("x", "y"))
    elif "ra" in names and "dec" in names:
        if wcs is None:
            raise InputError("catalogue gives ra/dec but there is no WCS to place them")
        x, y = wcs.all_world2pix(np.asarray(columns[names["ra"]], float), np.asarray(columns[names["dec"]], float), 0)
    else:
        raise InputError(f"catalogue needs x/y or ra/dec columns (columns: {', '.join(columns)})")
    mag = np.asarray(columns[names["mag"]], float)
    if not 0 <= max_offset <= 0.5:
        raise ParameterError(f"catalogue offset must be in [0, 0.5] of the field, got {max_offset}")
    if max_offset > 0:
        if rng is None:
            raise ParameterError("a random catalogue offset needs a random generator")
        x = x + rng.uniform(-max_offset, max_offset) * shape[1]
        y = y + rng.uniform(-max_offset, max_offset) * shape[0]
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(mag)
    keep &= (x >= -0.5) & (x < shape[1] - 0.5) & (y >= -0.5) & (y < shape[0] - 0.5)
    if not keep.any():
        raise InputError("no star of the catalogue falls inside the frame (check the WCS centre and the offset)")
    return StarField(x[keep], y[keep], mag[keep])


def tan_wcs(shape: tuple[int, int], ra: float, dec: float, pixel_scale: float, rotation: float = 0.0) -> WCS:
    """A gnomonic (TAN) WCS whose reference pixel is the image centre (Calabretta & Greisen 2002).

    Parameters
    ----------
    shape : (H, W) pixels. ra, dec : tangent point, degrees (ICRS).
    pixel_scale : arcsec per pixel (> 0).
    rotation : position angle of the image +y axis, degrees east of north (0 = north up,
        east left). Written as CDELT and a PC rotation matrix.

    This is the one TAN-WCS builder of dancekit: ``dancekit.photometry.synthetic.tan_wcs``
    converts its radians and calls it.
    """
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ParameterError(f"pixel_scale must be > 0 arcsec per pixel, got {pixel_scale!r}")
    if not (np.isfinite(ra) and np.isfinite(dec) and -90.0 <= dec <= 90.0):
        raise ParameterError(f"need a finite ra and a dec in [-90, 90] degrees, got ({ra!r}, {dec!r})")
    height, width = shape
    cos_r, sin_r = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    wcs.wcs.cdelt = [-pixel_scale / 3600, pixel_scale / 3600]
    wcs.wcs.pc = [[cos_r, -sin_r], [sin_r, cos_r]]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.pixel_shape = (width, height)
    return wcs
