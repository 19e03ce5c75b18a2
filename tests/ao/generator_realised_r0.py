"""The r0 that the independent generator's phase screens actually hold (issue 16's reference).

``validate_fit_r0_independent.py`` measures fit-r0's bias against the r0 the generator was asked
for. Its screens (one FFT strip per layer pair with subharmonics, ``independent_telemetry.py``) hold
that r0 only to within their own sampling error, and every estimator inherits it. This script
projects many independent pupil-sized pieces of the screens, full disc, onto Noll 1..J by least
squares and compares the mean variances of Noll 4-15 (the modes fit-r0 fits) with the closed-form
von Karman values at the nominal r0 and L0. Errors are the scatter between strips (one strip = one
independent screen pair). Measured (120 strips, J = 45 or 105 alike): radial order 2 holds
1.023 +- 0.008 of its variance, order 3 0.994 +- 0.006, order 4 1.000 +- 0.006; Noll 4-15 together
1.013 +- 0.005, an r0 of 0.992 +- 0.003 of the nominal.

Run: python tests/ao/generator_realised_r0.py [--strips 120] [--modes 45] [--r0 0.12] [--L0 25]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import independent_telemetry as generator  # noqa: E402
from dancekit.ao.covariance import zernike_variance  # noqa: E402
from dancekit.ao.zernike import noll_orders  # noqa: E402

FITTED = np.arange(4, 16)  # Noll 4-15: radial orders 2-4


def strip_variances(r0: float, outer_scale: float, strips: int, n_modes: int, length: int = 4096) -> np.ndarray:
    """(strips, 12) mean variance [rad²] of Noll 4-15 per strip, both layers' pieces together
    (each layer holds its Cn2 fraction of the variance, so their mean times the number of layers is
    the total)."""
    sensor = generator.make_sensor()
    n = sensor.pupil.shape[0]
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    x, y = np.meshgrid(centres, centres, indexing="xy")
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    disc = rho <= 1.0
    basis = np.stack([generator.zernike_polar(j, rho, theta)[disc] for j in range(1, n_modes + 1)], axis=1)
    projector = np.linalg.pinv(basis)[FITTED - 1]
    rows = np.arange((generator.STRIP_WIDTH - n) // 2, (generator.STRIP_WIDTH - n) // 2 + n)
    out = np.empty((strips, FITTED.size))
    for k in range(strips):
        screen_rng, *layer_rngs = (np.random.default_rng(s) for s in np.random.SeedSequence((k, 77)).spawn(3))
        pair = generator.unit_screen_pair(generator.STRIP_WIDTH, length, sensor.pixel, outer_scale, screen_rng)
        pieces = []
        for i, (layer, rng) in enumerate(zip(generator.LAYERS, layer_rngs)):
            band = (pair.real if i == 0 else pair.imag)[rows] + generator.subharmonics(
                rows, length, sensor.pixel, 1 / (generator.STRIP_WIDTH * sensor.pixel), 1 / (length * sensor.pixel),
                outer_scale, rng)
            band = band * (r0 * layer.cn2_fraction ** (-0.6)) ** (-5 / 6)
            pieces += [projector @ band[:, start:start + n][disc] for start in range(0, length - n, n)]
        out[k] = np.mean(np.square(pieces), axis=0) * len(generator.LAYERS)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=120)
    parser.add_argument("--modes", type=int, default=45, help="Noll modes of the least-squares basis")
    parser.add_argument("--r0", type=float, default=0.12)
    parser.add_argument("--L0", type=float, default=25.0)
    args = parser.parse_args()
    variances = strip_variances(args.r0, args.L0, args.strips, args.modes)
    model = zernike_variance(FITTED, args.r0, args.L0, generator.DIAMETER)
    orders, _ = noll_orders(FITTED)
    for order in np.unique(orders):
        ratio = variances[:, orders == order].sum(1) / model[orders == order].sum()
        print(f"radial order {order}: variance / von Karman {ratio.mean():.4f} +- {ratio.std(ddof=1) / np.sqrt(ratio.size):.4f}")
    ratio = variances.sum(1) / model.sum()
    mean, error = ratio.mean(), ratio.std(ddof=1) / np.sqrt(ratio.size)
    print(f"Noll 4-15: {mean:.4f} +- {error:.4f} -> realised r0 / nominal {mean ** -0.6:.4f} +- {0.6 * error * mean ** -1.6:.4f} "
          f"({args.strips} strips)")


if __name__ == "__main__":
    main()
