"""``dancekit zeropoint`` through the real entry point: known zero points recovered, the header
convention round trip, pipelines, batches with a bad file, the night extinction fit, real images."""

import hashlib
import importlib.util
import json
import os

import astropy
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dancekit.photometry import extract_sources, pixel_to_sky, synthetic_field

GAIN, EXPTIME, ZP = 2.0, 10.0, 25.0
M13 = os.path.join(os.path.dirname(astropy.__file__), "io/fits/hdu/compressed/tests/data/m13.fits")


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _exposure(tmp_path, name, *, seed, airmass=1.2, extinction=0.0, colour_term=0.0, wcs=True, n=150,
              catalogue=True, saturate=60000.0):
    """A synthetic exposure (and its reference catalogue, with g and r columns) with a known ZP."""
    field = synthetic_field((256, 256), n, zeropoint=ZP, colour_term=colour_term, extinction=extinction,
                            airmass=airmass, exptime=EXPTIME, gain=GAIN, read_noise=5.0, sky=300.0,
                            mag_range=(13.0, 18.0), seed=seed)
    header = field.wcs.to_header() if wcs else fits.Header()
    header.update({"GAIN": GAIN, "RDNOISE": 5.0, "EXPTIME": EXPTIME, "AIRMASS": airmass, "SATURATE": saturate})
    path = tmp_path / f"{name}.fits"
    fits.PrimaryHDU(field.image, header).writeto(path)
    if catalogue:
        cat = field.catalogue
        fits.BinTableHDU.from_columns([
            fits.Column("RA", "D", unit="deg", array=np.degrees(cat.ra)),
            fits.Column("DEC", "D", unit="deg", array=np.degrees(cat.dec)),
            fits.Column("rmag", "D", array=cat.mag),
            fits.Column("e_rmag", "D", array=np.full(len(cat), 0.005)),
            fits.Column("gmag", "D", array=cat.mag + cat.colour),
        ]).writeto(tmp_path / f"{name}_cat.fits")
    return path, tmp_path / f"{name}_cat.fits", field


def _photzp_expected(airmass, extinction=0.0):
    """PHOTZP = ZP − k·X − 2.5 log10(g / t) (header_cards)."""
    return ZP - extinction * airmass - 2.5 * np.log10(GAIN / EXPTIME)


def test_known_zero_point_and_colour_term_recovered_and_header_round_trip(cli, tmp_path):
    image, catalogue, _ = _exposure(tmp_path, "a", seed=1, colour_term=0.08)
    before = _sha(image)
    out = tmp_path / "out.fits"
    run = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--color", "g-r", "--table", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    assert _sha(image) == before  # the input is never altered
    with fits.open(out) as hdus, fits.open(image) as original:
        header, stars = hdus[0].header, hdus["ZPSTARS"].data
        assert hdus[0].data.tobytes() == original[0].data.tobytes()  # pixels byte for byte
        assert header["RDNOISE"] == 5.0 and header["CTYPE1"] == "RA---TAN"  # input header kept
    assert abs(header["PHOTZP"] - _photzp_expected(1.2)) < 3 * header["PHOTZPER"] + 1e-3
    assert abs(header["ZPCOLOR"] - 0.08) < 3 * header["ZPCOLERR"] and header["ZPCOLFIT"]
    assert header["NUMZPT"] >= 20 and header["PHOTZPER"] < 0.01
    assert "mag=-2.5log10(ADU)+PHOTZP" in header.comments["PHOTZP"]
    # PHOTZP on the ADU aperture fluxes (+ aperture correction and colour term) gives the catalogue mags
    used = stars["USED"] == 1
    predicted = -2.5 * np.log10(stars["FLUX"]) - header["APCOR"] + header["PHOTZP"] + header["ZPCOLOR"] * stars["COLOUR"]
    assert abs(np.median(predicted[used] - stars["MAG_REF"][used])) < 3 * header["PHOTZPER"]
    # and so does the CASU convention m = MAGZPT − 2.5 lg(ADU/s) − EXTINCT (X − 1)
    casu = (header["MAGZPT"] - 2.5 * np.log10(stars["FLUX"] / EXPTIME) - header["APCOR"]
            - header["EXTINCT"] * (header["AIRMASS"] - 1) + header["ZPCOLOR"] * stars["COLOUR"])
    assert abs(np.median(casu[used] - stars["MAG_REF"][used])) < 3 * header["PHOTZPER"]


