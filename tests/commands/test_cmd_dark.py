"""simulate-dark, train-dark and predict-dark through the real entry point, on a small camera.

The small camera is the LAMOST layout scaled down (2 x 2 channels, 48 x 48 active pixels each,
16 overscan columns): the same code path as the 2094 x 2200 frame, in seconds.
"""

import importlib.resources
import json

import numpy as np
import pytest
import torch
import yaml
from astropy.io import fits

SMALL_GEOMETRY = {"rows": 106, "columns": 152, "active_rows": 48}


def _small_layout():
    from dancekit.dark.cameras import quadrant_layout

    return quadrant_layout(active=48, overscan=16)


def region_stack(frame, layout, name):
    from dancekit.dark.layout import region_stack as cut

    return cut(frame, layout, name)


SMALL = _small_layout()


def small_config(tmp_path, **model):
    data = yaml.safe_load(importlib.resources.files("dancekit.configs").joinpath("lamost.yaml").read_text())
    data["detector"].update(SMALL_GEOMETRY)
    data["detector"]["channel_columns"].update(active=48, overscan=16)
    data["model"].update(width=4, n_blocks=1, discriminator_width=8, val_fraction=0.25, learning_rate=2e-4, **model)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def darks(tmp_path_factory):
    """8 small raw darks (4 at -25 C, 4 at -15 C) and 2 held-out ones at -10 C, made once."""
    from tests.conftest import run_cli

    tmp = tmp_path_factory.mktemp("darks")
    cfg = small_config(tmp)
    train = run_cli("simulate-dark", "-c", cfg, "--n", 4, "--temperature", "-25,-15", "--seed", 1, "-o", tmp / "train")
    test = run_cli("simulate-dark", "-c", cfg, "--n", 2, "--temperature", "-10", "--seed", 2, "-o", tmp / "test")
    assert train.returncode == 0 and test.returncode == 0, train.stderr.decode() + test.stderr.decode()
    return tmp, cfg


def active_mosaic(frame):
    """The active areas of the small camera, mosaicked in physical orientation (96 x 96)."""
    from dancekit.dark.cameras import quadrant_layout
    from dancekit.dark.layout import assemble_active, region_stack

    layout = quadrant_layout(active=48, overscan=16)
    return assemble_active(region_stack(frame, layout, "active"), layout)


def test_simulate_dark_files_headers_and_the_doubling_temperature(darks):
    tmp, _ = darks
    files = sorted((tmp / "train").iterdir())
    assert [f.name for f in files][:2] == ["dark_T-15.0_0000.fits", "dark_T-15.0_0001.fits"] and len(files) == 8
    levels = {}
    for f in files:
        with fits.open(f, checksum=True) as hdul:
            h = hdul[0].header
            assert hdul[0].data.dtype == np.uint16 and hdul[0].data.shape == (106, 152)
            assert hdul["EXPECTED"].data.shape == (106, 152) and h["EXPTIME"] == 30.0
            assert abs(h["CCD-TEMP"] - h["TEMPERAT"]) <= 1.0 and h["CAMSEED"] == 0
            # dark above bias of the noise-free frame, per channel: median active minus median overscan
            expected = hdul["EXPECTED"].data
            levels[h["CCD-TEMP"]] = np.mean([np.median(region_stack(expected, SMALL, "active")[c])
                                             - np.median(region_stack(expected, SMALL, "overscan")[c]) for c in range(4)])
    temps = sorted(levels)
    # Qu et al. 2024 sec. 2.1: the dark doubles every 6.4 deg C (ratios over the jittered temperatures)
    for t in temps[1:]:
        assert levels[t] / levels[temps[0]] == pytest.approx(2 ** ((t - temps[0]) / 6.4), rel=0.04)
    # 240 e- in 30 s at -15 C through the 2.3 e-/ADU gain, to within the pattern's spread
    t15 = min(temps, key=lambda t: abs(t + 15))
    assert levels[t15] * 2.3 / 2 ** ((t15 + 15) / 6.4) == pytest.approx(240, rel=0.1)


