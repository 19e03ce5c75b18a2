"""The command-line contract of DESIGN.md, driven through the real entry point (a subprocess)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits

from dancekit.cli import app
from tests.conftest import ROOT, run_cli


def top_level_commands():
    import typer.main

    return list(typer.main.get_command(app).commands.items())


def registered_commands():
    names = []
    for name, command in top_level_commands():
        sub = getattr(command, "commands", None)
        names.extend([(f"{name} {s}", c) for s, c in sub.items()] if sub else [(name, command)])
    return names


def test_every_command_is_listed_with_a_summary(cli):
    result = cli("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for name, command in top_level_commands():
        assert name in text
        assert command.help and command.help.strip(), f"{name} has no help text"


@pytest.mark.parametrize("name", [n for n, _ in registered_commands()])
def test_every_command_help_has_an_example(cli, name):
    result = cli(*name.split(), "--help")
    assert result.returncode == 0, result.stderr.decode()
    assert "Example: dancekit " + name.split()[0] in " ".join(result.stdout.decode().split())


def test_version_and_module_entry_point(cli):
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.decode().startswith("dancekit ")


def test_fits_through_stdin_and_stdout_keeps_data_and_header(cli, cube_file):
    path, data = cube_file()
    result = cli("average", "-", "-o", "-", stdin=path.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    with fits.open(__import__("io").BytesIO(result.stdout), checksum=True) as hdul:
        image, header = hdul[0].data, hdul[0].header
        assert hdul[0].verify_checksum() == 1 and hdul[0].verify_datasum() == 1
    np.testing.assert_allclose(image, data.mean(axis=0), rtol=1e-6)
    for key in ("EXPTIME", "DATE-OBS", "FILTER", "BUNIT", "CTYPE1", "CRVAL2"):
        assert header[key] == fits.getheader(path)[key]
    assert "CTYPE3" not in header
    assert header["DKVERS"] and "average" in "".join(str(h) for h in header["HISTORY"])


def test_output_exists_is_refused_without_overwrite(cli, cube_file, tmp_path):
    path, _ = cube_file()
    out = tmp_path / "avg.fits"
    out.write_bytes(b"keep me")
    result = cli("average", path, "-o", out)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == f"error: {out}: output exists; pass --overwrite to replace it"
    assert out.read_bytes() == b"keep me"
    assert cli("average", path, "-o", out, "--overwrite").returncode == 0
    assert fits.getdata(out).shape == (32, 40)


def test_a_failing_command_leaves_no_output_and_one_line(cli, tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = this is not really FITS" + b" " * 100)
    out = tmp_path / "out.fits"
    result = cli("average", bad, "-o", out)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ")
    assert "Traceback" not in result.stderr.decode()
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_many_inputs_one_bad_the_others_written(cli, cube_file, tmp_path):
    good1, _ = cube_file("a.fits")
    good2, _ = cube_file("b.fits")
    missing = tmp_path / "missing.fits"
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = cli("average", good1, missing, good2, "-o", outdir, "--json")
    assert result.returncode == 2
    assert sorted(p.name for p in outdir.iterdir()) == ["a.fits", "b.fits"]
    assert f"error: {missing}: no such file" in result.stderr.decode()
    summary = __import__("json").loads(result.stdout)
    assert summary["failed"] == 1 and len(summary["results"]) == 2


def test_closed_stdout_pipe_is_not_an_error(cube_file):
    path, _ = cube_file(shape=(3, 512, 512))
    env = {**os.environ, "PYTHONPATH": ROOT}
    shell = f"{sys.executable} -m dancekit average {path} -o - | head -c 10 > /dev/null; echo ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, env=env, timeout=120)
    assert result.stdout.decode().strip() == "0"
    assert "error" not in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_sigterm_mid_run_leaves_no_output(cube_file, tmp_path):
    path, _ = cube_file(shape=(1, 8, 8))
    out = tmp_path / "avg.fits"
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT, "TMPDIR": str(spool)}
    # stdin stays open, so the command is blocked spooling it when killed
    proc = subprocess.Popen(
        [sys.executable, "-m", "dancekit", "average", "-", "-o", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    proc.stdin.write(path.read_bytes()[:2880])
    proc.stdin.flush()
    deadline = time.time() + 60
    while not any(spool.iterdir()) and time.time() < deadline:  # the command is running and reading
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err.decode()
    assert "terminated" in err.decode()
    assert sorted(tmp_path.iterdir()) == sorted([path, spool]) and not any(spool.iterdir())


def test_bad_option_exits_2(cli, cube_file):
    path, _ = cube_file()
    result = cli("average", path, "-o", "-", "--frames", "9:3")
    assert result.returncode == 2
    assert "--frames: 9:3 selects no frames of the 6 available" in result.stderr.decode()
    assert cli("average", path, "--no-such-option").returncode == 2


def test_internal_error_exits_1_without_traceback():
    # an unexpected exception inside a command is a bug: exit 1, one line, traceback only with --debug
    from dancekit.commands.runtime import run_guarded

    def boom():
        raise RuntimeError("kaboom")

    assert run_guarded(boom, debug=False) == 1
