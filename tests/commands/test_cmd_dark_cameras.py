"""predict-dark on cameras other than LAMOST, through the real entry point: a Lick Kast-blue-like
two-amplifier frame described only by a config, frames whose amplifiers come from header
keywords, ccdproc's real SAAO raw frame, and masters made from biases."""

import numpy as np
import pytest
from astropy.io import fits

# the config: the shipped LAMOST one, with Kast blue's two amplifiers instead of its quadrants
KAST_YAML = """base: lamost
detector:
  layout: sections
  amplifiers:
    - {data: "[1:1024,1:350]", overscan: "[2049:2080,1:350]"}
    - {data: "[1025:2048,1:350]", overscan: "[2081:2112,1:350]"}
"""
KAST_BIAS = (1023.7, 1187.3)  # ADU, the two amplifiers' bias levels at row 0
KAST_DRIFT = (0.02, -0.015)  # ADU per row


def kast_bias(amplifier):
    return KAST_BIAS[amplifier] + KAST_DRIFT[amplifier] * np.arange(350.0)[:, None]


def kast_signal():
    """A spectrum-like signal [ADU] over the 2048 data columns: the same on every row."""
    x = np.arange(2048.0)
    return 40.0 + 300.0 * np.exp(-0.5 * ((x - 900.0) / 150.0) ** 2)