def test_simulate_dark_is_reproducible_and_refuses_to_overwrite(cli, tmp_path, darks):
    _, cfg = darks
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert cli("simulate-dark", "-c", cfg, "--n", 1, "--seed", 9, "-o", out).returncode == 0
    np.testing.assert_array_equal(fits.getdata(a / "dark_T-15.0_0000.fits"), fits.getdata(b / "dark_T-15.0_0000.fits"))
    again = cli("simulate-dark", "-c", cfg, "--n", 1, "--seed", 9, "-o", a)
    assert again.returncode == 2 and b"output exists; pass --overwrite" in again.stderr
    bad = cli("simulate-dark", "-c", cfg, "--temperature", "-15,warm", "-o", tmp_path / "c")
    assert bad.returncode == 2 and b"--temperature: '-15,warm' is not a comma-separated list" in bad.stderr


def test_master_dark_and_the_baselines(cli, darks, tmp_path):
    tmp, cfg = darks
    master = tmp_path / "master.fits"
    made = cli("train-dark", tmp / "train", "-c", cfg, "--make-master", master)
    assert made.returncode == 0, made.stderr.decode()
    with fits.open(master) as hdul:
        assert hdul[0].data.shape == (96, 96) and hdul["TEMPLATE"].data.shape == (96, 96) and hdul[0].header["NCOMBINE"] == 8
    held_out = tmp / "test" / "dark_T-10.0_0000.fits"
    rmse = {}
    for method in ("median", "scaled", "overscan"):
        out = tmp_path / f"{method}.fits"
        r = cli("predict-dark", held_out, "-c", cfg, "--method", method, "--master", master, "-o", out, "--json")
        assert r.returncode == 0, r.stderr.decode()
        rmse[method] = json.loads(r.stdout)["results"][0]["rmse_expected_adu"]
        assert fits.getdata(out).shape == (96, 96) and fits.getheader(out)["DKMETHOD"] == method
    # at -10 C, warmer than every training dark: the median ignores the temperature, the scaled
    # baseline measures the dark level in the optical black; the bias alone misses all the dark
    assert rmse["scaled"] < 0.5 * rmse["median"] < rmse["overscan"]
    # --subtract: the active area minus the same prediction; the header is carried
    sub = tmp_path / "sub.fits"
    assert cli("predict-dark", held_out, "-c", cfg, "--method", "scaled", "--master", master, "--subtract", "-o", sub).returncode == 0
    raw = fits.getdata(held_out).astype(np.float32)
    np.testing.assert_allclose(fits.getdata(sub) + fits.getdata(tmp_path / "scaled.fits"), active_mosaic(raw), atol=1e-3)
    header = fits.getheader(sub)
    assert header["TEMPERAT"] == -10.0 and header["EXPTIME"] == 30.0 and header["DKDARK"] == "subtracted"
    assert "predict-dark" in str(header["HISTORY"])


