"""The command-line contract, written once and used by every subcommand.

``@cli_command`` wraps a command function so that it gains ``-q/--quiet``, ``-v/--verbose`` and
``--debug``, logs to stderr only (rich when stderr is a terminal, plain lines otherwise), and
maps outcomes to exit codes: 0 success; 2 a ``DancekitError`` (one line ``error: <file>: <what>``,
no traceback unless ``--debug``); 1 an unexpected internal error; 130 Ctrl-C; 143 SIGTERM. SIGTERM
is turned into an exception so that atomic writes remove their temporary files. A reader that
closes our stdout early (``| head -c 100``) ends the command quietly with exit 0.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import signal
import sys
import time
import traceback
from typing import Annotated, Callable, Iterable, Iterator

import typer

from dancekit.errors import DancekitError
from dancekit.io.fits_out import silence_closed_stdout

log = logging.getLogger("dancekit")


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (BaseException: library code won't swallow it)."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` so that ``finally`` clean-ups run."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def setup_logging(quiet: bool, verbose: int) -> None:
    """Logs go to stderr: rich when it is a terminal, plain ``dancekit: ...`` lines for cron."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
    if stderr_is_terminal():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    _state["quiet"] = quiet


_state = {"quiet": False, "debug": False}
#: True while a task runs on a Dask worker: its stderr is not the user's, so no progress output there
in_worker_task: contextvars.ContextVar[bool] = contextvars.ContextVar("in_worker_task", default=False)


class _PlainFormatter(logging.Formatter):
    """``dancekit: message`` for information, ``warning: message`` for problems (grep-able in cron mail)."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = "dancekit" if record.levelno < logging.WARNING else record.levelname.lower()
        return f"{prefix}: {record.getMessage()}"


def report_error(message: str) -> None:
    """One line on stderr, whatever the verbosity: errors are never silenced."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


_COMMON = [
    inspect.Parameter(
        "quiet",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors on stderr.")],
    ),
    inspect.Parameter(
        "verbose",
        inspect.Parameter.KEYWORD_ONLY,
        default=0,
        annotation=Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")],
    ),
    inspect.Parameter(
        "debug",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--debug", help="Show the traceback of any error.")],
    ),
]


def cli_command(function: Callable[..., int | None]) -> Callable[..., None]:
    """Give a command the common flags, logging, signal handling and the error-to-exit-code map."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        quiet, verbose, debug = kwargs.pop("quiet"), kwargs.pop("verbose"), kwargs.pop("debug")
        setup_logging(quiet, verbose)
        _state["debug"] = debug
        code = run_guarded(lambda: function(*args, **kwargs), debug)
        if code:
            raise typer.Exit(code)

    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *_COMMON])
    return wrapper


def run_guarded(call: Callable[[], int | None], debug: bool) -> int:
    """Run ``call`` and turn its outcome into an exit code (see the module docstring)."""
    with sigterm_raises():
        try:
            return int(call() or 0)
        except typer.Exit:
            raise
        except DancekitError as exc:
            if debug:
                traceback.print_exc(file=sys.stderr)
            report_error(str(exc))
            return 2
        except BrokenPipeError:
            silence_closed_stdout()
            return 0
        except KeyboardInterrupt:
            report_error("interrupted (Ctrl-C); no partial output was left")
            return 130
        except Terminated:
            report_error("terminated (SIGTERM); no partial output was left")
            return 143
        except Exception as exc:  # a bug: say so, keep the traceback for --debug
            if debug:
                traceback.print_exc(file=sys.stderr)
            report_error(f"internal error: {type(exc).__name__}: {exc} (a bug in dancekit; rerun with --debug and report it)")
            return 1


def for_each_input(inputs: Iterable[str], process: Callable[[str], None]) -> int:
    """Process inputs in turn; a bad one is reported and skipped, the exit code says so at the end."""
    inputs = list(inputs)
    _, failed = process_in_turn(inputs, process, inputs)
    return report_failures(len(failed), len(inputs))


def process_in_turn(items: list, process: Callable, names: list[str], show: bool = False) -> tuple[list, list[str]]:
    """``process(item)`` for each item in order: (the results of those that worked, the names that failed).
    ``show``: a progress bar over the items (when there are several)."""
    results, failed = [], []
    with progress(command_name(), len(items)) if show and len(items) > 1 else contextlib.nullcontext(_no_progress) as advance:
        for item, name in zip(items, names):
            try:
                results.append(process(item))
            except DancekitError as exc:
                report_input_error(exc, name)
                failed.append(name)
            advance(1)
    return results, failed


def command_name() -> str:
    """The subcommand being run (its first argument), for progress lines."""
    return next((argument for argument in sys.argv[1:] if not argument.startswith("-")), "dancekit")


def _no_progress(n: int = 1) -> None:
    pass


def report_input_error(exc: DancekitError, name: str, remote_traceback: str | None = None) -> None:
    """The one line of a bad input (its traceback first with --debug)."""
    if _state["debug"]:
        sys.stderr.write(remote_traceback or "".join(traceback.format_exception(exc)))
    report_error(str(exc.with_source("<stdin>" if name == "-" else name)))


def report_failures(failed: int, total: int) -> int:
    """The closing line of a many-input run, and its exit code (2 when anything failed)."""
    if failed and total > 1:
        if failed == total:
            report_error(f"all {total} inputs failed; nothing was written")
        else:
            report_error(f"{failed} of {total} inputs failed; the others were written")
    return 2 if failed else 0


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; plain lines for cron; nothing with -q."""
    if _state["quiet"] or in_worker_task.get():
        yield _no_progress
        return
    if not stderr_is_terminal():
        lines = PlainProgress(description, total)
        yield lines.advance
        lines.close()
        return
    if _live_bars:  # rich shows one live display at a time: a nested bar is a line of the one shown
        bar = _live_bars[-1]
        task = bar.add_task(description, total=total)
        try:
            yield lambda n=1: bar.advance(task, n)
        finally:
            bar.remove_task(task)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        _live_bars.append(bar)
        try:
            yield lambda n=1: bar.advance(task, n)
        finally:
            _live_bars.pop()


_live_bars: list = []  # the rich Progress on screen, if any


class PlainProgress:
    """Progress as log lines when stderr is no terminal (cron): one at every 10 % step or after 30 s
    without one, none in the first 2 s (a quick job stays quiet), and a closing one if any was printed."""

    QUIET_START, MAX_SILENCE = 2.0, 30.0  # s

    def __init__(self, description: str, total: int | None, clock: Callable[[], float] = time.monotonic):
        self.description, self.total, self.clock = description, total, clock
        self.done, self.step, self.reported = 0, 0, None
        self.started = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        step = 10 * self.done // self.total if self.total else 0
        if now - self.started >= self.QUIET_START and (step > self.step or now - self.last >= self.MAX_SILENCE):
            self._line(now)
        self.step = max(self.step, step)

    def close(self) -> None:
        if self.reported is not None and self.reported != self.done:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        elapsed = now - self.started
        if self.total:
            left = elapsed * (self.total - self.done) / self.done if self.done else float("nan")
            log.info("%s: %d/%d (%d %%), %.0f s elapsed, about %.0f s left", self.description, self.done,
                     self.total, 100 * self.done // self.total, elapsed, left)
        else:
            log.info("%s: %d done, %.0f s elapsed", self.description, self.done, elapsed)
        self.last, self.reported = now, self.done
