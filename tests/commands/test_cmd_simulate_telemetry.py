"""``dancekit simulate-telemetry`` through the real entry point: an AOT file that aotpy reads
like NAOMI data, the recorded truth, the S/N definition, reproducibility, r0 recovered end to end
from moving phase screens (and from the exact model), pipes and refusals."""

import json

import numpy as np
import pytest
from astropy.io import fits

from dancekit.ao.covariance import zernike_variance
from dancekit.ao.pseudo_open_loop import modes_from_slopes, to_radians_at_500nm


def test_closed_loop_aot_file_reads_like_naomi_telemetry(cli, tmp_path):
    import aotpy

    out = tmp_path / "t.fits"
    result = cli("simulate-telemetry", "--r0", "0.1", "--L0", "30", "--duration", "2", "--closed-loop",
                 "--airmass", "2", "--seed", "4", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    system = aotpy.AOSystem.read_from_file(str(out))
    loop = system.loops[0]
    assert loop.closed and loop.framerate == 500.0 and loop.delay == 2.0  # 4.6 ms x 500 Hz, rounded
    assert loop.input_sensor.measurements.data.shape == (1000, 2, 12)  # 12 valid subapertures
    assert loop.commands.data.shape == (1000, 14) and loop.measurements_to_modes.data.shape == (14, 2, 12)
    assert system.main_telescope.elevation == pytest.approx(30.0)  # airmass 2
    assert system.main_telescope.enclosing_diameter == pytest.approx(1.8)
    truth = [p for p in system.atmosphere_params if p.uid == "dancekit simulation truth"][0]
    assert truth.r0[0] == pytest.approx(0.1 * 2 ** 0.6)  # AOT: r0 at zenith; 0.1 m along the line of sight
    # the simulated DIMM: zenith seeing of the true r0 (0.9759 lambda / r0), the layers' L0 and weights
    dimm = [p for p in system.atmosphere_params if p.uid == "DIMM (simulated)"][0]
    assert dimm.seeing[0] == pytest.approx(0.9759 * 500e-9 / (0.1 * 2 ** 0.6) * 206264.806, rel=1e-6)
    assert np.allclose(dimm.layers_l0.data, 30.0) and dimm.layers_relative_weight.data.sum() == pytest.approx(1.0)
    # like NAOMI's REF_IM: the sensor's response to the 14 controlled modes, (S, 2, modes)
    assert loop.modes_to_measurements.data.shape == (12, 2, 14)
    header = fits.getheader(out)
    assert (header["SIMR0"], header["SIML0"], header["DKSEED"]) == (0.1, 30.0, 4)
    assert header["SIMSNR"] == 10.0 and header["SIMGAIN"] == 0.4 and "simulate-telemetry" in str(header["HISTORY"])
    # the default physics: the nine frozen-flow layers of the NAOMI config
    assert header["SIMMODEL"] == "screens" and header["SIMNLAY"] == 9 and header["SIMWIND"] == pytest.approx(13.0, abs=0.05)


def test_snr_is_turbulence_over_noise_variance_of_noll_4_to_15(cli, tmp_path):
    # same seed: same turbulence; the difference of the slopes is the noise alone
    clean, noisy = tmp_path / "clean.fits", tmp_path / "noisy.fits"
    common = ("--r0", "0.12", "--L0", "25", "--duration", "4", "--seed", "8")
    assert cli("simulate-telemetry", *common, "--slope-noise", "0", "-o", clean).returncode == 0
    result = cli("simulate-telemetry", *common, "--snr", "2", "-o", noisy, "--json")
    assert result.returncode == 0, result.stderr.decode()
    sigma = json.loads(result.stdout)["slope_noise"]
    with fits.open(clean) as a, fits.open(noisy) as b:
        noise = b["GRADIENTS"].data - a["GRADIENTS"].data
        s2m = b["S2M"].data
    assert noise.std() == pytest.approx(sigma, rel=0.01) and fits.getheader(noisy)["SIMSNOI"] == pytest.approx(sigma)
    noise_modes = to_radians_at_500nm(modes_from_slopes(noise, s2m), "um")  # NAOMI unit: micron
    turbulence = zernike_variance(range(4, 16), 0.12, 25.0, 1.8).sum()
    assert turbulence / noise_modes[:, 2:].var(axis=0).sum() == pytest.approx(2.0, rel=0.03)


def test_seed_makes_it_reproducible(cli, tmp_path):
    paths = [tmp_path / f"{i}.fits" for i in range(3)]
    for path, seed in zip(paths, (5, 5, 6)):
        assert cli("simulate-telemetry", "--duration", "0.5", "--seed", seed, "-o", path).returncode == 0
    data = [fits.getdata(p, "GRADIENTS") for p in paths]
    assert np.array_equal(data[0], data[1]) and not np.allclose(data[0], data[2])


def test_pipe_into_fit_r0(cli, tmp_path):
    # 20 s at 500 Hz of moving phase screens (all Zernike orders alias into the slopes): fit-r0
    # with its remaining-error correction recovers r0 (per-file scatter ~1 %, bias < 1 %)
    fitsbytes = cli("simulate-telemetry", "--r0", "0.15", "--L0", "25", "--snr", "20", "--seed", "2", "-o", "-")
    assert fitsbytes.returncode == 0 and fitsbytes.stdout.startswith(b"SIMPLE  =")
    result = cli("fit-r0", "-", "--set", "reference.L0=25", "--mc", "0", "--json", stdin=fitsbytes.stdout)
    assert result.returncode == 0, result.stderr.decode()
    row = json.loads(result.stdout)["results"][0]
    assert row["file"] == "<stdin>" and row["r0"] == pytest.approx(0.15, rel=0.03) and row["sim_r0"] == 0.15


def test_exact_model_and_wind_scaling(cli, tmp_path):
    out = tmp_path / "exact.fits"
    result = cli("simulate-telemetry", "--model", "exact", "--r0", "0.1", "--duration", "20", "--seed", "3",
                 "--snr", "20", "-o", out, "--json")
    assert result.returncode == 0, result.stderr.decode()
    header = fits.getheader(out)
    assert header["SIMMODEL"] == "exact" and header["SIMNLAY"] == 0 and header["SIMWIND"] == 10.0
    fitted = cli("fit-r0", out, "--set", "reference.L0=18.9", "--mc", "0", "--json")
    assert json.loads(fitted.stdout)["results"][0]["r0"] == pytest.approx(0.1, rel=0.03)
    # --wind rescales the layers of the screens model to that effective speed
    out2 = tmp_path / "windy.fits"
    result = cli("simulate-telemetry", "--wind", "20", "--duration", "0.2", "--seed", "3", "-o", out2, "--json")
    assert json.loads(result.stdout)["wind"] == pytest.approx(20.0) and fits.getheader(out2)["SIMNLAY"] == 9


def test_refusals_leave_no_file(cli, tmp_path):
    out = tmp_path / "t.fits"
    result = cli("simulate-telemetry", "--r0", "-0.1", "-o", out)
    assert result.returncode == 2 and result.stderr.decode().startswith("error: --r0: must be a positive number")
    result = cli("simulate-telemetry", "--closed-loop", "--gain", "2.5", "-o", out)
    assert result.returncode == 2 and "gain must be in (0, 2)" in result.stderr.decode()
    result = cli("simulate-telemetry", "--model", "fourier", "-o", out)
    assert result.returncode == 2 and "fourier" in result.stderr.decode()
    result = cli("simulate-telemetry", "--monitor-seeing", "0", "-o", out)
    assert result.returncode == 2 and result.stderr.decode().startswith("error: --monitor-seeing: must be a positive number")
    result = cli("simulate-telemetry", "--set", "simulation.samples_per_subaperture=2", "-o", out)
    assert result.returncode == 2 and "samples_per_subaperture must be >= 4" in result.stderr.decode()
    assert not out.exists() and list(tmp_path.iterdir()) == []