def test_train_dark_resumes_exactly_and_predicts(cli, darks, tmp_path):
    tmp, cfg = darks
    straight, half = tmp_path / "straight.pt", tmp_path / "half.pt"
    common = ["-c", cfg, "--seed", 4, "--crop", 32]
    r = cli("train-dark", tmp / "train", *common, "--epochs", 2, "-o", straight, "--json")
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    assert summary["steps"] == 2 * 6 * 4 and summary["val_frames"] == 2 and summary["val_rmse_scaled_adu"] > 0
    assert cli("train-dark", tmp / "train", *common, "--epochs", 1, "-o", half).returncode == 0
    resumed = cli("train-dark", tmp / "train", "-c", cfg, "--epochs", 2, "--resume", half, "-o", half)
    assert resumed.returncode == 0, resumed.stderr.decode()
    a, b = (torch.load(p, weights_only=True) for p in (straight, half))
    for key in a["resume"]["generator"]:
        assert torch.equal(a["resume"]["generator"][key], b["resume"]["generator"][key]), key
    assert a["training"]["history"] == b["training"]["history"]
    assert a["layout"]["channel_grid"] == [2, 2] and a["conditioning"] == {
        "mode": "profile", "coordinates": False, "target": "above_overscan", "template": False, "bias_degree": 3}
    assert "template" not in a
    # the model knows its training domain: frames at -25 and -15 C (jittered by 1 C)
    domain = a["domain"]
    assert domain["frames"] == 6 and -26 <= domain["temperature"][0] <= -24 and -16 <= domain["temperature"][1] <= -14
    assert domain["exptime"] == [30.0, 30.0] and 0 < domain["dark"][0] < domain["dark"][1] and domain["bias"][0] > 900
    # at -10 C the dark level lies beyond the trained range by more than half its width: refused,
    # nothing written; --ignore-domain predicts, warns, and records how far it was
    out = tmp_path / "gan.fits"
    held_out = tmp / "test" / "dark_T-10.0_0001.fits"
    refused = cli("predict-dark", held_out, "-c", cfg, "--model", straight, "-o", out)
    err = refused.stderr.decode()
    assert refused.returncode == 2 and err.count("\n") == 1 and not out.exists(), err
    assert "outside the training domain of the dark model straight.pt: dark level above bias" in err and "--ignore-domain" in err
    pred = cli("predict-dark", held_out, "-c", cfg, "--model", straight, "-o", out, "--json", "--ignore-domain")
    assert pred.returncode == 0, pred.stderr.decode()
    assert b"warning: " in pred.stderr and b"outside the training domain" in pred.stderr
    header = fits.getheader(out)
    raw = fits.getdata(held_out).astype(np.float32)  # dark level: masked columns above each row's overscan median
    level = np.max(np.median(region_stack(raw, SMALL, "ob_columns") - np.median(region_stack(raw, SMALL, "overscan"), axis=2,
                                                                                keepdims=True), axis=(1, 2)))
    width = domain["dark"][1] - domain["dark"][0]
    assert header["DKDOMAIN"] == "outside" and header["DKDOMQTY"] == "dark"
    assert header["DKDOMDST"] == pytest.approx((level - domain["dark"][1]) / width, abs=0.15) and header["DKDOMDST"] > 0.5
    image = fits.getdata(out)
    assert image.shape == (96, 96) and np.all(np.isfinite(image))
    # the tanh output maps into the stored ADU affine range, above the overscan level of each row
    from dancekit.dark.cameras import quadrant_layout
    from dancekit.dark.conditioning import overscan_reference
    from dancekit.dark.layout import assemble_active

    raw = fits.getdata(tmp / "test" / "dark_T-10.0_0001.fits").astype(np.float32)
    layout = quadrant_layout(active=48, overscan=16)
    above = image - assemble_active(overscan_reference(raw, layout), layout)
    lo, hi = a["adu"]["offset"] - a["adu"]["scale"], a["adu"]["offset"] + a["adu"]["scale"]
    assert lo - 1e-2 <= above.min() and above.max() <= hi + 1e-2 and hi - lo < 1000


def test_a_model_with_the_template_carries_it_and_refuses_to_run_without_it(cli, darks, tmp_path):
    """target above_scaled + template plane: the model file holds the master template; stripped of
    it, predict-dark exits 2. Its prediction is the scaled baseline + the generator's residual."""
    tmp, _ = darks
    cfg = small_config(tmp_path, target="above_scaled", template=True, coordinates=True, loss_bce=0.0, loss_mse=0.0)
    model, master = tmp_path / "model.pt", tmp_path / "master.fits"
    r = cli("train-dark", tmp / "train", "-c", cfg, "--seed", 2, "--crop", 32, "--epochs", 1, "-o", model,
            "--make-master", master, "--json")
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout)
    ck = torch.load(model, weights_only=True)
    assert ck["conditioning"]["target"] == "above_scaled" and ck["generator_config"]["in_channels"] == 6
    assert ck["template"]["codes"].shape == (4, 48, 48)
    held_out = tmp / "test" / "dark_T-10.0_0001.fits"
    rmse = {}
    for method, extra in (("gan", ["--model", model]), ("scaled", ["--master", master])):
        out = tmp_path / f"{method}.fits"
        p = cli("predict-dark", held_out, "-c", cfg, "--method", method, *extra, "-o", out, "--json", "--ignore-domain")
        assert p.returncode == 0, p.stderr.decode()
        rmse[method] = json.loads(p.stdout)["results"][0]["rmse_actual_adu"]
    # one epoch of 24 steps moves the residual little: the gan stays near the scaled baseline,
    # far from what the validation median baseline misses
    assert abs(rmse["gan"] - rmse["scaled"]) < 0.5 * rmse["scaled"] < summary["val_rmse_median_adu"]
    stripped = tmp_path / "stripped.pt"
    torch.save({k: v for k, v in ck.items() if k != "template"}, stripped)
    out = tmp_path / "none.fits"
    r = cli("predict-dark", held_out, "-c", cfg, "--model", stripped, "-o", out)
    assert r.returncode == 2 and b"was made with the master template" in r.stderr and r.stderr.count(b"\n") == 1
    assert not out.exists()


