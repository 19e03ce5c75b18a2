"""The Dask side of the execution layer (:mod:`dancekit.commands.execution`), imported only with --scheduler.

The client scatters the command's per-input function once to every worker and submits one task
per input. On the worker, :func:`run_task` runs it as the command would in process: the same
command line in the provenance HISTORY (the worker's own ``sys.argv`` is not the user's), the
client's working directory (relative paths mean the same on a shared filesystem), temporary files
tagged with the run's token, no progress output, and the log lines collected and sent back with
the result, so that warnings reach the user's stderr. A ``DancekitError`` comes back as a value and
is reported as the usual one line; any other exception is a bug and ends the run (exit 1).

Time bounds (seconds, ``DANCEKIT_SCHEDULER_TIMEOUT``, default 10): reaching the scheduler, then
its first worker, each take at most that long, else exit 2; a run whose scheduler has had no
worker for 6 times that long stops with exit 2. A task whose worker dies is re-run elsewhere by
the scheduler, up to its ``distributed.scheduler.allowed-failures`` (3, as Dask's default, for
``local``), then reported as failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from dancekit import __version__
from dancekit.commands.runtime import command_name, in_worker_task, log, progress, report_error, report_input_error
from dancekit.errors import DancekitError, InputError, ParameterError
from dancekit.io import fits_out, provenance

TIMEOUT = float(os.environ.get("DANCEKIT_SCHEDULER_TIMEOUT", "10"))  # s
WORKERLESS_TIMEOUTS = 6  # a run gives up after this many TIMEOUTs without any worker
RETRIES = 3  # deaths of its workers a task survives on a local cluster (Dask's allowed-failures)


@dataclass(frozen=True)
class TaskContext:
    """What a task on a worker needs to behave as the command in process would."""

    arguments: tuple[str, ...]  # sys.argv[1:] of the command
    directory: str  # its working directory
    token: str  # tags the run's temporary files
    level: int  # the command's log level


@dataclass
class Outcome:
    """One task's result, or its one-line error (message, source), and the log lines it emitted."""

    value: Any = None
    error: Optional[tuple[str, Optional[str]]] = None
    traceback: Optional[str] = None
    records: list[tuple[int, str]] = field(default_factory=list)


def run_on_cluster(items: list, process: Callable, names: list[str], spec: Any,
                   folder: Optional[Path]) -> tuple[list, list[str]]:
    """Run ``process`` over ``items`` on the cluster ``spec``: (results in input order, failed names)."""
    token = "dk" + secrets.token_hex(4)
    context = TaskContext(tuple(sys.argv[1:]), os.getcwd(), token, log.getEffectiveLevel())
    outcomes: dict[int, Outcome] = {}
    failed: list[int] = []
    try:
        with _connected(spec, context) as client:
            function = client.scatter(process, broadcast=True, hash=False)
            submitted = client.map(run_task, items, process=function, context=context, pure=False,
                                   key=[f"dancekit-{token}-{i}" for i in range(len(items))])
            futures = {future: i for i, future in enumerate(submitted)}
            try:
                with progress(command_name(), len(items)) as advance:
                    _collect(client, futures, names, outcomes, failed, advance, spec)
            except BaseException:  # Ctrl-C, SIGTERM, a bug: nothing more starts
                client.cancel(list(futures), force=True)
                raise
            finally:
                with contextlib.suppress(Exception):
                    client.set_metadata(["dancekit", token], None)  # the run's journal
    finally:
        if folder is not None:
            fits_out.remove_run_files(folder, token)  # those of tasks whose worker was killed
    return [outcomes[i].value for i in sorted(outcomes)], [names[i] for i in sorted(failed)]


