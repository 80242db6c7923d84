"""Structured logs: both line formats, fields and escaping, quiet defaults, cheap disabled calls."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from metadisk.runtime.logs import configure, event

_NOISY = ("alembic", "uvicorn.error", "uvicorn.access", "aiohttp.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`configure` changes the root logger; give every test the one it found."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in (*_NOISY, "metadisk.test")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def configured(fmt: str, level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    configure(level, fmt=fmt, stream=stream)  # type: ignore[arg-type]
    return stream


def ours() -> logging.Handler:
    """The one handler `configure` installed on the root logger."""
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_metadisk_configured", 0)]
    return handler


def record(created: float = 0.0) -> logging.LogRecord:
    """A record at a fixed time, as a refusal with fields would log it."""
    entry = logging.LogRecord(
        "metadisk.farmer.pieces", logging.WARNING, __file__, 1, "refused", None, None
    )
    entry.created = created
    entry.msecs = 123.0
    entry.fields = {"code": "insufficient-storage", "piece": b"\xab\x12", "status": 507}
    return entry


def test_text_line_is_utc_time_level_logger_message_and_fields() -> None:
    configured("text")
    handler = ours()
    line = handler.format(record(created=1_796_415_455.0))  # 2026-12-04T20:17:35 UTC
    assert line == (
        "2026-12-04T20:17:35.123Z WARNING metadisk.farmer.pieces refused "
        "code=insufficient-storage piece=ab12 status=507"
    )


def test_json_line_has_ts_level_logger_msg_and_every_field() -> None:
    configured("json")
    handler = ours()
    entry = json.loads(handler.format(record(created=1_796_415_455.0)))
    assert entry == {
        "ts": 1_796_415_455.0,
        "level": "warning",
        "logger": "metadisk.farmer.pieces",
        "msg": "refused",
        "code": "insufficient-storage",
        "piece": "ab12",
        "status": 507,
    }


def test_event_reaches_the_stream_with_fields() -> None:
    stream = configured("text")
    event(logging.getLogger("metadisk.test"), logging.INFO, "stored", size=5, fresh=True, x=None)
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO metadisk.test stored "
        r"size=5 fresh=true x=null\n",
        line,
    )


def test_text_values_with_spaces_quotes_or_newlines_are_quoted_and_escaped() -> None:
    stream = configured("text")
    event(
        logging.getLogger("metadisk.test"),
        logging.INFO,
        "odd",
        space="a b",
        quote='say "hi"',
        newline="one\ntwo",
        equals="k=v",
        empty="",
        plain="no-quotes_needed.1",
        seconds=0.25,
    )
    fields = stream.getvalue().split(" odd ", 1)[1]
    assert fields == (
        'space="a b" quote="say \\"hi\\"" newline="one\\ntwo" equals="k=v" empty="" '
        "plain=no-quotes_needed.1 seconds=0.25\n"
    )


def test_json_lines_escape_and_render_every_value_type() -> None:
    stream = configured("json")
    event(
        logging.getLogger("metadisk.test"),
        logging.INFO,
        'say "hi"',
        text="one\ntwo",
        raw=b"\x00\xff",
        count=3,
        ratio=0.5,
        ok=False,
        none=None,
        level="clashes",
        nan=float("nan"),
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == 'say "hi"'
    assert entry["level"] == "info"  # the record's level wins; the field keeps its value
    assert entry["_level"] == "clashes"
    assert (entry["text"], entry["raw"], entry["count"], entry["ratio"]) == (
        "one\ntwo",
        "00ff",
        3,
        0.5,
    )
    assert (entry["ok"], entry["none"], entry["nan"]) == (False, None, "nan")
    assert isinstance(entry["ts"], float) and round(entry["ts"], 3) == entry["ts"]
    assert "exc" not in entry


def test_exceptions_are_logged_with_their_traceback() -> None:
    stream = configured("json")
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        logging.getLogger("metadisk.test").exception("cycle failed")
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "cycle failed"
    assert "Traceback" in entry["exc"] and "RuntimeError: disk on fire" in entry["exc"]

    stream = configured("text")
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        logging.getLogger("metadisk.test").exception("cycle failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith(" ERROR metadisk.test cycle failed")
    assert rest[0].startswith("Traceback") and rest[-1] == "RuntimeError: disk on fire"


def test_record_names_the_caller_not_event() -> None:
    seen: list[logging.LogRecord] = []
    logger = logging.getLogger("metadisk.test")
    handler = _Collect(seen)
    logger.addHandler(handler)
    try:
        logger.setLevel(logging.INFO)
        event(logger, logging.INFO, "here")
    finally:
        logger.removeHandler(handler)
    assert seen[0].funcName == "test_record_names_the_caller_not_event"


def test_disabled_event_builds_nothing() -> None:
    renders = 0

    class Costly:
        def __str__(self) -> str:
            nonlocal renders
            renders += 1
            return "costly"

    stream = configured("text", level="warning")
    logger = logging.getLogger("metadisk.test")
    event(logger, logging.INFO, "skipped", value=Costly())  # type: ignore[arg-type]
    assert stream.getvalue() == ""
    assert renders == 0
    event(logger, logging.WARNING, "kept", value=Costly())  # type: ignore[arg-type]
    assert stream.getvalue().endswith(" kept value=costly\n")
    assert renders == 1


def test_configure_replaces_its_own_handler_keeps_others_and_defaults_to_stderr() -> None:
    host = logging.NullHandler()  # a host's own handler, as a test runner's
    logging.getLogger().addHandler(host)
    configure("info")
    first = ours()
    configure("info", fmt="json")
    handler = ours()  # exactly one of ours: the earlier one is gone
    assert handler is not first and first not in logging.getLogger().handlers
    assert host in logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr


def test_noisy_loggers_are_quiet_unless_debugging() -> None:
    configure("info")
    assert all(logging.getLogger(name).level == logging.WARNING for name in _NOISY)
    stream = configured("text", level="info")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("aiohttp.access").info("127.0.0.1 GET /v1/status 200")
    logging.getLogger("uvicorn.error").warning("worker timeout")
    assert stream.getvalue().count("\n") == 1 and "worker timeout" in stream.getvalue()

    configure("DEBUG")
    assert all(logging.getLogger(name).level == logging.NOTSET for name in _NOISY)
    assert logging.getLogger().level == logging.DEBUG


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure("loud")
    with pytest.raises(ValueError, match="unknown log format"):
        configure("info", fmt="xml")  # type: ignore[arg-type]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__()
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record)
