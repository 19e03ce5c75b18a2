"""Typed, validated instrument configs: YAML in, frozen dataclasses out.

A config is named (``c2pu``, ``naomi``, ``lamost``: the files shipped in ``dancekit/configs``) or
given as a path. YAML is read with ``yaml.safe_load`` only. Every key is checked against the
dataclass schema of its kind: an unknown key, a missing key or a wrong type is a ``ConfigError``
that names the dotted key and the file. ``--set section.key=value`` overrides any value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dancekit.errors import ConfigError

CONFIG_PACKAGE = "dancekit.configs"


def shipped_configs() -> list[str]:
    """Names of the instrument configs shipped with dancekit."""
    return sorted(p.name[:-5] for p in resources.files(CONFIG_PACKAGE).iterdir() if p.name.endswith(".yaml"))


def read_yaml(name_or_path: str) -> tuple[dict, str]:
    """The raw mapping of a config and the name to report it by."""
    path = Path(name_or_path)
    if name_or_path in shipped_configs():
        text = resources.files(CONFIG_PACKAGE).joinpath(f"{name_or_path}.yaml").read_text()
        source = f"{name_or_path}.yaml"
    elif path.is_file():
        text, source = path.read_text(), str(path)
    else:
        raise ConfigError(f"no such config (shipped: {', '.join(shipped_configs())}; or give a YAML path)", source=name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"malformed YAML{at}: {getattr(exc, 'problem', exc)}", source=source) from None
    if not isinstance(data, dict):
        raise ConfigError("a config must be a YAML mapping of sections", source=source)
    return data, source


def apply_overrides(data: dict, overrides: list[str], source: str) -> dict:
    """Return a copy of ``data`` with ``section.key=value`` overrides applied (values parsed as YAML)."""
    result = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form section.key=value", source="--set")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"unknown key '{key}' (no section '{part}')", source=source)
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown key '{key}'", source=source)
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"value of '{key}' is not valid YAML: {text!r}", source="--set") from None
    return result


def build(schema: type, data: Any, source: str, prefix: str = "") -> Any:
    """Build the dataclass ``schema`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix or 'config'}' must be a mapping, got {_kind(data)}", source=source)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"'{prefix}{unknown[0]}'"
        raise ConfigError(f"unknown key {where} (allowed here: {', '.join(fields)})", source=source)
    hints = typing.get_type_hints(schema)
    values = {}
    for name, field in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key '{key}'", source=source)
            continue
        values[name] = _coerce(hints[name], data[name], key, source)
    try:
        obj = schema(**values)
    except ValueError as exc:  # __post_init__ range checks
        raise ConfigError(str(exc), source=source) from None
    return obj


def _coerce(kind: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(o for o in options if o is not type(None))
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return build(kind, value, source, f"{key}.")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"'{key}' must be a list, got {_kind(value)}", source=source)
        item = typing.get_args(kind)[0]
        return tuple(_coerce(item, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if kind is float:
        value = _yaml11_float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {_kind(value)} {value!r}", source=source)
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {_kind(value)} {value!r}", source=source)
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {_kind(value)} {value!r}", source=source)
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {_kind(value)} {value!r}", source=source)
        return value
    raise TypeError(f"unsupported config field type {kind!r} for {key}")


def _yaml11_float(value: Any) -> Any:
    """YAML 1.1 reads ``5e-7`` (no dot) as a string; accept it where a number is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def to_dict(config: Any) -> dict:
    """The plain mapping of a config object (tuples as lists), ready for YAML, JSON or a checkpoint."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any) -> str:
    """A short, stable hash of a resolved config, recorded in every product's header."""
    text = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(name_or_path: str, schema: type, overrides: list[str] | None = None) -> Any:
    """Read, override and validate a config of the kind described by ``schema``."""
    data, source = read_yaml(name_or_path)
    expected = getattr(schema, "KIND", None)
    if expected and data.get("kind") != expected:
        raise ConfigError(
            f"is a '{data.get('kind')}' config, this command needs a '{expected}' config "
            f"(e.g. {getattr(schema, 'DEFAULT', '')})",
            source=source,
        )
    data = apply_overrides(data, list(overrides or []), source)
    return build(schema, data, source)