def _collect(client, futures: dict, names: list[str], outcomes: dict, failed: list, advance, spec) -> None:
    """Take the tasks' outcomes as they finish (logs forwarded, errors reported) until none is left.
    Results are fetched in the background as tasks finish (``as_completed``), not one round trip each."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    finishing = as_completed(list(futures), with_results=True, raise_errors=False)
    next_check, workerless_since = time.monotonic() + 1.0, None
    while not finishing.is_empty():
        batch = finishing.next_batch(block=False)
        if not batch:
            time.sleep(0.02)
        for future, result in batch:
            i = futures[future]
            if future.status == "finished":
                for level, message in result.records:
                    log.log(level, "%s", message)
                if result.error is None:
                    outcomes[i] = result
                else:
                    report_input_error(DancekitError(result.error[0], source=result.error[1]), names[i], result.traceback)
                    failed.append(i)
            elif future.status == "cancelled" or isinstance(result[1], KilledWorker):
                report_error(f"{names[i]}: the workers that ran it died (out of memory? a node lost?) more often than "
                             "the scheduler retries; not done")
                failed.append(i)
            else:  # a bug in the task: raise it here, with the worker's traceback
                raise result[1].with_traceback(result[2])
            advance(1)
        if time.monotonic() > next_check and not finishing.is_empty():
            next_check = time.monotonic() + 1.0
            workerless_since = _check_cluster(client, spec, finishing.count(), len(futures), workerless_since)


def _check_cluster(client, spec, left: int, total: int, workerless_since: Optional[float]) -> Optional[float]:
    """Raise when the scheduler is gone, or has had no worker for too long; when it has had none since."""
    if client.status != "running":
        raise InputError(f"lost the connection to the Dask scheduler; {left} of {total} inputs not done", source=spec.text)
    if client.scheduler_info(n_workers=1).get("workers"):
        return None
    workerless_since = workerless_since or time.monotonic()
    if time.monotonic() - workerless_since > WORKERLESS_TIMEOUTS * TIMEOUT:
        raise InputError(f"the Dask scheduler has had no worker for {WORKERLESS_TIMEOUTS * TIMEOUT:g} s; "
                         f"{left} of {total} inputs not done", source=spec.text)
    return workerless_since


@contextlib.contextmanager
def _connected(spec, context: TaskContext):
    """A client of a new local cluster or of the scheduler at ``spec.address``, checked, then closed."""
    import dask
    from distributed import Client, LocalCluster

    quiet = logging.getLogger("distributed"), logging.getLogger("tornado")
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)  # its reconnection chatter is not the user's business
    cluster = client = None
    try:
        if spec.workers:
            try:
                # Dask's default MALLOC_TRIM_THRESHOLD_ for workers switches off glibc's adaptive mmap
                # threshold: every large numpy/torch array is then mmapped and unmapped afresh, which
                # more than doubled the CPU of simulate-video tasks (most of it system time)
                with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES,
                                      "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                    cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL,
                                           preload=[__name__])  # dask_setup below
                client = Client(cluster, timeout=TIMEOUT)
            except Exception as exc:
                raise ParameterError(f"could not start a local Dask cluster of {spec.workers} workers "
                                     f"({type(exc).__name__}: {exc})", source="--scheduler") from None
        else:
            try:
                client = Client(spec.address, timeout=TIMEOUT)
            except Exception as exc:
                raise ParameterError(f"no Dask scheduler answered at {spec.address} within {TIMEOUT:g} s "
                                     f"({type(exc).__name__}); is `dask scheduler` running there?", source="--scheduler") from None
            try:
                client.wait_for_workers(1, timeout=TIMEOUT)
            except TimeoutError:
                raise ParameterError(f"the Dask scheduler at {spec.address} has no worker (waited {TIMEOUT:g} s); "
                                     f"start some with: dask worker {spec.address}", source="--scheduler") from None
        _check_workers(client, spec, context)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def _check_workers(client, spec, context: TaskContext) -> None:
    """Every worker imports this dancekit version and sees the command's folder, else exit 2."""
    try:
        facts = client.run(worker_facts, context.directory)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        wrapped = re.fullmatch(r"(\w+)\((['\"])(.*)\2\)", str(exc)) if type(exc) is Exception else None
        if wrapped:  # client.run raises Exception("ModuleNotFoundError('...')") for what a worker raised
            detail = f"{wrapped.group(1)}: {wrapped.group(3)}"
        raise ParameterError(f"the Dask workers cannot run dancekit ({detail}); install dancekit {__version__} "
                             "where they run", source=spec.text) from None
    for address, (version, host, sees_folder) in sorted(facts.items()):
        if version != __version__:
            raise ParameterError(f"the worker {address} on {host} runs dancekit {version}, this is {__version__}; "
                                 "install the same version on the workers", source=spec.text)
        if not sees_folder:
            raise ParameterError(f"the worker {address} on {host} does not see the folder {context.directory}; "
                                 "the workers need the filesystem of the command", source=spec.text)


