"""The execution layer (--scheduler, --count) through the real entry point: in process, on a local
Dask cluster, and on a real `dask scheduler` with `dask worker` processes on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from dancekit.commands.execution import parse_scheduler
from dancekit.commands.runtime import PlainProgress
from dancekit.errors import ParameterError
from tests.conftest import ROOT, run_cli

DASK = str(Path(sys.executable).with_name("dask"))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
# seeing fixed: every video has the same small pupil grid, so each takes well under a second
VIDEOS = ["simulate-video", "--count", "6", "--frames", "2", "--size", "16", "--stars", "1:9", "--seeing", "1",
          "--propagation", "geometric", "--seed", "11", "-o", "videos"]
TELEMETRY = ["simulate-telemetry", "--count", "6", "--duration", "0.2", "--framerate", "500", "--model", "exact",
             "--seed", "3", "-o", "telemetry"]
BLOCK_DANCEKIT = '''import sys
class NoDancekit:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "dancekit":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoDancekit())
'''
# stand-ins for a batch system: the job runs at once, in its own process group, whose id is the job id
SUBMIT = """#!/bin/bash
script=$(mktemp "${TMPDIR:-/tmp}/job.XXXXXX")
cp "$1" "$script"
setsid bash "$script" > "$script.log" 2>&1 < /dev/null &
echo "Submitted batch job $!"
"""
CANCEL = """#!/bin/bash
kill -KILL -- "-$1" 2> /dev/null || true
"""


class DaskCluster:
    """A `dask scheduler` on a free port of 127.0.0.1 and `dask worker` processes (no nanny, one thread)."""

    def __init__(self, folder: Path, workers: int):
        from distributed import Client

        self.folder, self.workers = folder, {}
        folder.mkdir(exist_ok=True)
        address_file = folder / "scheduler.json"
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                           "--scheduler-file", str(address_file)], env=ENV, cwd=folder,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = None
        try:
            deadline = time.monotonic() + 120
            while not address_file.exists() or not address_file.read_text().strip():
                assert self.scheduler.poll() is None and time.monotonic() < deadline, "dask scheduler did not start"
                time.sleep(0.1)
            time.sleep(0.1)
            self.address = json.loads(address_file.read_text())["address"]
            self.client = Client(self.address, timeout=60)
            for i in range(workers):
                self.start_worker(f"w{i}")
            if workers:
                self.client.wait_for_workers(workers, timeout=120)
        except BaseException:
            self.close()  # no orphan scheduler or worker
            raise

    def start_worker(self, name: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
        self.workers[name] = subprocess.Popen(
            [DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name, *extra],
            env=env or ENV, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.workers[name]

    def busy_workers(self) -> set[str]:
        """Names of the workers running a task now."""
        info = self.client.scheduler_info()["workers"]
        return {info[address]["name"] for address, keys in self.client.processing().items() if keys and address in info}

    def kill(self, name: str) -> None:
        process = self.workers.pop(name)
        process.kill()
        process.wait(timeout=30)
        deadline = time.monotonic() + 60
        while name in {w["name"] for w in self.client.scheduler_info()["workers"].values()}:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for process in [*self.workers.values(), self.scheduler]:
            process.kill()  # a graceful close takes seconds and there is nothing to save
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The reference: 6 videos and 6 telemetry series made in this process (no --scheduler)."""
    folder = tmp_path_factory.mktemp("in_process")
    for args in (VIDEOS, TELEMETRY):
        result = run_cli(*args, cwd=folder)
        assert result.returncode == 0, result.stderr.decode()
    return folder


def differences(first: Path, second: Path) -> list[str]:
    """What differs between two FITS files: every data array and every header card, but for CHECKSUM
    (left out) and DATASUM (value only): astropy stamps their comments with the time of writing."""
    found = []
    with fits.open(first) as one, fits.open(second) as other:
        if [h.name for h in one] != [h.name for h in other]:
            return ["HDUs"]
        for a, b in zip(one, other):
            cards = [[(c.keyword, c.value, None if c.keyword == "DATASUM" else c.comment)
                      for c in h.header.cards if c.keyword != "CHECKSUM"] for h in (a, b)]
            if cards[0] != cards[1]:
                found.append(f"{a.name} header")
            if a.is_image and not np.array_equal(a.data, b.data):
                found.append(f"{a.name} data")
            if not a.is_image and a.data.tobytes() != b.data.tobytes():
                found.append(f"{a.name} table")
    return found


