"""The ``dancekit`` command line: registers the subcommands (each one thin, in ``commands/``)."""

from __future__ import annotations

from typing import Annotated

import typer

import importlib
import pkgutil

from dancekit import __version__
from dancekit import commands

app = typer.Typer(
    name="dancekit",
    help="Turbulence-limited imaging and detector calibration, as composable FITS commands.\n\n"
    "Every command reads FITS paths ('-' = stdin) and writes with -o (or '-' = stdout), "
    "so they chain in pipelines. Exit codes: 0 ok, 2 bad input or option, 1 internal error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dancekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Turbulence-limited imaging and detector calibration, as composable FITS commands."""


def _register_commands() -> None:
    """Every module of ``dancekit/commands`` with a ``register(app)`` function adds its command(s)."""
    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        register = getattr(importlib.import_module(f"dancekit.commands.{module}"), "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    app(prog_name="dancekit")
