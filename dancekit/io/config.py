"""Typed, validated instrument configs: YAML in, frozen dataclasses out.

A config is named (``c2pu``, ``naomi``, ``lamost``: the files shipped in ``dancekit/configs``) or
given as a path. YAML is read with ``yaml.safe_load``'s loader only, from UTF-8 text; a key given
twice in one mapping (at any depth) is refused with both lines, where YAML would silently keep the
last. A config may start from another one, ``base: lamost`` (a shipped name, or a path relative to
the config's folder), and give only what differs: mappings are merged key by key, lists and values
replace the base's. A section that declares a variant key (``Detector.VARIANT``: its ``layout``)
does not inherit the base's keys of another variant when it changes that key.

Every key is checked against the dataclass schema of its kind, and *every* problem is reported in
one ``ConfigError`` (unknown keys, missing keys, wrong types, values out of range), each named by
its dotted key. ``--set section.key=value`` overrides any value of the schema.
"""

from __future__ import annotations

import dataclasses
import difflib
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
MAX_BASE_DEPTH = 8  # base: chains longer than this are refused (and cycles)


def shipped_configs() -> list[str]:
    """Names of the instrument configs shipped with dancekit."""
    return sorted(p.name[:-5] for p in resources.files(CONFIG_PACKAGE).iterdir() if p.name.endswith(".yaml"))


# ------------------------------------------------------------------ reading one file
def _read_text(name_or_path: str, relative_to: Path | None = None) -> tuple[str, str, Path | None]:
    """(text, name to report it by, folder of the file or None for a shipped config)."""
    if name_or_path in shipped_configs():
        raw = resources.files(CONFIG_PACKAGE).joinpath(f"{name_or_path}.yaml").read_bytes()
        source, folder = f"{name_or_path}.yaml", None
    else:
        path = Path(name_or_path)
        if relative_to is not None and not path.is_absolute():
            path = relative_to / path
        if not path.is_file():
            where = f"{path} is not a file" if path.exists() else "no such file"
            raise ConfigError(f"no such config ({where}; shipped: {', '.join(shipped_configs())}; or give a YAML path)",
                              source=str(name_or_path))
        source, folder = str(path), path.parent
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot be read ({exc.strerror or exc})", source=source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = " (it looks like a FITS file)" if raw.startswith(b"SIMPLE  =") else ""
        raise ConfigError(f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}){hint}; "
                          "a config is a YAML text file", source=source) from None
    return text, source, folder


def _parse(text: str, source: str) -> Any:
    """``yaml.safe_load`` of ``text``, refusing keys given twice in one mapping."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, "", source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"malformed YAML{at}: {getattr(exc, 'problem', None) or exc}", source=source) from None
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, prefix: str, source: str) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                _refuse_duplicate_keys(value_node, prefix, source)
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(f"duplicated key '{prefix}{key}' at line {line} (first at line {first_line[key]}); "
                                  "YAML would silently keep only the last: remove one", source=source)
            first_line[key] = line
            _refuse_duplicate_keys(value_node, f"{prefix}{key}.", source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{prefix[:-1]}[{i}].", source)


def read_yaml(name_or_path: str, _relative_to: Path | None = None, _seen: tuple[str, ...] = ()) -> tuple[dict, str]:
    """The mapping of a config, with its ``base:`` chain merged in, and the name to report it by."""
    text, source, folder = _read_text(name_or_path, _relative_to)
    data = _parse(text, source)
    if not isinstance(data, dict):
        raise ConfigError("a config must be a YAML mapping of sections", source=source)
    if "base" not in data:
        return data, source
    base_name = data.pop("base")
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"'base' must name a shipped config ({', '.join(shipped_configs())}) or a YAML path, got {base_name!r}",
                          source=source)
    if source in _seen or len(_seen) >= MAX_BASE_DEPTH:
        raise ConfigError(f"'base' chain loops or is too deep: {' -> '.join((*_seen, source))}", source=source)
    try:
        base, _ = read_yaml(base_name, folder, (*_seen, source))
    except ConfigError as exc:
        raise ConfigError(f"its base '{base_name}': {exc}", source=source) from None
    kind = data.get("kind", base.get("kind"))
    return merge(base, data, _schema_of(kind)), source


def _schema_of(kind: Any) -> type | None:
    from dancekit.io.config_schema import SCHEMAS

    return SCHEMAS.get(kind) if isinstance(kind, str) else None


# ------------------------------------------------------------------ merging and overriding
def merge(base: dict, override: dict, schema: type | None = None) -> dict:
    """``override`` on top of ``base``: mappings merged key by key, anything else replaced.

    Where ``schema`` (a dataclass) declares ``VARIANT = (key, keys)`` and ``override`` sets
    ``key`` to another value than the base's (or the schema default), the base's ``keys`` are
    not inherited: they describe the other variant (e.g. the quadrant geometry of a detector
    whose ``layout`` becomes ``sections``)."""
    result = json.loads(json.dumps(base))
    hints = _field_types(schema)
    variant = getattr(schema, "VARIANT", None)
    if variant and variant[0] in override:
        key, keys = variant
        default = _default(schema, key)
        if override[key] != base.get(key, default):
            for name in keys:
                if name not in override:
                    result.pop(name, None)
    for key, value in override.items():
        sub = _dataclass_of(hints.get(key))
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value, sub)
        else:
            result[key] = json.loads(json.dumps(value))
    return result


def _field_types(schema: type | None) -> dict:
    return typing.get_type_hints(schema) if schema is not None and dataclasses.is_dataclass(schema) else {}


def _default(schema: type, name: str) -> Any:
    for f in dataclasses.fields(schema):
        if f.name == name:
            return None if f.default is dataclasses.MISSING else f.default
    return None


def _dataclass_of(kind: Any) -> type | None:
    """The dataclass a field holds (directly or as ``X | None``), else None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next((o for o in typing.get_args(kind) if o is not type(None)), None)
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