def dask_setup(worker) -> None:
    """Preloaded into the workers of a local cluster: a terminal's Ctrl-C reaches the whole process
    group, and it is the command's to handle (it closes the cluster); a worker would print a traceback."""
    with contextlib.suppress(ValueError):  # not the main thread: leave it
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_facts(directory: str) -> tuple[str, str, bool]:
    """On a worker: (its dancekit version, its host, whether it sees ``directory``)."""
    return __version__, socket.gethostname(), os.path.isdir(directory)


def run_task(item: Any, process: Callable, context: TaskContext) -> Outcome:
    """On a worker: ``process(item)`` as the command would run it in process (module docstring)."""
    collected: list[tuple[int, str]] = []
    _TASK_LOGS.start(collected, context.level)
    tokens = (in_worker_task.set(True), fits_out.current_run.set(RunJournal(context.token)),
              provenance.command_arguments.set(list(context.arguments)))
    try:
        if os.getcwd() != context.directory:
            os.chdir(context.directory)
        return Outcome(value=process(item), records=collected)
    except DancekitError as exc:
        return Outcome(error=(exc.message, exc.source), traceback=traceback.format_exc(), records=collected)
    finally:
        for variable, token in zip((in_worker_task, fits_out.current_run, provenance.command_arguments), tokens):
            variable.reset(token)
        _TASK_LOGS.stop()


@dataclass(frozen=True)
class RunJournal:
    """The outputs a run's tasks wrote, kept on the scheduler (its metadata) so that it survives a
    worker's death: a re-run task may then replace its own output (see dancekit.io.fits_out)."""

    token: str

    def record(self, path: str) -> None:
        self._call("set_metadata", keys=self._keys(path), value=True)

    def recorded(self, path: str) -> bool:
        return bool(self._call("get_metadata", keys=self._keys(path), default=False))

    def _keys(self, path: str) -> list[str]:
        return ["dancekit", self.token, os.path.abspath(path)]

    @staticmethod
    def _call(operation: str, **arguments):
        """One call to the scheduler through this worker's connection (no extra client)."""
        from distributed import get_worker
        from distributed.utils import sync

        worker = get_worker()
        return sync(worker.loop, getattr(worker.scheduler, operation), **arguments)


class _TaskLogHandler(logging.Handler):
    """Collects the dancekit log records of the task running in each worker thread."""

    def __init__(self):
        super().__init__()
        self.local = threading.local()

    def start(self, records: list, level: int) -> None:
        if self not in log.handlers:
            log.addHandler(self)
            log.propagate = False  # the worker's own stderr is no one's to read
        log.setLevel(min(level, log.level or level))
        self.local.records, self.local.level = records, level

    def stop(self) -> None:
        self.local.records = None

    def emit(self, record: logging.LogRecord) -> None:
        records = getattr(self.local, "records", None)
        if records is not None and record.levelno >= self.local.level:
            records.append((record.levelno, record.getMessage()))


_TASK_LOGS = _TaskLogHandler()
