"""The ``dancekit`` command line: registers the subcommands (each one thin, in ``commands/``)."""

from __future__ import annotations

from typing import Annotated

import typer

from dancekit import __version__
from dancekit.commands import average, config_cmd

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


app.command("average")(average.average)
app.add_typer(config_cmd.app, name="config")


def main() -> None:
    app(prog_name="dancekit")