def override_tree(overrides: list[str], schema: type | None) -> dict:
    """``section.key=value`` items (values parsed as YAML) as a nested mapping, each key checked
    against ``schema``'s fields."""
    tree: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form section.key=value", source="--set")
        node, kind = tree, schema
        parts = key.split(".")
        for depth, part in enumerate(parts):
            fields = _field_types(kind)
            if kind is not None and part not in fields:
                where = f"no section '{'.'.join(parts[:depth])}' with it; " if depth else ""
                raise ConfigError(f"unknown key '{key}' ({where}allowed here: {', '.join(fields)})", source="--set")
            if depth < len(parts) - 1:
                kind = _dataclass_of(fields.get(part))
                if kind is None and schema is not None:
                    raise ConfigError(f"unknown key '{key}' ('{'.'.join(parts[:depth + 1])}' is a value, not a section)",
                                      source="--set")
                node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"value of '{key}' is not valid YAML: {text!r}", source="--set") from None
    return tree


# ------------------------------------------------------------------ validating
def build(schema: type, data: Any, source: str, prefix: str = "") -> Any:
    """Build the dataclass ``schema`` from a mapping; raise one ConfigError listing every problem
    (unknown, missing and mistyped keys, values out of range), each named by its dotted key."""
    problems: list[str] = []
    obj = _build(schema, data, prefix, problems)
    if problems:
        message = problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems)
        raise ConfigError(message, source=source)
    return obj


def _build(schema: type, data: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"'{prefix[:-1] or 'config'}' must be a mapping, got {_kind(data)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(schema)}
    before = len(problems)
    required = [n for n, f in fields.items() if n not in data
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    misspelt = set()
    for name in sorted(set(data) - set(fields)):
        close = difflib.get_close_matches(str(name), [n for n in fields if n not in data], n=1, cutoff=0.75)
        guess = f"did you mean '{close[0]}'? " if close else ""
        misspelt.update(close)
        problems.append(f"unknown key '{prefix}{name}' ({guess}allowed here: {', '.join(fields)})")
    hints = typing.get_type_hints(schema)
    values = {}
    for name in fields:
        key = f"{prefix}{name}"
        if name not in data:
            if name in required and name not in misspelt:
                problems.append(f"missing key '{key}'")
            continue
        values[name] = _coerce(hints[name], data[name], key, problems)
    if len(problems) > before:
        return None  # this section is incomplete: its range checks cannot run
    from dancekit.io.config_checks import collecting_problems

    with collecting_problems() as found:
        try:
            obj = schema(**values)
        except (ArithmeticError, AttributeError, TypeError):  # a consequence of a problem already found
            if not found:
                raise
            obj = None
    # a check may name keys relative to its section ('@.data'): put the section's place
    problems.extend(m.replace("@.", prefix) for m in found)
    return obj


def _coerce(kind: Any, value: Any, key: str, problems: list[str]) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(o for o in options if o is not type(None))
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, f"{key}.", problems)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"'{key}' must be a list, got {_kind(value)}")
            return None
        item = typing.get_args(kind)[0]
        return tuple(_coerce(item, v, f"{key}[{i}]", problems) for i, v in enumerate(value))
    expected = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    if kind is float:
        value = _yaml11_float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in (bool, str):
        ok = isinstance(value, kind)
    else:
        raise TypeError(f"unsupported config field type {kind!r} for {key}")
    if not ok:
        problems.append(f"'{key}' must be {expected[kind]}, got {_kind(value)} {value!r}")
        return None
    return value


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
    """Read (with its ``base:`` chain), override and validate a config of the kind ``schema``."""
    data, source = read_yaml(name_or_path)
    expected = getattr(schema, "KIND", None)
    if expected and data.get("kind") != expected:
        found = f"is a '{data['kind']}' config" if "kind" in data else "has no 'kind'"
        raise ConfigError(f"{found}, this command needs a '{expected}' config "
                          f"(e.g. {getattr(schema, 'DEFAULT', '')}, or 'base: {getattr(schema, 'DEFAULT', '')}' and what differs)",
                          source=source)
    if overrides:
        data = merge(data, override_tree(list(overrides), schema), schema)
    return build(schema, data, source)
