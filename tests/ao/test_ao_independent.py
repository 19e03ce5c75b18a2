"""fit-r0 on telemetry it did not make (issue 16): the independent generator's own checks, its
interaction matrix G read from modal FITS and AOT files through the real entry point, the shape
refusals, and (slow) the r0 bias and the honesty of r0_err over many files."""

import json
import re

import numpy as np
import pytest
from astropy.io import fits

import independent_telemetry as generator
from conftest import run_cli
from dancekit.ao.covariance import zernike_variance

R0, L0 = 0.12, 25.0
FIT = ("--set", f"reference.L0={L0}", "--mc", "0")


@pytest.fixture(scope="module")
def sensor():
    return generator.make_sensor()


@pytest.fixture(scope="module")
def files(tmp_path_factory, sensor):
    """4 s of independent telemetry as a modal FITS with G and as an open-loop AOT file with its
    modes-to-measurements (Noll 2-45), plus a G file of the wrong size and one of too few modes."""
    folder = tmp_path_factory.mktemp("independent")
    tel = generator.simulate(R0, L0, 0.05, duration=4.0, seed=7, sensor=sensor)
    made = {"modal": folder / "modal.fits", "aot": folder / "aot.fits", "small": folder / "small.fits",
            "few": folder / "few.fits", "mislabelled": folder / "mislabelled.fits"}
    generator.write_modal(str(made["modal"]), tel)
    generator.write_aot(str(made["aot"]), tel)
    g = tel.sensor.interaction  # (24, 44), x/y interleaved
    for name, data, header in (("small", g[:20], {"NOLLMIN": 2}), ("few", g[:, :9], {"NOLLMIN": 2, "SLOPEORD": "xyxy"}),
                               ("mislabelled", g, {"NOLLMIN": 2, "SLOPEORD": "xxyy"})):
        hdu = fits.ImageHDU(data, name="G")
        hdu.header.update(header)
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(made[name])
    return made


def test_sensor_is_a_4x4_shack_hartmann_with_12_subapertures(sensor):
    assert sensor.slopes.shape == (24, 64 * 64) and sensor.interaction.shape == (24, 44)
    # tip (Noll 2, 2 x / radius per rad) tilts every x slope alike and no y slope
    tilt = sensor.interaction[:, 0]
    expected = 2.0 / (generator.DIAMETER / 2) * generator.WAVELENGTH / (2 * np.pi) * generator.ARCSEC
    assert np.allclose(tilt[0::2], expected, rtol=1e-9) and np.allclose(tilt[1::2], 0.0, atol=1e-12)
    assert np.allclose(sensor.reconstructor @ sensor.interaction[:, :14], np.eye(14), atol=1e-9)


def test_modal_fits_uses_its_g_by_default(cli, files, tmp_path):
    result = cli("fit-r0", files["modal"], *FIT, "--json")
    assert result.returncode == 0, result.stderr.decode()
    row = json.loads(result.stdout)["results"][0]
    assert row["sensor"] == f"{files['modal']}[G]" and row["r0"] == pytest.approx(R0, rel=0.08)
    builtin = json.loads(cli("fit-r0", files["modal"], *FIT, "--json", "--interaction-matrix", "builtin").stdout)["results"][0]
    assert builtin["sensor"] == "builtin" and abs(builtin["r0"] / row["r0"] - 1) > 1e-4
    # the same G given as an option, in the AOT file, or as the file's own: the same remaining error
    option = json.loads(cli("fit-r0", files["modal"], *FIT, "--json", "--interaction-matrix", f"{files['modal']}[G]").stdout)
    assert option["results"][0]["r0"] == pytest.approx(row["r0"], rel=1e-12)
    aot = json.loads(cli("fit-r0", files["aot"], *FIT, "--json").stdout)["results"][0]
    assert aot["sensor"] == "AOT modes-to-measurements" and aot["format"] == "aot"
    assert aot["r0"] == pytest.approx(row["r0"], rel=1e-6)  # micron, arcsec and (S, 2, M) layouts undone exactly


