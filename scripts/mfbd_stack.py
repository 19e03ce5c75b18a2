"""Multi-frame blind deconvolution of a dancekit video with torchmfbd (Asensio Ramos et al.), the
classical alternative to the U-Net for Table 1 (`scripts/figure_table1.py`).

torchmfbd models each frame as the object convolved with one PSF per frame, built from a
Karhunen-Loeve wavefront expansion on the telescope pupil, and fits object and wavefronts together.
It needs the PSF sampled at least at Nyquist: ``torchmfbd.util.psf_scale`` (lambda/D over the pixel)
must be >= 1. The C2PU frames (0.235"/px, lambda/D = 0.129" at 650 nm on 1.04 m) are at 0.55, so it
refuses them as they are; the frames are resampled onto an ``--oversample`` times finer grid
(cubic spline, flux kept) first, and the result is binned back onto the video's pixels. The whole
field is one isoplanatic patch (one PSF per frame): what a user would run on a small field.
The output is torchmfbd's object convolved with the diffraction-limited PSF (``obj_diffraction``),
like the video's TRUTH, with the video's header, so `dancekit evaluate` judges it as the stacks.

Usage: python scripts/mfbd_stack.py VIDEO -o OUT.fits [--iterations 20] [--oversample 2] [--modes 44]
Exit 2 with one line when torchmfbd refuses the video (the message names its reason).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import zoom

RAD_TO_ARCSEC = 206264.80624709636


def psf_sampling(wavelength_m: float, diameter_m: float, pixel_arcsec: float) -> float:
    """torchmfbd's ``psf_scale``: lambda/D in pixels; it models the PSF only when this is >= 1."""
    import torchmfbd.util

    return torchmfbd.util.psf_scale(wavelength_m * 1e10, diameter_m * 100.0, pixel_arcsec)


def deconvolve(cube: np.ndarray, pixel_arcsec: float, wavelength_m: float, diameter_m: float,
               oversample: int, iterations: int, modes: int) -> np.ndarray:
    """(frames, H, W) counts -> (H, W) deconvolved image on the same pixels, the same flux units."""
    import torch
    import torchmfbd

    n, height, width = cube.shape
    fine = np.stack([zoom(frame, oversample, order=3) for frame in cube.astype(np.float64)]) / oversample**2
    npix = fine.shape[-1]
    config = {
        "telescope": {"diameter": diameter_m * 100.0, "central_obscuration": 0.0, "spider": 0},
        "images": {"n_pixel": npix, "pix_size": pixel_arcsec / oversample, "apodization_border": 6,
                   "remove_gradient_apodization": False},
        "object1": {"wavelength": wavelength_m * 1e10, "image_filter": "tophat", "cutoff": [0.75, 0.80]},
        "optimization": {"gpu": 0 if torch.cuda.is_available() else -1, "transform": "softplus",
                         "softplus_scale": 1.0, "lr_obj": 0.02, "lr_modes": 0.08, "show_object_info": False},
        "regularization": {"iuwt1": {"variable": "object", "lambda": 0.0, "nbands": 5}},
        "psf": {"model": "kl", "nmax_modes": modes, "orthogonalize": False},
        "initialization": {"object": "contrast", "modes_std": 0.0},
        "annealing": {"type": "none", "start_pct": 0.0, "end_pct": 0.85},
    }
    solver = torchmfbd.Deconvolution(config)
    solver.add_frames(torch.tensor(fine[None], dtype=torch.float32), id_object=0, id_diversity=0, diversity=0.0)
    solver.deconvolve(infer_object=False, optimizer="adam", simultaneous_sequences=1, n_iterations=iterations)
    image = np.asarray(solver.obj_diffraction[0].detach().cpu().numpy(), dtype=np.float64)[0]
    image = image[:height * oversample, :width * oversample]
    return image.reshape(height, oversample, width, oversample).sum(axis=(1, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=20, help="Adam steps of the joint fit (default 20)")
    parser.add_argument("--oversample", type=int, default=2, help="finer grid factor (default 2)")
    parser.add_argument("--modes", type=int, default=44, help="KL wavefront modes per frame (default 44)")
    parser.add_argument("--wavelength", type=float, default=6.5e-7, help="m (default: C2PU's 650 nm)")
    parser.add_argument("--diameter", type=float, default=1.04, help="m (default: C2PU's 1.04 m)")
    args = parser.parse_args()
    with fits.open(args.video) as hdus:
        cube, header = np.asarray(hdus[0].data, dtype=np.float64), hdus[0].header.copy()
    from dancekit.io.video import pixel_scale

    scale = pixel_scale(header)
    if scale is None:
        print(f"mfbd_stack: {args.video} has no pixel scale", file=sys.stderr)
        return 2
    pixel_arcsec = scale * RAD_TO_ARCSEC
    sampling = psf_sampling(args.wavelength, args.diameter, pixel_arcsec / args.oversample)
    if sampling < 1.0:
        print(f"mfbd_stack: torchmfbd refuses a PSF sampled at {sampling:.2f} lambda/D per pixel (< 1); "
              f"raise --oversample", file=sys.stderr)
        return 2
    logging.disable(logging.INFO)  # torchmfbd logs every step at INFO on its own handler
    output = args.output.resolve()
    with tempfile.TemporaryDirectory() as scratch:  # torchmfbd caches its KL basis in ./basis
        os.chdir(scratch)
        image = deconvolve(cube, pixel_arcsec, args.wavelength, args.diameter, args.oversample, args.iterations, args.modes)
    out = fits.PrimaryHDU(image.astype(np.float32), header=fits.Header([c for c in header.cards if c.keyword not in ("NAXIS3",)]))
    out.header["MFBD"] = ("torchmfbd", "multi-frame blind deconvolution")
    out.header["MFBDOVS"] = (args.oversample, "frames resampled this many times finer")
    out.header["MFBDITER"] = (args.iterations, "optimisation steps")
    out.header["MFBDSAMP"] = (round(psf_sampling(args.wavelength, args.diameter, pixel_arcsec), 3), "lambda/D in native pixels")
    tmp = output.with_name(output.name + ".tmp")
    out.writeto(tmp, overwrite=True)
    tmp.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