def _write(path, data, **cards):
    header = fits.Header()
    for k, v in cards.items():
        header[k] = v
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=header).writeto(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("shape", b"raw frame shape (50, 60) (rows, columns) does not match layout"),
    ("nan", b"region 'overscan' of channel 0 has 3 NaN/inf samples"),
    ("saturated", b"region 'ob_columns' of channel 3 has 1 saturated samples (>= 65535 ADU)"),
    ("no-master", b"--master: --method median needs --master MASTER.fits"),
    ("other-layout", b"was made for layout 'KAF-4320' 2094x2200"),
])
def test_bad_inputs_exit_2_with_one_line(cli, darks, tmp_path, case, message):
    tmp, cfg = darks
    raw = fits.getdata(tmp / "test" / "dark_T-10.0_0000.fits").astype(np.float32)
    args = ["--method", "overscan"]
    if case == "shape":
        path = _write(tmp_path / "x.fits", np.ones((50, 60)))
    elif case == "nan":
        raw[10:13, 72] = np.nan  # channel 0 (top left, read from its left): overscan columns 60-75
        path = _write(tmp_path / "x.fits", raw)
    elif case == "saturated":
        raw[-10, -(3 + 1 + 4 + 1)] = 65535  # channel 3 (bottom right), read from the bottom-right corner
        path = _write(tmp_path / "x.fits", raw)
    elif case == "no-master":
        path, args = tmp / "test" / "dark_T-10.0_0000.fits", ["--method", "median"]
    else:  # the bundled LAMOST model (the default --method gan) on the small camera
        path, args = tmp / "test" / "dark_T-10.0_0000.fits", []
    out = tmp_path / "out.fits"
    r = cli("predict-dark", path, "-c", cfg, *args, "-o", out)
    assert r.returncode == 2, r.stderr.decode()
    assert message in r.stderr and r.stderr.count(b"\n") == 1 and b"Traceback" not in r.stderr
    assert not out.exists()


