"""Shared fixtures: the real entry point as a subprocess, and small FITS files made on the fly."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, stdin=None, cwd=None, timeout=300):
    """Run ``python -m dancekit ARGS`` as a user would; returns the CompletedProcess (bytes)."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "dancekit", *map(str, args)],
        input=stdin, capture_output=True, cwd=cwd, env=env, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


def make_wcs(shape, ra=250.42, dec=36.46, scale_arcsec=0.235):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return wcs


@pytest.fixture
def cube_file(tmp_path):
    """A (T, H, W) float32 cube with a WCS and observation keywords; frame t holds the value t."""

    def make(name="cube.fits", shape=(6, 32, 40), seed=1):
        rng = np.random.default_rng(seed)
        data = (np.arange(shape[0], dtype=np.float32)[:, None, None] + rng.normal(0, 0.01, shape)).astype(np.float32)
        header = make_wcs(shape[1:]).to_header()
        header["EXPTIME"] = (0.19, "s")
        header["DATE-OBS"] = "2022-05-27T22:10:00"
        header["FILTER"] = "SDSS-r"
        header["BUNIT"] = "electron"
        path = tmp_path / name
        fits.PrimaryHDU(data, header=header).writeto(path)
        return path, data

    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test process: on 2 shared cores (and with pytest -n 2), torch's default
    of one thread per core mostly waits on the other busy core (measured: 68 s vs 7 s for tests/unet)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def ccdproc_raw_frame():
    """ccdproc's real SAAO raw frame with overscan, found without importing ccdproc (installed --no-deps)."""
    spec = importlib.util.find_spec("ccdproc")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("CI"):
            pytest.fail("ccdproc is missing: make install must add it for the real-frame tests")
        pytest.skip("ccdproc is not installed (make install adds it for the tests)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data" / "a8280271.fits"
    if not path.is_file():
        pytest.skip("ccdproc test frame a8280271.fits is absent")
    return path
