"""Settings trees (the shape of a role's TOML config) merged and written as TOML."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two settings trees; `extra` wins."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def to_toml(settings: Mapping[str, Any]) -> str:
    """Settings (nested dicts of str, int, float, bool) as TOML."""
    lines: list[str] = []
    _toml_table(settings, [], lines)
    return "\n".join(lines) + "\n"


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and scalars:
        lines.append("[" + ".".join(json.dumps(part) for part in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _toml_table(value, [*path, key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
