"""How wrong the built-in Shack-Hartmann model's remaining error can be for a real sensor (issue 16).

Without the sensor's own interaction matrix, fit-r0 takes the remaining (aliasing + cross-talk)
error from dancekit's geometric 4x4 model and states its uncertainty as R0_ERR_SYS: every fitted
mode's remaining error uncertain by ``fit.sensor_model_error`` (u) of its own size, all modes the
same way (:func:`dancekit.ao.fit.fit_modal_variances`). This script measures the u that plausible
sensors need. For each sensor below it builds the interaction matrix for Noll 2-45, writes the exact
expected variances of Noll 4-15 (von Kármán + that sensor's remaining error, no noise) for
r0 = 12 cm, L0 = 25 m (everything scales with (D/r0)^(5/3)), fits them with the built-in model
(L0 held at the truth), and prints the r0 error against the sensitivity S (r0 change per unit u):
``|error| / S`` is the u that sensor needs.

Sensors: the built-in model sampled more coarsely and finely; its pupil edge weighted by pixel area
instead of pixel centres; the independent generator's pixel sensor (finite differences, 8-32 px
per subaperture; tests/ao/independent_telemetry.py, whose 16 px files validate fit-r0); the pupil
shifted by 0.05-0.1 of a subaperture, scaled by 2.5-5 %, rotated by 5-10 degrees; no or a 14 %
central obstruction. A least-squares ("Z-tilt") sensor is printed apart: a correlating or
thresholded centroid moves towards it, and such a sensor needs its own interaction matrix.

A second table: the r0 error from the aliasing of orders above 8 (the remaining-error order, and
the top of the G the independent files carry) on the pixel sensor, with its own G and the built-in
model: the part of the bias on the independent files that neither model removes.

Run: python tests/ao/sensor_model_spread.py   (about a minute)
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import independent_telemetry as generator  # noqa: E402
from dancekit.ao.fit import fit_modal_variances  # noqa: E402
from dancekit.ao.modal_model import model_at, naomi_cross_talk  # noqa: E402
from dancekit.ao.zernike import zernike, zernike_gradient  # noqa: E402

CONTROLLED, HIGHER, FITTED = tuple(range(2, 16)), tuple(range(16, 46)), tuple(range(4, 16))
DIAMETER, R0, L0 = 1.8, 0.12, 25.0


def shack_hartmann(samples=32, shift=(0.0, 0.0), scale=1.0, rotation=0.0, obstruction=0.077, area=False,
                   least_squares=False, lenslets=4):
    """(2S, 44) slopes of Noll 2-45 of a 4x4 lenslet grid over a pupil shifted by ``shift``
    (subapertures), scaled by ``scale`` (pupil diameter / grid), rotated by ``rotation`` [rad];
    mean gradient (or least-squares tilt) over the lit samples; subapertures >= 50 % lit."""
    m = lenslets * samples
    c = (np.arange(m) + 0.5) / m * 2 - 1
    gx_, gy_ = np.meshgrid(c, c)
    ca, sa = np.cos(rotation), np.sin(rotation)
    px = (ca * gx_ - sa * gy_ - 2 * shift[0] / lenslets) / scale
    py = (sa * gx_ + ca * gy_ - 2 * shift[1] / lenslets) / scale
    offsets = ((np.arange(8) + 0.5) / 8 - 0.5) * 2 / m / scale if area else np.zeros(1)
    lit = np.mean([((np.hypot(px + ox, py + oy) <= 1) & (np.hypot(px + ox, py + oy) >= obstruction))
                   for ox in offsets for oy in offsets], axis=0)
    blocks = lit.reshape(lenslets, samples, lenslets, samples)
    valid = blocks.mean(axis=(1, 3)) >= 0.5
    columns = []
    for j in CONTROLLED + HIGHER:
        if least_squares:
            z = zernike(j, px, py).reshape(blocks.shape)
            xs, ys = gx_.reshape(blocks.shape), gy_.reshape(blocks.shape)
            sx, sy = [], []
            for a, b in zip(*np.nonzero(valid)):
                w = blocks[a, :, b].ravel()
                design = np.stack([np.ones_like(w), xs[a, :, b].ravel(), ys[a, :, b].ravel()], axis=1) * np.sqrt(w)[:, None]
                _, tx, ty = np.linalg.lstsq(design, z[a, :, b].ravel() * np.sqrt(w), rcond=None)[0]
                sx.append(tx)
                sy.append(ty)
        else:
            gx, gy = zernike_gradient(j, px, py)
            gx, gy = ca * gx + sa * gy, -sa * gx + ca * gy  # into the lenslet axes
            lit_sum = blocks.sum(axis=(1, 3))[valid]
            sx = (gx * lit).reshape(blocks.shape).sum(axis=(1, 3))[valid] / lit_sum
            sy = (gy * lit).reshape(blocks.shape).sum(axis=(1, 3))[valid] / lit_sum
        columns.append(np.concatenate([sx, sy]))
    return np.array(columns).T


def pixel_sensor(pixels: int) -> np.ndarray:
    """The independent generator's finite-difference pixel sensor at ``pixels`` px per subaperture."""
    kept = generator.PIXELS_PER_LENSLET
    generator.PIXELS_PER_LENSLET = pixels
    try:
        return generator.make_sensor().interaction
    finally:
        generator.PIXELS_PER_LENSLET = kept


