"""``dancekit zeropoint`` on real-world headers, through the real entry point: a DECam-like
two-amplifier cutout (GAINA/GAINB, RDNOISEA/B, DATASECA/B in physical pixels, LTV offsets, no GAIN),
images without any gain (generated, and the real SkyView/DSS image of M13), every problem of an input
in one line, ZPFLAG explained in the header and in --help, and a sparse field corrected to total flux."""

import hashlib
import os
import re

import astropy
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dancekit.photometry import extract_sources, pixel_to_sky, synthetic_field
from dancekit.photometry.header_cards import ZP_FLAG_GAIN_UNKNOWN, ZP_FLAG_MEANINGS

ZP, EXPTIME = 25.0, 30.0
GAIN_A, GAIN_B = 4.0, 3.6  # e-/ADU, DECam-like
M13 = os.path.join(os.path.dirname(astropy.__file__), "io/fits/hdu/compressed/tests/data/m13.fits")


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _catalogue(field, path, bands=("r", "g")):
    cat = field.catalogue
    columns = [fits.Column("RA", "D", array=np.degrees(cat.ra)), fits.Column("DEC", "D", array=np.degrees(cat.dec))]
    if "r" in bands:
        columns.append(fits.Column("rmag", "D", array=cat.mag))
    if "g" in bands:
        columns.append(fits.Column("gmag", "D", array=cat.mag + cat.colour))
    fits.BinTableHDU.from_columns(columns).writeto(path)
    return path


def _decam_cutout(tmp_path, *, sections=True, drop=(), equalised=False):
    """A 400 x 512 cutout of a 2048 x 4096 two-amplifier CCD, columns 769-1280 and rows 2001-2400 in
    physical pixels: its left half read by amplifier A (GAINA), its right half by B, in ADU (or, with
    ``equalised``, both halves already brought to the mean gain by a pipeline)."""
    field = synthetic_field((400, 512), 200, zeropoint=ZP, exptime=EXPTIME, gain=1.0, read_noise=6.0, sky=800.0,
                            psf="moffat", fwhm=3.5, moffat_beta=3.5, mag_range=(15.0, 21.0), luminosity_slope=0.3,
                            seed=5)
    image = field.image.copy()  # electrons (gain 1) -> ADU of each amplifier
    image[:, :256] /= GAIN_A
    image[:, 256:] /= GAIN_B
    if equalised:
        image = field.image / (0.5 * (GAIN_A + GAIN_B))
    header = field.wcs.to_header()
    header.update({"INSTRUME": "DECam", "FILTER": "r", "EXPTIME": EXPTIME, "AIRMASS": 1.2, "GAINA": GAIN_A,
                   "GAINB": GAIN_B, "RDNOISEA": 6.0, "RDNOISEB": 6.0, "SATURATA": 40000.0, "SATURATB": 42000.0,
                   "LTV1": -768.0, "LTV2": -2000.0})
    if sections:
        header.update({"DATASECA": "[1:1024,1:4096]", "DATASECB": "[1025:2048,1:4096]"})
    for key in drop:
        del header[key]
    path = tmp_path / "decam.fits"
    fits.PrimaryHDU(image.astype(np.float32), header).writeto(path)
    return path, _catalogue(field, tmp_path / "cat.fits"), field


def _photzp(gain, exptime=EXPTIME):
    return ZP - 2.5 * np.log10(gain / exptime)


def test_two_amplifier_cutout_gives_each_amplifier_its_zero_point(cli, tmp_path):
    image, catalogue, _ = _decam_cutout(tmp_path)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert b"warning" not in run.stderr  # gains, read noise and saturation all came from the amplifiers
    with fits.open(out) as hdus, fits.open(image) as original:
        header = hdus[0].header
        assert hdus[0].data.tobytes() == original[0].data.tobytes()
    assert header["ZPGAINSR"] == "GAINA/GAINB by section" and header["ZPGAIN"] == pytest.approx(3.8)
    tolerance = 3 * header["PHOTZPER"] + 0.005
    assert abs(header["PHOTZPA"] - _photzp(GAIN_A)) < tolerance
    assert abs(header["PHOTZPB"] - _photzp(GAIN_B)) < tolerance
    assert header["PHOTZPB"] - header["PHOTZPA"] == pytest.approx(2.5 * np.log10(GAIN_A / GAIN_B), abs=1e-9)
    assert header["APCORMTH"] in ("growth", "moffat") and header["APCOR"] > 0.02
    comments = [str(c) for c in header["COMMENT"] if str(c).startswith("ZPFLAG bit")]
    assert comments == [f"ZPFLAG bit {bit:>3} = {text}" for bit, text in sorted(ZP_FLAG_MEANINGS.items())]
    keys = list(header.keys())
    assert keys.index("COMMENT", keys.index("ZPFLAG")) == keys.index("ZPFLAG") + 1  # explained where it stands


def test_amplifiers_without_sections_use_their_mean_gain_with_a_warning(cli, tmp_path):
    image, catalogue, _ = _decam_cutout(tmp_path, sections=False)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert re.search(rb"warning: .*GAINA/GAINB = 4, 3.6 e-/ADU differ but no amplifier sections", run.stderr)
    header = fits.getheader(out)
    assert header["ZPGAIN"] == pytest.approx(3.8) and header["ZPGAINSR"] == "mean GAINA/GAINB"
    assert "PHOTZPA" not in header and not header["ZPFLAG"] & ZP_FLAG_GAIN_UNKNOWN


