"""Writing FITS so that nothing is ever lost or half-written.

A file is written to a hidden temporary file in the target folder and renamed into place only
when complete; the temporary file is removed on any failure, on Ctrl-C and on SIGTERM (the CLI
turns SIGTERM into an exception so that the clean-up below runs). ``-`` writes to standard
output, where a reader that closes the pipe early (``| head -c 100``) is not an error.

On a Dask worker a SIGKILL skips every clean-up, so the tasks of a distributed run set
``current_run`` (see :mod:`dancekit.commands.cluster`): their temporary files are named
``.NAME.<token>.*.part``, which the command removes from its output folder at the end of the run;
and each output is entered in the run's journal just before its rename, so that a task re-run after
its worker died between the rename and its report replaces that output instead of refusing it.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

from astropy.io import fits

from dancekit.errors import InputError

STDOUT = "-"
#: the distributed run a task belongs to (``.token``, ``.record(path)``, ``.recorded(path)``); None in process
current_run: contextvars.ContextVar = contextvars.ContextVar("current_run", default=None)


def check_output(path: str | None, overwrite: bool) -> None:
    """Refuse, before any work is done, an output that exists or whose folder does not."""
    if path is None or path == STDOUT:
        return
    target = Path(path)
    if target.is_dir():
        raise InputError("is a folder; give a file name (a folder is for many inputs)", source=str(path))
    if target.exists() and not overwrite and not written_by_this_run(target):
        raise InputError("output exists; pass --overwrite to replace it", source=str(path))
    if not target.parent.exists():
        raise InputError(f"output folder '{target.parent}' does not exist", source=str(path))


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a temporary file is created and its clean-up armed (no leak window)."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    except (AttributeError, ValueError):  # platforms without sigmask: best effort
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def temporary_file(directory: str | os.PathLike | None, prefix: str, suffix: str) -> str:
    """Create an empty temporary file (closed) and return its path."""
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(handle)
    return name


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    target = Path(path)
    check_output(str(target), overwrite)
    tmp = None
    run = current_run.get()
    try:
        with signals_deferred():  # a signal pending here is raised on unblocking, inside this try
            tmp = temporary_file(target.parent, f".{target.name}.{run.token}." if run else f".{target.name}.", ".part")
        yield tmp
        os.chmod(tmp, 0o644)
        if not overwrite and target.exists() and not written_by_this_run(target):  # appeared while we worked
            raise InputError("output appeared while writing; pass --overwrite to replace it", source=str(path))
        if run:
            run.record(str(target))
        os.replace(tmp, target)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def written_by_this_run(target: str | os.PathLike) -> bool:
    """Did an earlier attempt of the current distributed run write ``target``? (False in process)"""
    run = current_run.get()
    return run is not None and run.recorded(str(target))


def remove_run_files(folder: str | os.PathLike, token: str) -> int:
    """Remove the temporary files that the killed tasks of a distributed run left in ``folder``; how many."""
    removed = 0
    for leftover in Path(folder).glob(f".*.{token}.*.part"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


def write_hdus(hdus: fits.HDUList, path: str, overwrite: bool = False) -> None:
    """Write an HDU list (with CHECKSUM/DATASUM) atomically to ``path``, or to stdout for ``-``.

    Comments too long for their card are truncated silently: a shortened comment loses nothing a
    reader needs, and the warning would only clutter a cron job's stderr.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long, comment will be truncated")
        if path == STDOUT:
            write_stdout(hdus)
            return
        with atomic_path(path, overwrite) as tmp:
            hdus.writeto(tmp, overwrite=True, checksum=True, output_verify="silentfix")


def write_stdout(hdus: fits.HDUList) -> None:
    """Stream an HDU list to standard output; a closed pipe ends the job quietly."""
    buffer = io.BytesIO()
    hdus.writeto(buffer, checksum=True, output_verify="silentfix")
    try:
        sys.stdout.buffer.write(buffer.getbuffer())
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        silence_closed_stdout()


def silence_closed_stdout() -> None:
    """After the reader of our stdout went away, point stdout at /dev/null so exit is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def output_for(input_path: str, output: str, n_inputs: int, suffix: str = "") -> str:
    """Where the product of one input goes: ``output`` itself, or a file inside the folder ``output``.

    With many inputs, ``output`` must be an existing folder and each product keeps its input's name
    (plus ``suffix`` before the extension), so a cron job over an archive is one call.
    """
    if n_inputs == 1 and not Path(output).is_dir():
        return output
    if output == STDOUT:
        raise InputError("many inputs cannot all go to standard output; give a folder with -o", source="-o")
    if not Path(output).is_dir():
        raise InputError(f"with {n_inputs} inputs, -o must be an existing folder", source=output)
    if input_path == "-":
        raise InputError("standard input has no name to derive an output name from", source=output)
    name = Path(input_path).name
    for ext in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return str(Path(output) / f"{name}{suffix}.fits")
