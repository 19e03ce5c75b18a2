"""Options shared by the subcommands, declared once so that every command spells them alike."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from dancekit.errors import ParameterError


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


Inputs = Annotated[list[str], typer.Argument(help="Input FITS files; '-' reads FITS from standard input.", show_default=False)]
VideoInputs = Annotated[list[str], typer.Argument(help="Video cube(s) (T, H, W), one output each; or single-frame images forming one video, in order. '-' = stdin.", show_default=False)]
Output = Annotated[str, typer.Option("--output", "-o", help="Output FITS file, a folder for many inputs, or '-' for standard output.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
Json = Annotated[bool, typer.Option("--json", help="Print a one-object JSON summary on stdout.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Seed of every random step (recorded in the output header).")]
Config = Annotated[str, typer.Option("--config", "-c", help="Instrument config: a shipped name (c2pu, naomi, lamost) or a YAML path.")]
Set = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config value, e.g. --set optics.wavelength=5e-7 (repeatable).", show_default=False),
]
Device = Annotated[DeviceChoice, typer.Option("--device", help="Where torch runs: cuda when present with auto.")]


def print_json(summary: dict[str, Any]) -> None:
    """The ``--json`` summary: one object, one line, on stdout."""
    sys.stdout.write(json.dumps(summary, default=_plain) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def check_json_with_output(as_json: bool, output: str) -> None:
    """stdout carries FITS or JSON, never both."""
    if as_json and output == "-":
        raise ParameterError("--json and -o - both want standard output; write the FITS to a file", source="--json")


def parse_range(text: str | None, length: int, what: str = "frames") -> tuple[int, int]:
    """``START:STOP`` (Python slice, either side optional) checked against ``length``."""
    if not text:
        return 0, length
    start_text, sep, stop_text = text.partition(":")
    try:
        start = int(start_text) if start_text else 0
        stop = int(stop_text) if sep and stop_text else (length if sep else start + 1)
    except ValueError:
        raise ParameterError(f"'{text}' is not START:STOP", source=f"--{what}") from None
    start, stop = (start + length if start < 0 else start), (stop + length if stop < 0 else stop)
    if not 0 <= start < stop <= length:
        raise ParameterError(f"{text} selects no {what} of the {length} available", source=f"--{what}")
    return start, stop


Scheduler = Annotated[
    Optional[str],
    typer.Option("--scheduler", help="Run the inputs on Dask: local[:N] (N worker processes started here) or "
                 "tcp://HOST:PORT (a running `dask scheduler`). Default: in this process.", show_default=False),
]
Count = Annotated[
    Optional[int],
    typer.Option("--count", min=1, help="Make N products into the folder -o, product i seeded with "
                 "SeedSequence(--seed).spawn(N)[i] (the same set on any scheduler).", show_default=False),
]
