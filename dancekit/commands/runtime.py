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
import functools
import inspect
import logging
import signal
import sys
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


_state = {"quiet": False}


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
    failed = 0
    for path in inputs:
        try:
            process(path)
        except DancekitError as exc:
            report_error(str(exc.with_source("<stdin>" if path == "-" else path)))
            failed += 1
    if failed and len(inputs) > 1:
        report_error(f"{failed} of {len(inputs)} inputs failed; the others were written")
    return 2 if failed else 0


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal (and not --quiet); otherwise nothing."""
    if _state["quiet"] or not stderr_is_terminal():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
