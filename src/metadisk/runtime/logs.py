"""Structured logs, quiet by default: one handler on the root logger, text or JSON lines.

A process calls `configure` once at start. Code logs events with fields rather than sentences
with values pasted in, so lines can be grepped and shipped::

    event(log, logging.WARNING, "refused", code="insufficient-storage", piece=piece_id, status=507)

renders as ``2026-12-04T20:17:35.123Z WARNING metadisk.farmer.pieces refused
code=insufficient-storage piece=ab12... status=507`` in text and as one JSON object in JSON.

Fields are for codes, ids, sizes, counts and durations. Never pass secrets (keys, tokens,
passwords, signatures) or request headers and bodies: nothing here logs those, and nothing
should. Per-request lines come only from the access log (`ACCESS_LOGGER`), which the HTTP
middlewares in `metadisk.runtime.metrics` write when it is switched on.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from typing import Literal, TextIO

__all__ = ["ACCESS_LOGGER", "FIELDS_ATTR", "Field", "configure", "event"]

# One line per HTTP request (method, route template, status, seconds, bytes in/out, role).
ACCESS_LOGGER = "metadisk.access"

# The LogRecord attribute holding an event's fields: one attribute, so that field names never
# clash with LogRecord's own (`name`, `msg`, `args`, ...).
FIELDS_ATTR = "fields"

Field = str | int | float | bool | bytes | None

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Loggers that talk too much for production: a line per migration check (alembic), uvicorn's
# startup banner, and the servers' own access logs (ours replaces them). Heard again at debug.
_NOISY = ("alembic", "uvicorn.error", "uvicorn.access", "aiohttp.access")

# A logfmt value that needs no quotes: no whitespace, quote, backslash or `=`.
_BARE = re.compile(r'[^\s"=\\]+')

# The keys a JSON line starts with; a field of the same name is written as `_<name>`.
_JSON_KEYS = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})


_OURS = "_metadisk_configured"  # marks the handler `configure` installed


def configure(
    level: str = "info", *, fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> None:
    """Send every log record at `level` or above to `stream` (stderr), replacing the handler an
    earlier call installed (and only that: a host's own handlers, such as a test runner's, stay).

    Below debug, the noisy third-party loggers are held at warning. uvicorn sets its loggers'
    levels itself when given a `log_level` or its default `log_config`: run it with
    ``log_config=None`` and no `log_level` so that these settings stand.
    """
    try:
        threshold = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}"
        ) from None
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}; expected text or json")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OURS, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    quiet = logging.WARNING if threshold > logging.DEBUG else logging.NOTSET
    for name in _NOISY:
        logging.getLogger(name).setLevel(quiet)


def event(logger: logging.Logger, level: int, message: str, /, **fields: Field) -> None:
    """Log `message` with `fields` attached; nothing is built when `level` is disabled.

    Values are str, int, float, bool or None; bytes are rendered as hex. Fields carry codes, ids
    and sizes, never secrets, headers or bodies.
    """
    if logger.isEnabledFor(level):
        # stacklevel 2: the record names the caller's file and line, not this function's
        logger.log(level, message, extra={FIELDS_ATTR: fields}, stacklevel=2)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, FIELDS_ATTR, None)
    return fields if isinstance(fields, dict) else {}


def _utc(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _logfmt(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = value.hex() if isinstance(value, bytes) else str(value)
    if _BARE.fullmatch(text) and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, with quotes and newlines escaped


def _plain(value: object) -> object:
    """A value `json.dumps` writes as valid JSON."""
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger> <message> key=value ...``, traceback on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_utc(record), record.levelname, record.name, record.getMessage()]
        parts.extend(f"{key}={_logfmt(value)}" for key, value in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the fields, then exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry[f"_{key}" if key in _JSON_KEYS else key] = _plain(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry)