def write_kast(path, seed=0):
    """350 x 2112 uint16 (BZERO 32768) raw frame: data [1:2048], 2 x 32 overscan columns after it,
    COVER = 32, DATASEC and no BIASSEC, as Lick's Kast blue camera writes them."""
    rng = np.random.default_rng(seed)
    raw = np.empty((350, 2112))
    for a, (data, over) in enumerate(((slice(0, 1024), slice(2048, 2080)), (slice(1024, 2048), slice(2080, 2112)))):
        raw[:, data] = kast_bias(a) + kast_signal()[data]
        raw[:, over] = kast_bias(a)
    raw = np.round(raw + rng.normal(0, 4.0, raw.shape)).astype(np.uint16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["DATASEC"] = "[1:2048,1:350]"
    hdu.header["COVER"] = (32, "overscan columns per amplifier")
    hdu.header["EXPTIME"] = 300.0
    hdu.header["INSTRUME"] = "Kast blue"
    hdu.writeto(path)
    return path


@pytest.fixture
def kast(tmp_path):
    cfg = tmp_path / "kast.yaml"
    cfg.write_text(KAST_YAML)
    return write_kast(tmp_path / "kast.fits"), cfg


def test_kast_frame_described_only_by_the_config(cli, tmp_path, kast):
    raw_path, cfg = kast
    with fits.open(raw_path) as hdul:  # a real uint16 file: BITPIX 16 + BZERO
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768 and "BIASSEC" not in hdul[0].header
    assert cli("config", "check", cfg).stdout.decode().startswith(f"{cfg}: valid dark config")
    dark, reduced = tmp_path / "dark.fits", tmp_path / "reduced.fits"
    r = cli("predict-dark", raw_path, "-c", cfg, "--method", "overscan", "-o", dark)
    assert r.returncode == 0, r.stderr.decode()
    s = cli("predict-dark", raw_path, "-c", cfg, "--method", "overscan", "--subtract", "-o", reduced)
    assert s.returncode == 0, s.stderr.decode()
    predicted, image, header = fits.getdata(dark), fits.getdata(reduced), fits.getheader(reduced)
    assert predicted.shape == image.shape == (350, 2048) and header["DKNAMP"] == 2 and header["EXPTIME"] == 300.0
    for a, cols in enumerate((slice(0, 1024), slice(1024, 2048))):
        # each amplifier's own bias, row by row: a degree-3 fit through 350 medians of 32 samples of
        # 4 ADU noise (0.88 ADU each), so its mean is good to 0.88 / sqrt(350) = 0.05 ADU (4 sigma below)
        assert np.abs(predicted[:, cols] - kast_bias(a)).max() < 0.6
        assert abs(np.mean(predicted[:, cols] - kast_bias(a))) < 0.2
        # the data minus that level is the signal, with no step between the amplifiers
        assert abs(np.mean(image[:, cols] - kast_signal()[cols])) < 0.2
    step = image[:, 1023:1025].mean(axis=0)
    assert abs((step[1] - step[0]) - (kast_signal()[1024] - kast_signal()[1023])) < 1.0  # vs a 163.6 ADU bias step


def test_kast_frame_with_the_default_config_says_how_to_describe_it(cli, tmp_path, kast):
    raw_path, _ = kast
    out = tmp_path / "out.fits"
    r = cli("predict-dark", raw_path, "--method", "overscan", "-o", out)
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and not out.exists(), err
    assert "raw frame shape (350, 2112) (rows, columns) does not match layout 'KAF-4320'" in err
    assert "'base: lamost' and 'detector: {layout: sections, amplifiers: [{data:" in err
    assert "the header has DATASEC [1:2048,1:350]" in err and "dancekit config check FILE" in err
    # the gan model of LAMOST cannot run on it either: refused with the layouts named
    gan = cli("predict-dark", raw_path, "-c", kast[1], "-o", out)
    assert gan.returncode == 2 and b"was made for layout 'KAF-4320' 2094x2200" in gan.stderr
    assert b"this frame has layout 'KAF-4320' 350x2112, 2 amplifiers, data [1:1024,1:350], [1025:2048,1:350]" in gan.stderr


def test_a_master_of_the_kast_camera_and_the_median_method(cli, tmp_path, kast):
    """No optical black: the master's TEMPLATE is all NaN, said when it is made; median works per amplifier."""
    raw_path, cfg = kast
    second = write_kast(tmp_path / "kast2.fits", seed=1)
    master = tmp_path / "master.fits"
    r = cli("train-dark", raw_path, second, "-c", cfg, "--make-master", master)
    assert r.returncode == 0, r.stderr.decode()
    assert b"warning: the master's TEMPLATE (amplifier 1) is all NaN: layout 'KAF-4320:1' has no optical-black region" in r.stderr
    with fits.open(master) as hdul:
        assert hdul[0].data.shape == (350, 2048) and np.isnan(hdul["TEMPLATE"].data).all()
    out = tmp_path / "median.fits"
    assert cli("predict-dark", raw_path, "-c", cfg, "--method", "median", "--master", master, "-o", out).returncode == 0
    # the median of two frames: bias + signal of each amplifier, within the noise of 2 frames
    truth = np.hstack([kast_bias(0) + kast_signal()[:1024], kast_bias(1) + kast_signal()[1024:]])
    assert abs(np.mean(fits.getdata(out) - truth)) < 0.1
    scaled = cli("predict-dark", raw_path, "-c", cfg, "--method", "scaled", "--master", master, "-o", tmp_path / "s.fits")
    assert scaled.returncode == 2 and b"has no optical-black region: the scaled method cannot measure" in scaled.stderr
    refused = cli("train-dark", raw_path, second, "-c", cfg, "-o", tmp_path / "model.pt")
    assert refused.returncode == 2 and b"this camera has 2 amplifiers described by sections" in refused.stderr


@pytest.mark.parametrize("flavour", ["DATASEC", "ASEC"])
def test_amplifiers_from_per_amplifier_header_keywords(cli, tmp_path, flavour):
    """Amplifier 1 has its overscan on the left, amplifier 2 on the right; --set
    detector.layout=fits-sections on the default config reads them from the header."""
    rng = np.random.default_rng(5)
    levels = (402.5, 611.25)
    raw = np.empty((200, 264))
    raw[:, 0:32], raw[:, 32:132] = levels[0], levels[0] + 25.0
    raw[:, 132:232], raw[:, 232:264] = levels[1] + 75.0, levels[1]
    raw += rng.normal(0, 2.0, raw.shape)
    sections = ("[33:132,1:200]", "[1:32,1:200]", "[133:232,1:200]", "[233:264,1:200]")
    cards = dict(zip({"DATASEC": ("DATASEC1", "BIASSEC1", "DATASEC2", "BIASSEC2"),
                      "ASEC": ("ASECA", "BSECA", "ASECB", "BSECB")}[flavour], sections))
    path = tmp_path / "amps.fits"
    fits.PrimaryHDU(raw.astype(np.float32), header=fits.Header(cards)).writeto(path)
    out = tmp_path / "reduced.fits"
    r = cli("predict-dark", path, "--set", "detector.layout=fits-sections", "--method", "overscan", "--subtract", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    image = fits.getdata(out)
    # each level is good to 1.25 x 2 / sqrt(32 x 200) = 0.03 ADU (5 sigma below)
    assert image.shape == (200, 200)
    assert abs(image[:, :100].mean() - 25.0) < 0.15 and abs(image[:, 100:].mean() - 75.0) < 0.15
    if flavour == "ASEC":
        return
    # without the --set, the error says which keywords it found and how to use them
    hint = cli("predict-dark", path, "--method", "overscan", "-o", tmp_path / "x.fits")
    assert hint.returncode == 2 and b"its header describes 2 amplifier(s)" in hint.stderr
    assert b"add --set detector.layout=fits-sections" in hint.stderr


def test_the_real_ccdproc_frame_from_its_header(cli, tmp_path, ccdproc_raw_frame):
    """ccdproc's SAAO frame (BIASSEC [4:13,1:520], TRIMSEC [17:528,1:520]) with the shipped config
    and one --set: the active area minus a degree-3 fit of each row's overscan median."""
    path = ccdproc_raw_frame
    out = tmp_path / "reduced.fits"
    refused = cli("predict-dark", path, "--method", "overscan", "-o", out)
    assert refused.returncode == 2 and b"its header describes 1 amplifier(s) (BIASSEC, TRIMSEC)" in refused.stderr
    r = cli("predict-dark", path, "--set", "detector.layout=fits-sections", "--method", "overscan", "--subtract", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    raw = fits.getdata(path).astype(np.float64)
    rows = np.median(raw[:, 3:13], axis=1)
    x = np.linspace(-1, 1, rows.size)
    bias = np.polynomial.legendre.Legendre.fit(x, rows, 3)(x)
    expected = raw[:, 16:528] - bias[:, None]
    np.testing.assert_allclose(fits.getdata(out), expected, atol=1e-2)
    assert np.median(expected) == pytest.approx(86, abs=5)  # notes/dark_zp.md sec. 2, through ccdproc


def test_a_master_of_biases_warns_and_scaled_refuses_it(cli, tmp_path):
    """Biases (0 s, no glow) of the small LAMOST-like camera: the TEMPLATE is all NaN, said with why
    and what to do; --method scaled refuses that master, --method median uses it."""
    from tests.commands.test_cmd_dark import small_config

    cfg = small_config(tmp_path)
    biases = tmp_path / "biases"
    made = cli("simulate-dark", "-c", cfg, "--n", 3, "--exptime", 0, "--set", "pattern.glow=0", "--seed", 3, "-o", biases)
    assert made.returncode == 0, made.stderr.decode()
    master = tmp_path / "bias_master.fits"
    r = cli("train-dark", biases, "-c", cfg, "--make-master", master)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "warning: the master's TEMPLATE is all NaN: none of the 3 frames holds a measurable dark in its optical black" in err
    assert "biases, or exposures too short or too cold" in err and "The master serves --method median" in err
    assert np.isnan(fits.getdata(master, "TEMPLATE")).all() and "TEMPLATE: none of the 3 frames" in str(fits.getheader(master)["COMMENT"])
    frame = next(biases.iterdir())
    scaled = cli("predict-dark", frame, "-c", cfg, "--method", "scaled", "--master", master, "-o", tmp_path / "s.fits")
    assert scaled.returncode == 2 and b"the master dark's TEMPLATE is all NaN" in scaled.stderr and not (tmp_path / "s.fits").exists()
    median = cli("predict-dark", frame, "-c", cfg, "--method", "median", "--master", master, "-o", tmp_path / "m.fits")
    assert median.returncode == 0, median.stderr.decode()
