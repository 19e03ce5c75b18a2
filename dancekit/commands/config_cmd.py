"""``dancekit config``: list, show and check instrument configs."""


import sys
from typing import Annotated

import typer
import yaml

from dancekit.commands import options as opt
from dancekit.commands.runtime import cli_command
from dancekit.errors import ConfigError
from dancekit.io.config import config_hash, load_config, read_yaml, shipped_configs, to_dict
from dancekit.io.config_schema import SCHEMAS

app = typer.Typer(help="List, show and check instrument configs.", no_args_is_help=True, rich_markup_mode="markdown")

Name = Annotated[str, typer.Argument(help="A shipped config name (c2pu, naomi, lamost) or a YAML path.")]


def resolve(name: str, overrides: list[str] | None):
    """Load a config of whatever kind its ``kind`` key declares."""
    data, source = read_yaml(name)
    kind = data.get("kind")
    if kind not in SCHEMAS:
        raise ConfigError(f"key 'kind' must be one of {', '.join(SCHEMAS)}, got {kind!r}", source=source)
    return load_config(name, SCHEMAS[kind], overrides)


@app.command("list")
@cli_command
def list_configs():
    """List the configs shipped with dancekit.

    Example: dancekit config list
    """
    for name in shipped_configs():
        config = resolve(name, None)
        sys.stdout.write(f"{name}\t{config.kind}\t{config.instrument}\n")


@app.command("show")
@cli_command
def show(name: Name, overrides: opt.Set = None, as_json: opt.Json = False):
    """Print a resolved config (after --set overrides) as YAML, with its hash.

    Example: dancekit config show c2pu --set optics.wavelength=5e-7
    """
    config = resolve(name, overrides)
    if as_json:
        opt.print_json({"config": to_dict(config), "hash": config_hash(config)})
        return
    sys.stdout.write(f"# resolved {name}, hash {config_hash(config)}\n")
    sys.stdout.write(yaml.safe_dump(to_dict(config), sort_keys=False))


@app.command("check")
@cli_command
def check(names: Annotated[list[str], typer.Argument(help="Config names or YAML paths.")]):
    """Validate configs: print 'NAME: valid ...' for each good one (exit 0 when all are); for a bad
    one, one line naming every problem at once (unknown, missing and mistyped keys, values out of
    range) and exit 2.

    Example: dancekit config check my_camera.yaml
    """
    from dancekit.commands.runtime import for_each_input

    def one(name: str) -> None:
        config = resolve(name, None)
        sys.stdout.write(f"{name}: valid {config.kind} config, instrument {config.instrument}, hash {config_hash(config)}\n")

    return for_each_input(names, one)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")