def test_stdin_to_stdout_pipeline_and_json_summary(cli, tmp_path):
    image, catalogue, _ = _exposure(tmp_path, "p", seed=2)
    run = cli("zeropoint", "-", "--catalog", catalogue, "--band", "r", "-o", "-", stdin=image.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    piped = tmp_path / "piped.fits"
    piped.write_bytes(run.stdout)
    with fits.open(piped) as hdus:
        assert abs(hdus[0].header["PHOTZP"] - _photzp_expected(1.2)) < 3 * hdus[0].header["PHOTZPER"] + 1e-3
    summary = cli("zeropoint", image, "--catalog", catalogue, "--band", "r", "--json", "-o", tmp_path / "j.fits")
    result = json.loads(summary.stdout)["results"][0]
    assert result["photzp"] == pytest.approx(fits.getheader(piped)["PHOTZP"], abs=1e-9)
    assert json.loads(summary.stdout)["failed"] == 0


def test_many_inputs_with_one_bad_in_parallel(cli, tmp_path):
    good1, catalogue, _ = _exposure(tmp_path, "g1", seed=3)
    good2, _, _ = _exposure(tmp_path, "g2", seed=3, catalogue=False)
    bad, _, _ = _exposure(tmp_path, "bad", seed=4, n=3, catalogue=False)  # the same sky, 3 stars only
    out = tmp_path / "out"
    out.mkdir()
    run = cli("zeropoint", good1, bad, good2, "--catalog", catalogue, "--band", "r", "--jobs", "2", "-o", out)
    assert run.returncode == 2
    err = run.stderr.decode()
    assert "bad.fits: zero-point calibration failed (ZPFLAG=32" in err and "only" in err
    assert "1 of 3 inputs failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["g1.fits", "g2.fits"]


def test_fit_extinction_recovers_k_over_a_night(cli, tmp_path):
    paths, k = [], 0.15
    for i, airmass in enumerate((1.0, 1.3, 1.7, 2.2)):
        path, catalogue, _ = _exposure(tmp_path, f"n{i}", seed=10, airmass=airmass, extinction=k,
                                       catalogue=(i == 0))
        paths.append(path)
    out = tmp_path / "night"
    out.mkdir()
    run = cli("zeropoint", *paths, "--catalog", tmp_path / "n0_cat.fits", "--band", "r", "--fit-extinction",
              "--json", "-o", out)
    assert run.returncode == 0, run.stderr.decode()
    results = json.loads(run.stdout)["results"]
    assert len(results) == 4
    for result, airmass in zip(results, (1.0, 1.3, 1.7, 2.2)):
        assert abs(result["extinction"] - k) < 3 * result["extinction_err"]
        assert abs(result["photzp"] - _photzp_expected(airmass, k)) < 3 * result["photzper"] + 2e-3
    header = fits.getheader(out / "n3.fits")
    assert header["EXTINFIT"] and header["ZPNIGHT"] == 4


@pytest.mark.parametrize("case, reason", [
    ("no_wcs", "no celestial WCS"),
    ("no_band", "no 'i'-band magnitude column .*it has: RA, DEC, rmag, e_rmag, gmag"),
    ("no_match", "only 0 stars usable .*150 outside the image"),
    ("saturated", "only 0 stars usable .* saturated"),
])
def test_bad_input_exits_2_with_the_reason_and_writes_nothing(cli, tmp_path, case, reason):
    image, catalogue, field = _exposure(tmp_path, "x", seed=5, wcs=(case != "no_wcs"),
                                        saturate=250.0 if case == "saturated" else 60000.0)
    args = ["--band", "i" if case == "no_band" else "r"]
    if case == "no_match":  # the catalogue of another field, 1 degree away
        shifted = tmp_path / "far.fits"
        with fits.open(catalogue) as hdus:
            hdus[1].data["DEC"] += 1.0
            hdus.writeto(shifted)
        catalogue = shifted
    before = _sha(image)
    run = cli("zeropoint", image, "--catalog", catalogue, *args, "-o", tmp_path / "out.fits")
    assert run.returncode == 2
    lines = run.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("error: ") and len([l for l in lines if l.startswith("error")]) == 1
    assert __import__("re").search(reason, lines[-1]), lines[-1]
    assert not (tmp_path / "out.fits").exists()
    assert _sha(image) == before


def _self_catalogue(image, header, offset, radius, rng, noise=0.02, gain=None, exptime=1.0, **extract):
    """Catalogue built from the image itself: mag = −2.5 lg(F g / t) + offset + N(0, noise)."""
    sources = extract_sources(image, aperture_radius=radius, gain=gain, **extract)
    ok = (sources.flags == 0) & (sources.flux > 0)
    ra, dec = pixel_to_sky(WCS(header), sources.x[ok], sources.y[ok])
    mag = -2.5 * np.log10(sources.flux[ok] * (gain or 1.0) / exptime) + offset + rng.normal(0, noise, ok.sum())
    return fits.BinTableHDU.from_columns([
        fits.Column("ra", "D", array=np.degrees(ra)), fits.Column("dec", "D", array=np.degrees(dec)),
        fits.Column("mag", "D", array=mag), fits.Column("mag_err", "D", array=np.full(ok.sum(), noise)),
    ])


@pytest.mark.skipif(not os.path.exists(M13), reason="astropy's m13.fits test image is not installed")
def test_real_m13_image_recovers_an_injected_offset(cli, tmp_path):
    with fits.open(M13) as hdus:
        image, header = hdus[0].data.astype(np.float32), hdus[0].header
    _self_catalogue(image, header, 7.321, 4.0, np.random.default_rng(0), read_noise=None,
                    noise_model="measured").writeto(tmp_path / "cat.fits")
    before = _sha(M13)
    run = cli("zeropoint", M13, "--catalog", tmp_path / "cat.fits", "--gain", "1", "--exptime", "1",
              "--measured-noise", "--aperture", "4", "--no-aperture-correction", "--radius", "2", "-o",
              tmp_path / "out.fits")
    assert run.returncode == 0, run.stderr.decode()
    assert _sha(M13) == before
    with fits.open(tmp_path / "out.fits") as out, fits.open(M13) as original:
        zp = out[0].header
        assert out[0].data.tobytes() == original[0].data.tobytes()
    assert zp["NUMZPT"] >= 50
    assert abs(zp["PHOTZP"] - 7.321) < max(3 * zp["PHOTZPER"], 0.01)


def _ukidss_image():
    spec = importlib.util.find_spec("astroquery")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "ukidss", "tests", "data", "image.fits")
    return path if os.path.exists(path) else None


