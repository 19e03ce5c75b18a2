"""One execution layer for the per-input work of every many-input command.

``map_inputs(items, process, scheduler)`` runs ``process(item)`` for each item and returns the
results in input order. Without ``--scheduler`` it runs them in turn in this process (as always:
no dask import, no start-up cost). With ``--scheduler local[:N]`` it starts a Dask
``LocalCluster`` of N single-threaded worker processes and stops it at the end; with
``--scheduler tcp://HOST:PORT`` it uses an existing Dask scheduler and the workers the user started
(``dask worker``, dask-jobqueue). Either way the contract of the command line holds: a bad input
is one line ``error: <input>: ...`` and the others are still done, results come back in input
order, outputs are written atomically by the workers on the shared filesystem, Ctrl-C cancels what
is outstanding. The Dask side lives in :mod:`dancekit.commands.cluster`, imported only then.

Simulators take ``--count N``: N products, product i seeded with ``SeedSequence(seed).spawn(N)[i]``
(whose stream depends on ``seed`` and ``i`` only), so a set is bit-identical whatever runs it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from dancekit.commands.runtime import process_in_turn, report_failures
from dancekit.errors import InputError, ParameterError

#: a product of --count i is named STEM_0000.fits ... (at least 4 digits, sorted names sort as indices)
INDEX_DIGITS = 4


@dataclass(frozen=True)
class Scheduler:
    """Where the work runs: ``workers`` local processes, or the Dask scheduler at ``address``."""

    text: str
    workers: Optional[int] = None
    address: Optional[str] = None


@dataclass
class Mapped:
    """What a run gave: the results of the inputs that worked (input order), the names that failed."""

    results: list = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    code: int = 0


def parse_scheduler(text: Optional[str]) -> Optional[Scheduler]:
    """``None`` (in process), ``local``, ``local:N`` or ``tcp://HOST:PORT``."""
    if text is None:
        return None
    text = text.strip()
    match = re.fullmatch(r"local(?::(\d+))?", text)
    if match:
        workers = int(match.group(1)) if match.group(1) else len(os.sched_getaffinity(0))
        if workers < 1:
            raise ParameterError(f"'{text}': a local cluster needs at least 1 worker", source="--scheduler")
        return Scheduler(text, workers=workers)
    match = re.fullmatch(r"tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", text)
    if match and 0 < int(match.group(2)) < 65536:
        return Scheduler(text, address=text)
    raise ParameterError(f"'{text}' is not local, local:N or tcp://HOST:PORT (the address `dask scheduler` prints)",
                         source="--scheduler")


def map_inputs(items: Sequence, process: Callable[[Any], Any], scheduler: Optional[str] = None, *,
               names: Optional[Sequence[str]] = None, output: Optional[str] = None) -> Mapped:
    """Run ``process(item)`` for every item, in process or on a Dask cluster; results in input order.

    ``names`` are what the user calls each item (default: the items, which are then paths).
    ``output`` is the file or folder the workers write into (None when the command itself writes
    the results after the run): on a cluster it must not be standard output, and the temporary
    files of workers that died are removed from its folder at the end.
    """
    items = list(items)
    names = [str(n) for n in (items if names is None else names)]
    spec = parse_scheduler(scheduler)
    if spec is None or not items:
        results, failed = process_in_turn(items, process, names, show=True)
        return Mapped(results, failed, report_failures(len(failed), len(items)))
    if "-" in names:
        raise ParameterError("standard input cannot be sent to Dask workers; give the inputs as files", source="--scheduler")
    if output == "-":
        raise ParameterError("Dask workers cannot write to standard output; give a file or folder with -o", source="--scheduler")
    from dancekit.commands.cluster import run_on_cluster

    folder = None if output is None else (Path(output) if Path(output).is_dir() else Path(output).parent)
    results, failed = run_on_cluster(items, process, names, spec, folder)
    return Mapped(results, failed, report_failures(len(failed), len(items)))


def make_products(make: Callable[[tuple], dict], output: str, stem: str, count: Optional[int], seed: int,
                  overwrite: bool, scheduler: Optional[str], as_json: bool) -> int:
    """A simulator's products: ``make((target, SeedSequence, index))`` once for -o with
    ``SeedSequence(seed)`` and index None, or, with --count N, for FOLDER/STEM_0000.fits ... with
    ``SeedSequence(seed).spawn(N)[i]``; prints the --json summary; returns the exit code."""
    import numpy as np

    from dancekit.commands.options import print_json
    from dancekit.commands.runtime import command_name

    if count is None:
        jobs = [(output, np.random.SeedSequence(seed), None)]
    else:
        targets = numbered_products(output, stem, count, overwrite)
        jobs = [(target, sequence, i) for i, (target, sequence) in enumerate(zip(targets, np.random.SeedSequence(seed).spawn(count)))]
    ran = map_inputs(jobs, make, scheduler, names=[job[0] for job in jobs], output=output)
    if as_json and count is not None:
        print_json({"command": command_name(), "output": output, "count": count, "seed": seed,
                    "results": ran.results, "failed": ran.failed})
    elif as_json and ran.results:
        print_json(ran.results[0])
    return ran.code


def numbered_products(output: str, stem: str, count: int, overwrite: bool) -> list[str]:
    """The --count outputs FOLDER/STEM_0000.fits ...: the folder is made (its parent must exist)
    and every target is checked before any work, so a set is never refused half-way."""
    from dancekit.io.fits_out import check_output

    if count < 1:
        raise ParameterError(f"need at least 1 product, got {count}", source="--count")
    folder = product_folder(output)
    digits = max(INDEX_DIGITS, len(str(count - 1)))
    targets = [str(folder / f"{stem}_{i:0{digits}d}.fits") for i in range(count)]
    if folder.is_dir():
        for target in targets:
            check_output(target, overwrite)
    folder.mkdir(exist_ok=True)
    return targets


def product_index(index: Optional[int]) -> dict:
    """The provenance card of product ``index`` of a --count set (none for a single product)."""
    if index is None:
        return {}
    return {"DKINDEX": (int(index), "product of --count; its seed: SeedSequence(DKSEED).spawn(N)[DKINDEX]")}


def product_folder(output: str) -> Path:
    """The folder of a set of products (its parent must exist; the caller makes it)."""
    if output == "-":
        raise ParameterError("a set of products goes to a folder, not to standard output", source="-o")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise InputError("exists and is not a folder (a set of products needs one)", source=output)
    if not folder.parent.exists():
        raise InputError(f"parent folder '{folder.parent}' does not exist", source=output)
    return folder