def same_files(first: Path, second: Path) -> list[str]:
    """Names of the FITS files of two folders that differ (see ``differences``)."""
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    return [name for name in names if differences(first / name, second / name)]


def test_a_set_made_by_dask_workers_is_identical_to_the_one_made_in_process(cluster, in_process, tmp_path):
    result = run_cli(*VIDEOS, "--scheduler", cluster.address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "error" not in result.stderr.decode() and "dancekit: wrote videos/video_0005.fits" in result.stderr.decode()
    # data and headers, HISTORY included: the command line is recorded without --scheduler
    assert same_files(in_process / "videos", tmp_path / "videos") == []
    names = sorted((tmp_path / "videos").iterdir())
    assert [p.name for p in names] == [f"video_{i:04d}.fits" for i in range(6)]
    headers = [fits.getheader(p) for p in names]
    assert [h["DKINDEX"] for h in headers] == list(range(6)) and {h["DKSEED"] for h in headers} == {11}
    assert len({h["NSTARS"] for h in headers}) > 1 and all(1 <= h["NSTARS"] <= 9 for h in headers)  # --stars 1:9
    assert "--scheduler" not in "".join(headers[0]["HISTORY"]) and "--count 6" in "".join(headers[0]["HISTORY"])
    cubes = [fits.getdata(p) for p in names]
    assert all(not np.array_equal(cubes[0], cube) for cube in cubes[1:])  # each product its own seed


def test_fit_r0_rows_come_back_in_input_order_with_the_bad_file_reported(cluster, in_process, tmp_path):
    (tmp_path / "bad.fits").write_bytes(b"not FITS at all")
    series = sorted(str(p) for p in (in_process / "telemetry").iterdir())
    inputs = [*series[3:], str(tmp_path / "bad.fits"), *series[:3]]
    runs = {}
    for name, extra in (("here", []), ("dask", ["--scheduler", cluster.address])):
        (tmp_path / name).mkdir()
        runs[name] = run_cli("fit-r0", *inputs, "--iterations", "1", "--mc", "8", "--seed", "5", "-o", "r0.fits",
                             "--json", *extra, cwd=tmp_path / name)
    for result in runs.values():
        assert result.returncode == 2
        errors = [line for line in result.stderr.decode().splitlines() if line.startswith("error:")]
        assert errors[0].startswith(f"error: {tmp_path / 'bad.fits'}: ") and len(errors) == 2
        assert errors[1] == "error: 1 of 7 inputs failed; the others were written"
    here, there = (json.loads(runs[name].stdout) for name in ("here", "dask"))
    assert here == there and [row["file"] for row in here["results"]] == [*series[3:], *series[:3]]
    assert len({row["r0_err"] for row in here["results"]}) == 6  # Monte Carlo seeded per file
    assert differences(tmp_path / "here" / "r0.fits", tmp_path / "dask" / "r0.fits") == []


def test_evaluate_on_dask_gives_the_rows_of_the_in_process_run_in_input_order(cluster, tmp_path):
    yy, xx = np.mgrid[:64, :64]
    stars = np.random.default_rng(4).uniform(8, 56, (10, 2))

    def field(sigma, noise, seed):  # Gaussian stars of width sigma px
        image = sum(2e3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in stars)
        return (image + np.random.default_rng(seed).normal(0, noise, image.shape)).astype(np.float32)

    fits.PrimaryHDU(field(1.0, 0.0, 0)).writeto(tmp_path / "truth.fits")
    for name, sigma in (("blurred", 2.0), ("sharp", 1.0)):
        fits.PrimaryHDU(field(sigma, 1.0, 1)).writeto(tmp_path / f"{name}.fits")
    runs = [run_cli("evaluate", "blurred.fits", "sharp.fits", "--truth", "truth.fits", "--json", *extra, cwd=tmp_path)
            for extra in ([], ["--scheduler", cluster.address])]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr.decode()
    here, there = (json.loads(r.stdout) for r in runs)
    assert here == there and [r["image"] for r in here["results"]] == ["blurred.fits", "sharp.fits"]
    assert here["results"][1]["mean_d50"] < here["results"][0]["mean_d50"]  # measured, not echoed


def test_a_worker_killed_mid_run_loses_nothing_and_leaves_no_temporary_file(cluster, in_process, tmp_path):
    victim = cluster.start_worker("victim")
    cluster.client.wait_for_workers(3, timeout=120)
    run = subprocess.Popen([sys.executable, "-m", "dancekit", *VIDEOS, "--scheduler", cluster.address],
                           cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while "victim" not in cluster.busy_workers():
        assert run.poll() is None and time.monotonic() < deadline, "the victim never got a task"
        time.sleep(0.02)
    cluster.kill("victim")  # SIGKILL while it runs a task: no clean-up of any kind on its side
    _, stderr = run.communicate(timeout=300)
    assert victim.returncode == -signal.SIGKILL
    assert run.returncode == 0, stderr.decode()
    assert same_files(in_process / "videos", tmp_path / "videos") == []
    assert [p.name for p in (tmp_path / "videos").iterdir() if p.name.startswith(".")] == []


def test_a_rerun_task_may_replace_the_output_its_killed_attempt_wrote_but_no_other(cluster, tmp_path):
    """A worker killed between a rename and its report: the scheduler runs the task again, which then
    finds its own output. The run's journal (on the scheduler) lets it replace that one, only that one."""
    from dancekit.commands.cluster import TaskContext, run_task
    from dancekit.io.fits_out import write_hdus

    def write_twice(path):  # the killed attempt's write, then the re-run's
        for _ in range(2):
            write_hdus(fits.HDUList([fits.PrimaryHDU(np.arange(3.0))]), path)
        return "written"

    target = str(tmp_path / "product.fits")
    first = cluster.client.submit(run_task, target, write_twice, TaskContext((), str(tmp_path), "dkrun1", 20)).result()
    assert first.error is None and first.value == "written"
    other = cluster.client.submit(run_task, target, write_twice, TaskContext((), str(tmp_path), "dkrun2", 20)).result()
    assert other.error == ("output exists; pass --overwrite to replace it", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["product.fits"]


def test_ctrl_c_cancels_what_is_outstanding_and_leaves_nothing_partial(cluster, tmp_path):
    args = [*VIDEOS[:-1], "many"]
    args[2] = "40"  # --count 40: far more than the two workers finish before the interrupt
    run = subprocess.Popen([sys.executable, "-m", "dancekit", *args, "--scheduler", cluster.address],
                           cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.monotonic() + 120
    while not (tmp_path / "many").exists() or not any(p.suffix == ".fits" for p in (tmp_path / "many").iterdir()):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr.decode()
    assert stderr.decode().strip().splitlines()[-1] == "error: interrupted (Ctrl-C); no partial output was left"
    deadline = time.monotonic() + 60
    while cluster.busy_workers():  # tasks already running when Ctrl-C came finish their (whole) file
        assert time.monotonic() < deadline
        time.sleep(0.1)
    left = sorted((tmp_path / "many").iterdir())
    assert 1 <= len(left) < 40 and all(p.suffix == ".fits" and not p.name.startswith(".") for p in left)
    for path in left:
        with fits.open(path, checksum=True) as hdul:
            assert hdul[0].verify_datasum() == 1 and hdul[0].data.shape == (2, 16, 16)


def test_a_local_cluster_of_two_workers_makes_the_same_set(in_process, tmp_path):
    result = run_cli(*TELEMETRY, "--scheduler", "local:2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert same_files(in_process / "telemetry", tmp_path / "telemetry") == []


@pytest.mark.slow  # ~15 s quiet (a scheduler, a batch worker, one run): kept out of the 10-minute suite
@pytest.mark.parametrize("system", ["SLURM", "PBS"])
def test_the_readme_dask_jobqueue_recipe_with_a_stand_in_batch_system(system, in_process, tmp_path, monkeypatch):
    """The README's dask-jobqueue recipe, with sbatch/scancel (qsub/qdel) that run the job script here."""
    jobqueue = pytest.importorskip("dask_jobqueue")
    commands = tmp_path / "bin"
    commands.mkdir()
    for name, text in zip(("sbatch", "scancel") if system == "SLURM" else ("qsub", "qdel"), (SUBMIT, CANCEL)):
        (commands / name).write_text(text)
        (commands / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{commands}{os.pathsep}{os.environ['PATH']}")
    batch = jobqueue.SLURMCluster if system == "SLURM" else jobqueue.PBSCluster
    cluster = batch(cores=1, processes=1, memory="2GB", walltime="00:10:00", python=sys.executable,
                    job_script_prologue=[f"export PYTHONPATH={ROOT}"],  # this worktree's dancekit (a test's need)
                    scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})
    try:
        cluster.scale(jobs=1)
        cluster.wait_for_workers(1, timeout=120)
        result = run_cli(*TELEMETRY, "--scheduler", cluster.scheduler_address, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
    finally:
        cluster.close()
    assert same_files(in_process / "telemetry", tmp_path / "telemetry") == []


def test_the_default_runs_in_process_without_importing_dask(tmp_path):
    for name in ("a", "b"):
        fits.PrimaryHDU(np.ones((2, 4, 4), np.float32)).writeto(tmp_path / f"{name}.fits")
    (tmp_path / "out").mkdir()
    script = (
        "import sys\n"
        "from dancekit.cli import app\n"
        "sys.argv = ['dancekit', 'average', 'a.fits', 'b.fits', '-o', 'out', '-q']\n"
        "code = None\n"
        "try:\n    app(args=sys.argv[1:], prog_name='dancekit')\nexcept SystemExit as end:\n    code = end.code\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, timeout=300)
    assert result.stdout.decode().strip() == "0 []", result.stderr.decode()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.fits", "b.fits"]


@pytest.mark.parametrize("text", ["local:0", "tcp://", "localhost:8786", "tcp://head:99999", "dask"])
def test_a_malformed_scheduler_is_refused(text):
    with pytest.raises(ParameterError, match="is not local, local:N or tcp://HOST:PORT|at least 1 worker"):
        parse_scheduler(text)
    assert parse_scheduler("local:3").workers == 3 and parse_scheduler("tcp://10.0.0.1:8786").address


def test_all_inputs_failing_says_nothing_was_written(tmp_path):
    bad = [tmp_path / name for name in ("a.fits", "b.fits")]
    for path in bad:
        path.write_bytes(b"nope")
    (tmp_path / "out").mkdir()
    result = run_cli("average", *bad, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1] == "error: all 2 inputs failed; nothing was written"


def test_plain_progress_lines_every_ten_percent_or_thirty_seconds(caplog, monkeypatch):
    from dancekit.commands.runtime import log

    monkeypatch.setattr(log, "propagate", True)  # to pytest's handler
    clock = [0.0]
    with caplog.at_level("INFO", logger="dancekit"):
        quick = PlainProgress("quick", 10, clock=lambda: clock[0])
        for _ in range(10):
            clock[0] += 0.1
            quick.advance()
        quick.close()
        assert caplog.messages == []  # done within 2 s: a cron log stays quiet
        slow = PlainProgress("slow", 40, clock=lambda: clock[0])
        for _ in range(40):
            clock[0] += 1.0
            slow.advance()
        slow.close()
        steps = [m.split(": ")[1].split(",")[0] for m in caplog.messages]
        assert steps == [f"{n}/40 ({n * 100 // 40} %)" for n in range(4, 41, 4)]
        caplog.clear()
        open_ended = PlainProgress("open", None, clock=lambda: clock[0])
        for _ in range(70):
            clock[0] += 1.0
            open_ended.advance()
        open_ended.close()
        assert [m.split(", ")[0] for m in caplog.messages] == ["open: 30 done", "open: 60 done", "open: 70 done"]


def test_bad_scheduler_exits_2_with_one_line_in_bounded_time(cluster, tmp_path, monkeypatch):
    """Last in this module: it adds a worker without dancekit to the shared cluster, then kills it."""
    import socket

    monkeypatch.setenv("DANCEKIT_SCHEDULER_TIMEOUT", "2")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def refused(address: str, message: str) -> None:
        started = time.monotonic()
        result = run_cli("simulate-telemetry", "--count", "2", "-o", "out", "--scheduler", address, cwd=tmp_path)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr.decode()
        # 2 s of waiting (twice at most), plus the start of python and dask: ~5 s quiet, a minute on a loaded machine
        assert time.monotonic() - started < 180
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    refused(f"tcp://127.0.0.1:{port}", f"error: --scheduler: no Dask scheduler answered at tcp://127.0.0.1:{port} within 2 s")
    (cluster.folder / "no_dancekit.py").write_text(BLOCK_DANCEKIT)
    cluster.start_worker("plain", "--preload", str(cluster.folder / "no_dancekit.py"))
    cluster.client.wait_for_workers(3, timeout=120)
    try:
        refused(cluster.address, "the Dask workers cannot run dancekit (ModuleNotFoundError: No module named 'dancekit')")
    finally:
        cluster.kill("plain")
