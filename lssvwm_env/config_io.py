"""Dataclass configs <-> JSON-able dicts, with errors that name the bad field."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"config field {where}: expected an object, got {value!r}")
        return dataclass_from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"config field {where}: {value!r} does not match {annotation}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {where}: expected a list, got {value!r}")
        if origin is tuple:
            return tuple(value)
        inner = args[0] if args else Any
        return [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"config field {where}: expected {annotation.__name__}, got {value!r}")
    return value


def dataclass_from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass `cls` from a dict; unknown or ill-typed fields raise ConfigError naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"config{' ' + where if where else ''}: unknown field(s) {sorted(unknown)}")
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}".lstrip(".")) for name, value in data.items()}
    return cls(**kwargs)


def set_by_path(config: Any, dotted: str, raw: str, full_path: str | None = None) -> Any:
    """Return a copy of `config` with field `a.b.c` set from the string `raw` (parsed as JSON when it
    parses, else kept as a string). Used by `--set a.b.c=value` overrides; errors name the whole path."""
    full_path = full_path or dotted
    import json
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(config) or head not in {f.name for f in dataclasses.fields(config)}:
        raise ConfigError(f"unknown config field {full_path!r}")
    if rest:
        return dataclasses.replace(config, **{head: set_by_path(getattr(config, head), rest, raw, full_path)})
    annotation = typing.get_type_hints(type(config))[head]
    return dataclasses.replace(config, **{head: _convert(value, annotation, full_path)})


def diff_configs(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the fields where two config dicts differ."""
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_configs(va, vb, path + ".")
        elif va != vb:
            out.append(f"{path}: {va!r} != {vb!r}")
    return out
