"""Speed of ``dancekit zeropoint``: a 4k x 4k exposure with ~5000 sources through the command's code
path (read, extract, match, fit, write the header copy), against the bare sep extraction of the same
image timed in the same run; a sparse 1024 x 1024 field whose aperture correction comes from the
joint Moffat fit, against the same calibration without aperture correction; then a night of N small
exposures with --jobs 1 and --jobs 2.

Run: python benchmarks/bench_zeropoint.py [--night N]
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import sep
from astropy.io import fits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from timing import best_of  # noqa: E402
from dancekit.commands import zeropoint as command  # noqa: E402
from dancekit.io.catalogue import read_reference_catalogue  # noqa: E402
from dancekit.photometry import calibrate_exposure, synthetic_field  # noqa: E402


def _write_exposure(folder, name, shape, n_stars, seed):
    field = synthetic_field(shape, n_stars, zeropoint=25.0, exptime=30.0, gain=2.0, read_noise=5.0, sky=500.0,
                            mag_range=(14.0, 20.0), seed=seed)
    header = field.wcs.to_header()
    header.update({"GAIN": 2.0, "RDNOISE": 5.0, "EXPTIME": 30.0, "AIRMASS": 1.1, "SATURATE": 60000.0})
    path = os.path.join(folder, f"{name}.fits")
    fits.PrimaryHDU(field.image, header).writeto(path)
    cat = field.catalogue
    cat_path = os.path.join(folder, f"{name}_cat.fits")
    fits.BinTableHDU.from_columns([fits.Column("ra", "D", array=np.degrees(cat.ra)),
                                   fits.Column("dec", "D", array=np.degrees(cat.dec)),
                                   fits.Column("mag", "D", array=cat.mag)]).writeto(cat_path)
    return path, cat_path, field


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--night", type=int, default=24, help="exposures in the night benchmark")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path, cat_path, field = _write_exposure(folder, "big", (4096, 4096), 5000, seed=1)
        data = field.image.astype(np.float32)

        def bare():
            bkg = sep.Background(data)
            sep.extract(data - bkg.back(), 5.0, err=bkg.globalrms, minarea=5, deblend_cont=0.005)

        settings = command.Settings(
            catalogue=read_reference_catalogue(cat_path), output=os.path.join(folder, "out.fits"),
            n_inputs=1, ext=None, gain=None, read_noise=None, exptime=None, airmass=None, saturation=None,
            extinction=0.0, fit_extinction=False, colour_term=0.0, match_radius=1.5 * command.ARCSEC,
            aperture=None, kron=False, aperture_correction=True, measured_noise=False, min_stars=5, table=False,
            overwrite=True,
        )
        t_bare = best_of(bare, args.repeats)[0]
        stages = {}

        def full():
            start = time.perf_counter()
            exposure = command._calibrate(path, settings)
            stages["calibrate"] = time.perf_counter() - start
            command._write(path, exposure, settings)
            stages["n_used"] = exposure["result"].n_used

        t_full = best_of(full, args.repeats)[0]
        print(f"4096x4096, 5000 stars: bare sep background+extract {t_bare:.2f} s; zeropoint command path "
              f"{t_full:.2f} s (read+extract+photometry+match+fit {stages['calibrate']:.2f} s, "
              f"{stages['n_used']} stars used) = {t_full / t_bare:.1f} x bare extraction; goal < 2 s")

        sparse = synthetic_field((1024, 1024), 400, zeropoint=25.0, exptime=10.0, gain=2.0, read_noise=5.0,
                                 sky=500.0, psf="moffat", fwhm=3.5, moffat_beta=3.5, mag_range=(15.0, 22.0),
                                 luminosity_slope=0.35, seed=6)

        def sparse_calibration(correct):
            return calibrate_exposure(sparse.image, sparse.wcs, sparse.catalogue, gain=2.0, read_noise=5.0,
                                      exptime=10.0, aperture_radius=None, colour_term=0.0,
                                      aperture_correction=correct)

        t_plain = best_of(lambda: sparse_calibration(False), args.repeats)[0]
        t_moffat, _, corrected = best_of(lambda: sparse_calibration(True), args.repeats)
        sources = corrected.stars.sources
        print(f"sparse 1024x1024, 400 stars: calibration without aperture correction {t_plain:.2f} s; with the "
              f"{sources.aperture_correction_method} correction from {sources.n_aperture_correction} stars "
              f"{t_moffat:.2f} s = {t_moffat / t_plain:.1f} x; |ZP - truth| {abs(corrected.zeropoint.zp - 25.0):.4f} mag")

        # N copies of one exposure: the night costs what N different fields of that size cost
        first, night_cat, _ = _write_exposure(folder, "n000", (512, 512), 300, seed=100)
        night = [first]
        for i in range(1, args.night):
            night.append(os.path.join(folder, f"n{i:03d}.fits"))
            shutil.copy(first, night[-1])
        outdir = os.path.join(folder, "night")
        os.mkdir(outdir)
        settings = dataclasses.replace(settings, output=outdir, n_inputs=len(night),
                                       catalogue=read_reference_catalogue(night_cat))
        timings = {}
        for jobs in (1, 2):
            for name in os.listdir(outdir):
                os.remove(os.path.join(outdir, name))
            start = time.perf_counter()
            summaries, code = command._each(night, settings, jobs)
            timings[jobs] = time.perf_counter() - start
            assert code == 0 and len(summaries) == len(night)
        print(f"night of {len(night)} 512x512 exposures: --jobs 1 {timings[1]:.2f} s "
              f"({timings[1] / len(night) * 1e3:.0f} ms each), --jobs 2 {timings[2]:.2f} s "
              f"= {timings[1] / timings[2]:.2f} x speed-up on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
