"""Independent NAOMI-like telemetry to validate ``fit-r0`` on data it did not make (issue 16).

Nothing here comes from dancekit's own sensor, screen or Zernike code (only numpy, scipy and
astropy/aotpy to write the files), so a shared modelling error cannot cancel out:

* turbulence: 2 frozen-flow von Kármán layers (``LAYERS``: 65 % of the Cn2 at 14.1 m/s along +x,
  35 % at 28.1 m/s along -x), the real and imaginary parts of one FFT screen on a long strip
  (McGlamery 1976; 512 px = 8 D across) with the PSD averaged over each FFT cell near the strip's
  axis and 3 levels of subharmonics (Lane et al. 1992) for the frequencies the short side misses;
  each layer moves by a whole number of pixels per frame (1 and 2 px at 500 Hz), so frozen flow
  needs no interpolation. Checked (slow test): Zernike variances of radial orders 2-4 within a few
  per cent of von Kármán;
* sensor: a geometric 4x4 Shack-Hartmann on D = 1.8 m with a 7.7 % central obstruction, 16 px
  across a subaperture; the 12 subapertures with >= 50 % of their pixels in the pupil are valid; a
  slope is the phase gradient averaged over the illuminated area of the subaperture (finite
  differences of adjacent illuminated pixels, the pairs across the subaperture's edge counted half),
  as a tilt angle in arcsec at the WFS, interleaved ``x1, y1, x2, y2 ...``
  (SPARTA's order), subapertures in column-major order; white Gaussian slope noise. Like any
  pixel-based simulator (OOPAO's geometric SH) its pupil edge sits at pixel centres, so the
  partly lit edge subapertures see the steep edge gradients of high modes 10-20 % differently from
  dancekit's analytic model (converging to it at 64 px per subaperture): its aliasing is its own;
* reconstruction: least squares ``pinv(G_F) s`` of Noll 2-15, the pseudo-open-loop modes in rad
  of phase at 500 nm, and the interaction matrix ``G`` for Noll 2-45 from the same slope operator
  applied to the sampled Zernike modes (a calibration by poking each mode).

Written as dancekit's modal FITS (primary (T, 14) image, NOLLMIN/NOLLMAX/BUNIT/FRAMERAT/TELDIAM/
POL, truth in SIMR0/SIML0) with ``G`` as an image extension (NOLLMIN = 2, SLOPEORD = 'xyxy',
arcsec per rad), or as an open-loop AOT file written with plain aotpy (measurements in arcsec,
measurements-to-modes and modes-to-measurements in micron of wavefront, NAOMI's modal unit).

Run ``python tests/ao/independent_telemetry.py OUT.fits --r0 0.12`` to write one file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from math import factorial

import numpy as np
from astropy.io import fits
from scipy import special

DIAMETER, OBSTRUCTION, LENSLETS, PIXELS_PER_LENSLET = 1.8, 0.077, 4, 16
FRAME_RATE = 500.0  # Hz
WAVELENGTH = 500e-9  # m, phase and r0 wavelength
ARCSEC = 180.0 / np.pi * 3600.0
RECONSTRUCTED = tuple(range(2, 16))  # Noll
CALIBRATED = tuple(range(2, 46))  # Noll modes of the written interaction matrix
STRIP_WIDTH = 512  # px across the wind (8 D)


@dataclass(frozen=True)
class Layer:
    cn2_fraction: float
    step: int  # whole pixels per frame along x (sign: direction)


LAYERS = (Layer(0.65, 1), Layer(0.35, -2))  # 14.1 m/s along +x and 28.1 m/s along -x at 500 Hz


# ---------------------------------------------------------------- Zernike (Noll 1976)
def noll_nm(j: int) -> tuple[int, int]:
    """(n, m) of Noll index j, m signed: > 0 cosine (even j), < 0 sine (odd j)."""
    n = 0
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    first = n * (n + 1) // 2 + 1  # first Noll index of order n
    ms = sorted({abs(m) for m in range(-n, n + 1, 2)})
    table = []
    for m in ms:
        table += [m] if m == 0 else [m, m]
    m = table[j - first]
    if m != 0 and j % 2 == 1:
        m = -m
    return n, m


def zernike_polar(j: int, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Unit-RMS Noll Zernike j at polar pupil coordinates (rho in units of the pupil radius)."""
    n, m = noll_nm(j)
    a = abs(m)
    radial = sum((-1) ** k * factorial(n - k) / (factorial(k) * factorial((n + a) // 2 - k)
                                                 * factorial((n - a) // 2 - k)) * rho ** (n - 2 * k)
                 for k in range((n - a) // 2 + 1))
    if m == 0:
        return np.sqrt(n + 1.0) * radial
    angular = np.cos(a * theta) if m > 0 else np.sin(a * theta)
    return np.sqrt(2.0 * (n + 1.0)) * radial * angular


# ---------------------------------------------------------------- Shack-Hartmann
@dataclass(frozen=True)
class Sensor:
    pixel: float  # m
    pupil: np.ndarray  # (N, N) bool
    slopes: np.ndarray  # (2S, N*N): arcsec of tilt per rad (500 nm) of phase, interleaved x/y
    interaction: np.ndarray  # (2S, 44): slopes per rad of Noll 2..45
    reconstructor: np.ndarray  # (14, 2S): rad of Noll 2..15 per slope


def make_sensor() -> Sensor:
    n = LENSLETS * PIXELS_PER_LENSLET
    pixel = DIAMETER / n
    centres = ((np.arange(n) + 0.5) / n * 2.0 - 1.0)  # units of the pupil radius
    x, y = np.meshgrid(centres, centres, indexing="xy")
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    pupil = (rho <= 1.0) & (rho >= OBSTRUCTION)
    lenslet = np.arange(n) // PIXELS_PER_LENSLET
    cell = lenslet[:, None] * LENSLETS + lenslet[None, :]  # subaperture of each pixel (row-major id)
    to_tilt = WAVELENGTH / (2.0 * np.pi) * ARCSEC / pixel
    rows = []
    for i in range(LENSLETS):  # column-major subaperture order
        for k in range(LENSLETS):
            sub = k * LENSLETS + i
            if (pupil & (cell == sub)).mean() * LENSLETS ** 2 < 0.5:
                continue
            for axis in (1, 0):  # x (along columns) then y
                first = pupil & np.roll(pupil, -1, axis=axis)  # pairs (p, p + 1 px) inside the pupil
                if axis == 1:
                    first[:, -1] = False
                else:
                    first[-1, :] = False
                second_cell = np.roll(cell, -1, axis=axis)
                # a pair inside the subaperture counts fully, one across its edge half: the mean
                # gradient over the subaperture's area (the boundary integral of the phase)
                weight = np.where(first, 0.5 * (cell == sub) + 0.5 * (second_cell == sub), 0.0)
                op = np.roll(weight, 1, axis=axis) - weight  # + phase after the pair, - before
                rows.append(op.ravel() * to_tilt / weight.sum())
    slopes = np.array(rows)
    modes = np.stack([np.where(pupil, zernike_polar(j, rho, theta), 0.0).ravel() for j in CALIBRATED], axis=1)
    interaction = slopes @ modes
    reconstructor = np.linalg.pinv(interaction[:, :len(RECONSTRUCTED)])
    return Sensor(pixel, pupil, slopes, interaction, reconstructor)


# ---------------------------------------------------------------- von Kármán screens
PSD_CONSTANT = (24.0 / 5.0 * special.gamma(6.0 / 5.0)) ** (5.0 / 6.0) * special.gamma(11.0 / 6.0) ** 2 / (
    2.0 * np.pi ** (11.0 / 3.0))  # 0.02290


def psd(f2, r0, outer_scale):
    return PSD_CONSTANT * r0 ** (-5.0 / 3.0) * (f2 + 1.0 / outer_scale ** 2) ** (-11.0 / 6.0)


def unit_screen_pair(ny: int, nx: int, pixel: float, outer_scale: float, rng) -> np.ndarray:
    """Complex (ny, nx) FFT screen for r0 = 1 m: real and imaginary parts are two independent
    von Kármán screens [rad] (the PSD is even), periodic, without the central cell."""
    fy = np.fft.fftfreq(ny, pixel)[:, None]
    fx = np.fft.fftfreq(nx, pixel)[None, :]
    dfy, dfx = 1.0 / (ny * pixel), 1.0 / (nx * pixel)
    power = psd(fx * fx + fy * fy, 1.0, outer_scale) * (dfx * dfy)
    # the cells of the short side's lowest frequencies are coarse where the PSD is steep: average it
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    for row in (0, 1, -1, 2, -2):
        f2 = (fx[None] + sub[:, None, None] * dfx) ** 2 + (fy[row, 0] + sub[None, :, None] * dfy) ** 2
        power[row] = psd(f2, 1.0, outer_scale).mean(axis=(0, 1)) * (dfx * dfy)
    power[0, 0] = 0.0
    amplitude = rng.standard_normal((ny, nx)) + 1j * rng.standard_normal((ny, nx))
    amplitude *= np.sqrt(power)  # E|a|^2 = 2 P: the real part (and the imaginary) has variance P
    return np.fft.ifft2(amplitude) * (ny * nx)


def subharmonics(rows: np.ndarray, nx: int, pixel: float, dfy: float, dfx: float, outer_scale: float,
                 rng) -> np.ndarray:
    """(len(rows), nx) low-frequency phase [rad, r0 = 1 m] of 3 levels of 3x3 subharmonics of the
    central FFT cell (Lane et al. 1992), on the given rows of the strip."""
    y = rows[:, None] * pixel
    x = np.arange(nx)[None, :] * pixel
    out = np.zeros((len(rows), nx))
    for level in range(1, 4):
        gy, gx = dfy / 3 ** level, dfx / 3 ** level
        q = np.array([-1, 0, 1])
        f2 = (q[:, None] * gy) ** 2 + (q[None, :] * gx) ** 2
        c = (rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))) * np.sqrt(
            psd(f2, 1.0, outer_scale) * gx * gy)
        c[1, 1] = 0.0
        out += (np.exp(2j * np.pi * y * (q[None, :] * gy)) @ c @ np.exp(2j * np.pi * (q[:, None] * gx) * x)).real
    return out - out.mean()


def _seed_sequence(seed) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def _good_size(n: int) -> int:
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def frozen_flow_slopes(sensor: Sensor, r0: float, outer_scale: float, n_frames: int, seed,
                       chunk: int = 500) -> np.ndarray:
    """(T, 2S) noise-free slopes [arcsec] of the two layers of ``LAYERS`` (total r0 [m], L0 [m]).

    One complex FFT strip, long along x, holds both layers (real and imaginary parts); each layer
    is read through a pupil-sized band of rows and moves ``step`` whole pixels per frame along x.
    """
    n = sensor.pupil.shape[0]
    steps = [layer.step for layer in LAYERS]
    along = _good_size(n + max(abs(s) for s in steps) * (n_frames - 1) + 1)
    screen_rng, *sub_rngs = (np.random.default_rng(s) for s in _seed_sequence(seed).spawn(1 + len(LAYERS)))
    pair = unit_screen_pair(STRIP_WIDTH, along, sensor.pixel, outer_scale, screen_rng)
    rows = np.arange((STRIP_WIDTH - n) // 2, (STRIP_WIDTH - n) // 2 + n)
    out = np.zeros((n_frames, sensor.slopes.shape[0]))
    for k, (layer, rng) in enumerate(zip(LAYERS, sub_rngs)):
        band = (pair.real if k == 0 else pair.imag)[rows] + subharmonics(
            rows, along, sensor.pixel, 1.0 / (STRIP_WIDTH * sensor.pixel), 1.0 / (along * sensor.pixel),
            outer_scale, rng)
        band *= (r0 * layer.cn2_fraction ** (-0.6)) ** (-5.0 / 6.0)
        windows = np.lib.stride_tricks.sliding_window_view(band, n, axis=1)  # (n, along - n + 1, n)
        start = 0 if layer.step > 0 else windows.shape[1] - 1
        frames = windows[:, start::layer.step][:, :n_frames].transpose(1, 0, 2)  # (T, row, col), a view
        for t0 in range(0, n_frames, chunk):
            t1 = min(t0 + chunk, n_frames)
            out[t0:t1] += frames[t0:t1].reshape(t1 - t0, -1) @ sensor.slopes.T
    return out


# ---------------------------------------------------------------- telemetry
@dataclass(frozen=True)
class IndependentTelemetry:
    modes: np.ndarray  # (T, 14) pseudo-open-loop Noll 2..15 [rad at 500 nm]
    slopes: np.ndarray  # (T, 2S) [arcsec], interleaved x/y
    sensor: Sensor
    r0: float
    outer_scale: float
    slope_noise: float  # arcsec rms per slope


def simulate(r0: float, outer_scale: float = 25.0, slope_noise: float = 0.05, duration: float = 20.0,
             seed: int = 0, sensor: Sensor | None = None) -> IndependentTelemetry:
    """Open-loop telemetry: r0 [m at 500 nm, line of sight], L0 [m], noise [arcsec rms per slope]."""
    sensor = make_sensor() if sensor is None else sensor
    n_frames = int(round(duration * FRAME_RATE))
    turbulence_seed, noise_seed = _seed_sequence(seed).spawn(2)
    slopes = frozen_flow_slopes(sensor, r0, outer_scale, n_frames, turbulence_seed)
    slopes += slope_noise * np.random.default_rng(noise_seed).standard_normal(slopes.shape)
    return IndependentTelemetry(slopes @ sensor.reconstructor.T, slopes, sensor, r0, outer_scale, slope_noise)


def modal_snr(r0: float, outer_scale: float, slope_noise: float, sensor: Sensor | None = None) -> float:
    """Turbulence / noise variance summed over Noll 4-15 (Kolmogorov-von Kármán by quadrature)."""
    from scipy import integrate

    sensor = make_sensor() if sensor is None else sensor
    turbulence = 0.0
    for j in range(4, 16):
        n, _ = noll_nm(j)
        integrand = lambda u: (2 * np.pi * (u / (np.pi * DIAMETER)) * psd((u / (np.pi * DIAMETER)) ** 2, r0, outer_scale)
                               * (n + 1) * 4 * special.jv(n + 1, u) ** 2 / u ** 2 / (np.pi * DIAMETER))
        turbulence += integrate.quad(integrand, 1e-9, 400, limit=500)[0]
    noise = slope_noise ** 2 * np.sum(sensor.reconstructor[2:] ** 2)
    return turbulence / noise


def write_modal(path: str, tel: IndependentTelemetry, with_g: bool = True, overwrite: bool = False) -> None:
    """dancekit's modal FITS format, with the sensor's ``G`` (Noll 2-45) as an image extension."""
    primary = fits.PrimaryHDU(tel.modes)
    h = primary.header
    h.update(BUNIT="rad", WAVELEN=WAVELENGTH, NOLLMIN=RECONSTRUCTED[0], NOLLMAX=RECONSTRUCTED[-1],
             FRAMERAT=FRAME_RATE, TELDIAM=DIAMETER, OBSTRUCT=OBSTRUCTION, POL=True, AIRMASS=1.0,
             SIMR0=tel.r0, SIML0=tel.outer_scale, SIMSNOI=(tel.slope_noise, "[arcsec]"),
             GENERATR=("tests/ao/independent_telemetry.py", "independent of dancekit"))
    hdus = [primary]
    if with_g:
        g = fits.ImageHDU(tel.sensor.interaction, name="G")
        g.header.update(NOLLMIN=CALIBRATED[0], NOLLMAX=CALIBRATED[-1], SLOPEORD="xyxy", BUNIT="arcsec/rad")
        hdus.append(g)
    fits.HDUList(hdus).writeto(path, overwrite=overwrite)


def write_aot(path: str, tel: IndependentTelemetry, with_g: bool = True) -> None:
    """Open-loop AOT file with plain aotpy: slopes (T, 2, S) [arcsec], matrices in micron of wavefront."""
    import aotpy

    n_frames, n_slopes = tel.slopes.shape
    s = n_slopes // 2
    um_per_rad = WAVELENGTH / (2 * np.pi) * 1e6
    blocked = lambda m: np.stack([m[0::2], m[1::2]], axis=1)  # (2S, K) interleaved -> (S, 2, K)
    s2m = blocked(tel.sensor.reconstructor.T * um_per_rad).transpose(2, 1, 0)  # (14, 2, S)
    time = aotpy.Time("loop time", timestamps=(np.arange(n_frames) / FRAME_RATE).tolist())
    telescope = aotpy.MainTelescope("AT", elevation=90.0, enclosing_diameter=DIAMETER, inscribed_diameter=DIAMETER,
                                    obstruction_diameter=DIAMETER * OBSTRUCTION)
    star = aotpy.NaturalGuideStar("NGS")
    wfs = aotpy.ShackHartmann("SH", source=star, n_valid_subapertures=s,
                              measurements=aotpy.Image("Gradients", blocked(tel.slopes.T).transpose(2, 1, 0), time=time))
    dm = aotpy.DeformableMirror("DM", telescope=telescope, n_valid_actuators=14)
    loop = aotpy.ControlLoop("Main Loop", commanded_corrector=dm, input_sensor=wfs, time=time, closed=False,
                             framerate=FRAME_RATE, measurements_to_modes=aotpy.Image("CM", s2m),
                             modes_to_measurements=aotpy.Image("IM", blocked(tel.sensor.interaction / um_per_rad))
                             if with_g else None)
    system = aotpy.AOSystem(ao_mode="SCAO", name="independent", main_telescope=telescope, sources=[star],
                            wavefront_sensors=[wfs], wavefront_correctors=[dm], loops=[loop])
    system.write_to_file(path, overwrite=True)
    with fits.open(path, mode="update") as hdus:
        hdus[0].header.update(SIMR0=tel.r0, SIML0=tel.outer_scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--r0", type=float, default=0.12)
    parser.add_argument("--L0", type=float, default=25.0)
    parser.add_argument("--noise", type=float, default=0.05, help="slope noise, arcsec rms")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aot", action="store_true", help="write an open-loop AOT file instead of modal FITS")
    args = parser.parse_args()
    tel = simulate(args.r0, args.L0, args.noise, args.duration, args.seed)
    (write_aot if args.aot else write_modal)(args.output, tel)


if __name__ == "__main__":
    main()