# ------------------------------------------------------------------ one-amplifier camera (BIASSEC/TRIMSEC)
def sections_config(tmp_path, rows=520, columns=536):
    data = {"kind": "dark", "instrument": "SAAO-1.0m",
            "detector": {"name": "SAAO", "layout": "fits-sections", "rows": rows, "columns": columns, "saturation": 65535.0},
            "operation": {"temperature": -100.0, "exptime": 1.0, "gain": 1.0, "read_noise": 5.0, "bias": 214.0},
            "dark_current": {"reference_electrons": 0.0, "reference_temperature": -100.0, "reference_exptime": 1.0,
                             "doubling_temperature": 6.4, "temperature_jitter": 0.0}}
    path = tmp_path / "saao.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_single_amplifier_frame_through_the_overscan_path(cli, tmp_path):
    """A frame shaped like ccdproc's a8280271.fits: overscan columns 4-13, active 17-528."""
    rng = np.random.default_rng(0)
    rows = np.arange(520)[:, None]
    bias = 214.0 + 0.01 * rows  # a bias drifting along the rows, as overscan subtraction must follow
    frame = np.broadcast_to(bias, (520, 536)) + rng.normal(0, 3.0, (520, 536))
    frame[:, 16:528] += 86.0
    path = _write(tmp_path / "raw.fits", frame, BIASSEC="[4:13,1:520]", TRIMSEC="[17:528,1:520]", EXPTIME=5.0,
                  CRPIX1=268.0, CRPIX2=260.0, CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=10.0, CRVAL2=-30.0,
                  CDELT1=-1e-4, CDELT2=1e-4)
    cfg = sections_config(tmp_path)
    out = tmp_path / "reduced.fits"
    r = cli("predict-dark", path, "-c", cfg, "--method", "overscan", "--subtract", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    reduced, header = fits.getdata(out), fits.getheader(out)
    assert reduced.shape == (520, 512) and header["EXPTIME"] == 5.0
    assert np.mean(reduced) == pytest.approx(86.0, abs=0.1)
    # the bias drift is removed: no slope left along the rows
    assert abs(np.polyfit(np.arange(520), reduced.mean(axis=1), 1)[0]) < 1e-3
    assert header["CRPIX1"] == 268.0 - 16 and header["CRPIX2"] == 260.0
    scaled = cli("predict-dark", path, "-c", cfg, "--method", "scaled", "--master", path, "-o", tmp_path / "s.fits")
    assert scaled.returncode == 2 and b"not a dancekit master dark" in scaled.stderr
    no_trim = _write(tmp_path / "notrim.fits", frame, BIASSEC="[4:13,1:520]")
    missing = cli("predict-dark", no_trim, "-c", cfg, "--method", "overscan", "-o", tmp_path / "m.fits")
    assert missing.returncode == 2 and b"the header has BIASSEC but no TRIMSEC or DATASEC (the data)" in missing.stderr
    # a master made from this camera's frames: scaled needs optical black, which it has not
    master = tmp_path / "master.fits"
    assert cli("train-dark", path, "-c", cfg, "--make-master", master).returncode == 0
    scaled = cli("predict-dark", path, "-c", cfg, "--method", "scaled", "--master", master, "-o", tmp_path / "s.fits")
    assert scaled.returncode == 2 and b"has no optical-black region: the scaled method cannot measure" in scaled.stderr


def test_the_real_ccdproc_frame(cli, tmp_path, ccdproc_raw_frame):
    path = ccdproc_raw_frame
    shape = fits.getdata(path).shape
    out = tmp_path / "reduced.fits"
    r = cli("predict-dark", path, "-c", sections_config(tmp_path, *shape), "--method", "overscan", "--subtract", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    # notes/dark_zp.md sec. 2: overscan ~214 ADU, trimmed 520 x 512 with median ~86 ADU (ccdproc)
    assert fits.getdata(out).shape == (520, 512) and np.median(fits.getdata(out)) == pytest.approx(86, abs=5)


def test_the_bundled_model_knows_its_training_domain_and_refuses_a_warm_frame(cli, tmp_path):
    """The bundled model's 20 training darks were set at -25, -15, -10 and -5 C (+-1 C), 30 s:
    its domain says so, and a LAMOST frame whose optical black holds 900 ADU of dark (about +5 C)
    is refused before the network runs, with the quantity, the value and the trained range."""
    from dancekit.dark.cameras import lamost_layout
    from dancekit.io.dark_files import bundled_dark_model

    domain = torch.load(bundled_dark_model(), weights_only=True)["domain"]
    assert domain["frames"] == 20 and domain["exptime"] == [30.0, 30.0]
    assert -26 <= domain["temperature"][0] <= -24 and -6 <= domain["temperature"][1] <= -4
    # 240 e- in 30 s at -15 C, 2.3 e-/ADU, doubling every 6.4 C: 35 ADU at -25 C, 309 ADU at -5 C (+-1 C, pattern)
    assert domain["dark"][0] == pytest.approx(240 / 2.3 * 2 ** (-10 / 6.4), rel=0.2)
    assert domain["dark"][1] == pytest.approx(240 / 2.3 * 2 ** (10 / 6.4), rel=0.2)
    layout = lamost_layout()
    raw = np.random.default_rng(0).normal(1000.0, 5.0, layout.frame_shape).astype(np.float32)
    for c in range(4):
        for name in ("ob_columns", "ob_rows", "active"):
            rs, cs = layout.region_slices(name)
            i, j = layout.channel_position(c)
            rows = np.arange(rs.start, rs.stop) if i == 0 else layout.frame_shape[0] - 1 - np.arange(rs.start, rs.stop)
            cols = np.arange(cs.start, cs.stop) if j == 0 else layout.frame_shape[1] - 1 - np.arange(cs.start, cs.stop)
            raw[np.ix_(rows, cols)] += 900.0
    path = _write(tmp_path / "warm.fits", raw, EXPTIME=30.0)
    out = tmp_path / "out.fits"
    r = cli("predict-dark", path, "-o", out)
    err = r.stderr.decode()
    assert r.returncode == 2 and err.count("\n") == 1 and not out.exists(), err
    lo, hi = domain["dark"]
    assert (f"outside the training domain of the dark model bundled:lamost_dark_demo.pt: dark level above bias 899.9..900 ADU, "
            f"trained {lo:.4g}..{hi:.4g} ADU: {(900 - hi) / (hi - lo):.2f} range widths outside (refused beyond 0.5)") in err
