"""Speed of ``dancekit catalog``: a 1024 x 1024 field of 5000 stars (a sharp image, FWHM 2.5 px, and
an average-stack-like one, Moffat FWHM 5.5 px) through the command's code path (read both images,
detect, refine, build the ePSF, forced PSF photometry of every star, write the table), against sep
aperture photometry of the same stars (background, detection and 10-px apertures) timed in the
same run. Goal: < 30 s on 2 cores.

Run: python benchmarks/bench_catalog.py [--stars N] [--size N] [--repeats N]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import sep
from astropy.io import fits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from timing import best_of  # noqa: E402
from dancekit.photometry.dual_image import dual_image_catalogue  # noqa: E402
from dancekit.photometry.psf_photometry import psf_stamps  # noqa: E402
from dancekit.photometry.epsf import psf_from_array  # noqa: E402
from tests.conftest import make_wcs  # noqa: E402


def _field(size, n_stars, seed=1):
    """Sharp and blurred images of one field: stars rendered through ImagePSF stamps (fast)."""
    from photutils.psf import CircularGaussianPRF, MoffatPSF

    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, size - 1, n_stars), rng.uniform(0, size - 1, n_stars)
    flux = 10 ** (0.4 * (21.0 - rng.uniform(12.0, 21.0, n_stars))) * 50.0  # e-, ~p(m) of a field
    g = np.arange(-27, 28)
    alpha = 5.5 / (2 * np.sqrt(2 ** (1 / 3.0) - 1))
    moffat = psf_from_array(MoffatPSF().evaluate(g[None, :], g[:, None], 1.0, 0.0, 0.0, alpha, 3.0))
    h = np.arange(-7, 8)
    gauss = psf_from_array(CircularGaussianPRF().evaluate(h[None, :], h[:, None], 1.0, 0.0, 0.0, 2.5))
    blurred = (psf_stamps(moffat, x, y, (size, size)) @ flux).reshape(size, size)
    sharp = (psf_stamps(gauss, x, y, (size, size)) @ flux).reshape(size, size)
    return sharp + rng.normal(0, 3.0, sharp.shape), rng.poisson(blurred + 100.0).astype(float)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stars", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sharp, blurred = _field(args.size, args.stars)
    with tempfile.TemporaryDirectory() as folder:
        header = make_wcs(sharp.shape).to_header()
        header.update({"BUNIT": "electron", "NCOMBINE": 1})
        paths = [os.path.join(folder, name) for name in ("inferred.fits", "average.fits", "stars.fits")]
        fits.PrimaryHDU(sharp.astype(np.float32), header=header).writeto(paths[0])
        fits.PrimaryHDU(blurred.astype(np.float32), header=header).writeto(paths[1])
        data = blurred.astype(np.float64)

        def baseline():
            background = sep.Background(data)
            subtracted = data - background.back()
            objects = sep.extract(subtracted, 5.0, err=background.globalrms, minarea=5)
            sep.sum_circle(subtracted, objects["x"], objects["y"], 5.0, err=background.globalrms)
            return len(objects)

        t_base, _, n_base = best_of(baseline, args.repeats)
        stages = {}

        def library():
            start = time.process_time()
            result = dual_image_catalogue(sharp, blurred, gain=1.0)
            stages["cpu"] = time.process_time() - start
            return result

        t_library, _, result = best_of(library, args.repeats)

        def command():
            subprocess.run([sys.executable, "-m", "dancekit", "catalog", paths[0], "-m", paths[1], "-o", paths[2],
                            "--overwrite", "-q"], check=True, env={**os.environ, "PYTHONPATH": ROOT})

        t_command, _, _ = best_of(command, args.repeats)
    print(f"{args.size}x{args.size}, {args.stars} stars: sep aperture photometry (background, detection, "
          f"10-px apertures, {n_base} sources) {t_base:.2f} s; catalog library {t_library:.1f} s "
          f"({stages['cpu']:.1f} s CPU, {len(result)} stars, PSF from {result.psf.n_stars}) = "
          f"{t_library / t_base:.0f} x sep; the command (read, catalogue, write) {t_command:.1f} s; goal < 30 s")


if __name__ == "__main__":
    main()