def sensors() -> dict:
    out = {f"built-in model, {n} samples/subaperture": shack_hartmann(n) for n in (8, 16, 64)}
    out.update({f"pupil edge by pixel area, {n} px": shack_hartmann(n, area=True) for n in (8, 16)})
    out.update({f"pixel sensor (independent generator), {n} px": pixel_sensor(n) for n in (8, 12, 16, 24, 32)})
    for d in (0.05, 0.1):
        out[f"pupil shifted {d} subaperture along x"] = shack_hartmann(shift=(d, 0))
        out[f"pupil shifted {d} subaperture along x and y"] = shack_hartmann(shift=(d, d))
    out.update({f"pupil scaled x{k}": shack_hartmann(scale=k) for k in (0.95, 0.975, 1.025, 1.05)})
    out.update({f"lenslets rotated {a} deg": shack_hartmann(rotation=np.radians(a)) for a in (5, 10)})
    out.update({"no central obstruction": shack_hartmann(obstruction=0.0), "14 % obstruction": shack_hartmann(obstruction=0.14)})
    return out


def model_error(interaction: np.ndarray, builtin=None, u: float = 0.15) -> tuple[float, float]:
    """(r0 error of the built-in model on this sensor's exact variances, R0_ERR_SYS at u), relative."""
    c = np.linalg.pinv(interaction[:, :14]) @ interaction[:, 14:]
    g, h = model_at(L0, DIAMETER, FITTED, CONTROLLED, HIGHER, c)
    variances = np.ones(len(CONTROLLED))  # tip and tilt: not fitted
    variances[2:] = (DIAMETER / R0) ** (5 / 3) * (g + h)
    c_builtin, higher = naomi_cross_talk(CONTROLLED, 8, DIAMETER) if builtin is None else builtin
    fit = fit_modal_variances(variances, np.zeros(len(CONTROLLED)), noll=CONTROLLED, fit_noll=FITTED, diameter=DIAMETER,
                              cross_talk=c_builtin, higher_noll=higher, outer_scale=L0, n_monte_carlo=0,
                              remaining_error_uncertainty=u)
    return fit.r0 / R0 - 1, fit.r0_err_model / fit.r0


def aliasing_beyond(top_order: int) -> tuple[float, float]:
    """r0 error (relative) when the independent pixel sensor sees turbulence up to ``top_order`` but
    the remaining error is modelled to order 8 only: with its own G (Noll 2-45, as its files carry)
    and with the built-in model. Both miss the aliasing of the orders above 8."""
    from dancekit.ao.covariance import zernike_covariance_matrix
    from dancekit.ao.modal_model import remaining_error
    from dancekit.ao.zernike import n_modes_to_order

    sensor = generator.make_sensor()
    n = generator.LENSLETS * generator.PIXELS_PER_LENSLET
    c = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(c, c, indexing="xy")
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    noll = list(range(2, n_modes_to_order(top_order) + 1))
    g = sensor.slopes @ np.stack([np.where(sensor.pupil, generator.zernike_polar(j, rho, theta), 0.0).ravel() for j in noll], 1)
    c_all = np.linalg.pinv(g[:, :14]) @ g[:, 14:]
    cov = zernike_covariance_matrix(noll, R0, L0, DIAMETER)
    variances = np.diag(cov)[:14] + remaining_error(c_all, cov[:14, 14:], cov[14:, 14:])
    errors = []
    for cross_talk, higher in ((c_all[:, :len(HIGHER)], HIGHER), naomi_cross_talk(CONTROLLED, 8, DIAMETER)):
        fit = fit_modal_variances(variances, np.zeros(14), noll=CONTROLLED, fit_noll=FITTED, diameter=DIAMETER,
                                  cross_talk=cross_talk, higher_noll=higher, outer_scale=L0, n_monte_carlo=0)
        errors.append(fit.r0 / R0 - 1)
    return errors[0], errors[1]


def main() -> None:
    u = 0.15
    ratios = []
    print(f"| sensor | r0 error of the built-in model | R0_ERR_SYS at u = {u} | u needed |\n|---|---|---|---|")
    for name, interaction in sensors().items():
        error, sys_err = model_error(interaction, u=u)
        ratios.append(abs(error) / (sys_err / u))
        print(f"| {name} | {100 * error:+.2f} % | {100 * sys_err:.2f} % | {ratios[-1]:.3f} |")
    error, sys_err = model_error(shack_hartmann(least_squares=True), u=u)
    print(f"| (apart) least-squares tilt sensor | {100 * error:+.2f} % | {100 * sys_err:.2f} % | {abs(error) / (sys_err / u):.3f} |")
    ratios = np.array(ratios)
    print(f"\nu needed over {len(ratios)} sensors: rms {np.sqrt(np.mean(ratios ** 2)):.3f}, median {np.median(ratios):.3f}, "
          f"max {ratios.max():.3f}; {np.mean(ratios <= u) * 100:.0f} % within u = {u} (1 sigma), "
          f"{np.mean(ratios <= 2 * u) * 100:.0f} % within 2 sigma")
    print("\n| pixel sensor's turbulence up to order | r0 error, its own G (Noll 2-45) | built-in model |\n|---|---|---|")
    for top in (8, 12, 16, 20):
        own, builtin = aliasing_beyond(top)
        print(f"| {top} | {100 * own:+.2f} % | {100 * builtin:+.2f} % |")


if __name__ == "__main__":
    main()