@pytest.mark.parametrize("telemetry, matrix, message", [
    ("aot", "small", r"the interaction matrix {small}\[G\] \(20, 44\) has 20 slopes but the WFS measurements "
                     r"\(2000, 2, 12\) have 24: it is not this sensor's matrix"),
    ("modal", "few", r"{few}\[G\]: the interaction matrix \(24, 9\) covers Noll 2-10 but the reconstructed modes need "
                     r"Noll 11-15; the telemetry's pseudo-open-loop modes are \(2000, 14\) \(Noll 2-15\)"),
    ("aot", "mislabelled", r"{mislabelled}\[G\]: the interaction matrix's columns of the reconstructed modes \(24, 14\) and "
                           r"the measurements-to-modes matrix \(14, 24\) do not describe the same slopes"),
])
def test_mismatched_matrices_exit_2_naming_both_shapes(cli, files, tmp_path, telemetry, matrix, message):
    out = tmp_path / "r0.fits"
    result = cli("fit-r0", files[telemetry], *FIT, "--interaction-matrix", files[matrix], "-o", out)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr and not out.exists()
    line = stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {files[telemetry]}: ")
    assert re.search(message.format(**{k: re.escape(str(v)) for k, v in files.items()}), line), line


def test_unreadable_matrix_option_exits_2_before_any_fit(cli, files, tmp_path):
    result = cli("fit-r0", files["modal"], *FIT, "--json", "--interaction-matrix", tmp_path / "none.fits[G]")
    assert result.returncode == 2 and result.stderr.decode().startswith(f"error: {tmp_path / 'none.fits'}: no such file")


@pytest.mark.slow
def test_generator_screens_have_von_karman_zernike_variances(sensor):
    # the independent screens themselves (not the sensor): least-squares Zernike coefficients of
    # 64 x 64 windows over 40 strips, against the closed-form von Karman variances
    n = 64
    c = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(c, c)
    rho, theta = np.hypot(x, y), np.arctan2(y, x)
    disc = rho <= 1
    projector = np.linalg.pinv(np.stack([generator.zernike_polar(j, rho, theta)[disc] for j in range(1, 16)], 1))[1:]
    rng = np.random.default_rng(3)
    coefficients = []
    for _ in range(20):
        pair = generator.unit_screen_pair(generator.STRIP_WIDTH, 2048, sensor.pixel, L0, rng)
        rows = np.arange((generator.STRIP_WIDTH - n) // 2, (generator.STRIP_WIDTH + n) // 2)
        for part in (pair.real, pair.imag):
            band = part[rows] + generator.subharmonics(rows, 2048, sensor.pixel, 1 / (generator.STRIP_WIDTH * sensor.pixel),
                                                       1 / (2048 * sensor.pixel), L0, rng)
            coefficients += [projector @ band[:, x0:x0 + n][disc] for x0 in range(0, 2048 - n, n)]
    ratio = (np.array(coefficients) * R0 ** (-5 / 6)).var(axis=0) / zernike_variance(range(2, 16), R0, L0, 1.8)
    for order, modes in ((2, slice(2, 5)), (3, slice(5, 9)), (4, slice(9, 14))):
        assert ratio[modes].mean() == pytest.approx(1.0, abs=0.05), (order, ratio)


@pytest.mark.slow
def test_r0_bias_and_coverage_on_independent_telemetry(tmp_path):
    # issue 16 "Done when", reduced to what a test can afford (the full run is
    # tests/ao/validate_fit_r0_independent.py): r0 8 and 20 cm, two noise levels, 4 files each
    import validate_fit_r0_independent as validation

    files = validation.make_files(str(tmp_path), (0.08, 0.20), (0.03, 0.15), 4)
    settings = validation.settings_table(300)
    summaries = {}
    for label in ("G, L0 = truth (25 m)", "builtin, L0 = truth (25 m)"):
        results = []
        for k, (r0, noise, path) in enumerate(files):
            from dancekit.commands.fit_r0 import fit_loops

            row = fit_loops(path, settings[label], seed=k)[0][0]
            results.append({"r0_true": r0, "noise": noise, "r0": row["r0"], "r0_err": row["r0_err"]})
        summaries[label] = validation.summarise(label, results)
    with_g, builtin = summaries["G, L0 = truth (25 m)"], summaries["builtin, L0 = truth (25 m)"]
    assert abs(with_g["mean_bias"]) < 0.015 and abs(builtin["mean_bias"]) < 0.03
    assert with_g["within_2_sigma"] >= 0.8
    assert 0.6 < with_g["mean_stated_sigma"] / with_g["scatter"] < 2.0