def test_an_image_already_equalised_across_amplifiers_is_not_converted_again(cli, tmp_path):
    image, catalogue, _ = _decam_cutout(tmp_path, equalised=True)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert b"the sky is level across the amplifiers although GAINA/GAINB differ" in run.stderr
    header = fits.getheader(out)
    assert header["ZPGAINSR"] == "mean GAINA/GAINB, equalised image" and "PHOTZPA" not in header
    assert abs(header["PHOTZP"] - _photzp(0.5 * (GAIN_A + GAIN_B))) < 3 * header["PHOTZPER"] + 0.005
    assert header["ZPSTD"] < 0.06  # no step between the halves


def test_no_gain_anywhere_is_estimated_from_the_sky_not_refused(cli, tmp_path):
    field = synthetic_field((256, 256), 150, zeropoint=ZP, exptime=10.0, gain=2.0, read_noise=5.0, sky=600.0,
                            mag_range=(13.0, 18.0), seed=7)
    header = field.wcs.to_header()
    header.update({"EXPTIME": 10.0, "RDNOISE": 5.0})
    image = tmp_path / "nogain.fits"
    fits.PrimaryHDU(field.image, header).writeto(image)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", _catalogue(field, tmp_path / "cat.fits"), "--band", "r", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert b"warning" in run.stderr and b"estimated from the sky" in run.stderr
    result = fits.getheader(out)
    assert result["ZPGAINSR"] == "sky estimate" and result["ZPGAIN"] == pytest.approx(2.0, rel=0.05)
    assert result["ZPFLAG"] & ZP_FLAG_GAIN_UNKNOWN
    assert abs(result["PHOTZP"] - _photzp(2.0, 10.0)) < 3 * result["PHOTZPER"] + 0.005


@pytest.mark.skipif(not os.path.exists(M13), reason="astropy's m13.fits test image is not installed")
def test_real_scanned_image_without_gain_or_read_noise_is_calibrated(cli, tmp_path):
    """SkyView's DSS image of M13: no GAIN, no RDNOISE, no EXPTIME (given): calibrated with warnings."""
    with fits.open(M13) as hdus:
        data, header = hdus[0].data.astype(np.float32), hdus[0].header
    sources = extract_sources(data, aperture_radius=4.0, gain=None, read_noise=None, noise_model="measured")
    ok = (sources.flags == 0) & (sources.flux > 0)
    ra, dec = pixel_to_sky(WCS(header), sources.x[ok], sources.y[ok])
    mag = -2.5 * np.log10(sources.flux[ok]) + 7.321 + np.random.default_rng(0).normal(0, 0.02, ok.sum())
    fits.BinTableHDU.from_columns([
        fits.Column("ra", "D", array=np.degrees(ra)), fits.Column("dec", "D", array=np.degrees(dec)),
        fits.Column("mag", "D", array=mag), fits.Column("mag_err", "D", array=np.full(ok.sum(), 0.02)),
    ]).writeto(tmp_path / "cat.fits")
    out = tmp_path / "out.fits"
    run = cli("zeropoint", M13, "--catalog", tmp_path / "cat.fits", "--exptime", "1", "--aperture", "4",
              "--no-aperture-correction", "--radius", "2", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert b"no gain in the header" in run.stderr and b"no read noise in the header" in run.stderr
    result = fits.getheader(out)
    assert result["ZPGAINSR"] in ("sky estimate", "none") and result["ZPFLAG"] & ZP_FLAG_GAIN_UNKNOWN
    assert result["APCORMTH"] == "off"
    assert abs(result["PHOTZP"] - 7.321) < max(3 * result["PHOTZPER"], 0.01)


def test_every_problem_of_an_input_comes_in_one_line(cli, tmp_path):
    image, catalogue, _ = _decam_cutout(tmp_path, drop=("EXPTIME", "GAINA", "GAINB", "RDNOISEA", "RDNOISEB"))
    before = _sha(image)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--min-stars", "500", "-o", out)
    assert run.returncode == 2
    lines = run.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(image) in lines[0]
    line = lines[0]
    for expected in ("3 problems", "no 'mag'", "the bands it has: r, g", "no exposure time", "--exptime",
                     "only 40 stars usable", "need at least 500", "no gain in the header", "estimated from the sky",
                     "no read noise"):
        assert expected in line, expected
    assert not out.exists() and _sha(image) == before


def test_help_explains_every_zpflag_bit(cli):
    text = " ".join(cli("zeropoint", "--help").stdout.decode().split())
    for bit, meaning in ZP_FLAG_MEANINGS.items():
        assert re.search(rf"\b{bit} {re.escape(meaning.split()[0])}", text), (bit, meaning)
    assert "APCORMTH" in text and "--ignore-domain" in text


def test_sparse_field_gets_a_total_flux_zero_point_from_the_psf_model(cli, tmp_path):
    """Few bright isolated stars (the curve of growth had too few): APCOR from the Moffat fit."""
    field = synthetic_field((768, 768), 230, zeropoint=ZP, exptime=10.0, gain=2.0, read_noise=5.0, sky=500.0,
                            psf="moffat", fwhm=3.5, moffat_beta=3.5, mag_range=(15.0, 22.0), luminosity_slope=0.35,
                            seed=3)
    header = field.wcs.to_header()
    header.update({"GAIN": 2.0, "RDNOISE": 5.0, "EXPTIME": 10.0})
    image = tmp_path / "sparse.fits"
    fits.PrimaryHDU(field.image, header).writeto(image)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", _catalogue(field, tmp_path / "cat.fits"), "--band", "r", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    result = fits.getheader(out)
    assert result["APCORMTH"] == "moffat" and result["APCORN"] >= 3
    assert result["APPSFFW"] == pytest.approx(3.5, rel=0.05)
    assert abs(result["PHOTZP"] - _photzp(2.0, 10.0)) < 0.015