@pytest.mark.skipif(_ukidss_image() is None, reason="astroquery (and its UKIDSS test image) is not installed")
def test_real_ukidss_frame_round_trips_its_casu_zero_point(cli, tmp_path):
    """A catalogue made with the frame's own MAGZPT/EXTINCT (CASU convention) gives them back."""
    path = _ukidss_image()
    with fits.open(path) as hdus:
        primary, header, image = hdus[0].header, hdus[1].header, hdus[1].data.astype(float)
    airmass, exptime = 0.5 * (primary["AMSTART"] + primary["AMEND"]), primary["EXP_TIME"]
    offset = header["MAGZPT"] - header["EXTINCT"] * (airmass - 1)
    _self_catalogue(image, header, offset, 8.0, np.random.default_rng(1), noise=0.01, exptime=exptime,
                    gain=header["GAIN"], read_noise=header["READNOIS"]).writeto(tmp_path / "cat.fits")
    catalogue = fits.getdata(tmp_path / "cat.fits")
    catalogue["mag"] -= 2.5 * np.log10(1.0 / header["GAIN"])  # the catalogue in ADU/s, as MAGZPT is
    fits.BinTableHDU(catalogue).writeto(tmp_path / "cat_adu.fits")
    run = cli("zeropoint", path, "--catalog", tmp_path / "cat_adu.fits", "--extinction",
              str(header["EXTINCT"]), "--aperture", "8", "--no-aperture-correction", "--min-stars", "3", "-o",
              tmp_path / "out.fits")
    assert run.returncode == 0, run.stderr.decode()
    out = fits.getheader(tmp_path / "out.fits", 1)
    assert abs(out["MAGZPT"] - header["MAGZPT"]) < max(3 * out["MAGZRR"], 0.01)
    assert out["EXTINCT"] == header["EXTINCT"] and out["ZPAIRMAS"] == pytest.approx(airmass)
