"""The farmer's recent warnings and errors, kept in memory for the dashboard."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from metadisk.runtime.logs import FIELDS_ATTR

KEEP = 50
MAX_TEXT = 500  # characters of one message kept


@dataclass(frozen=True, slots=True)
class Problem:
    """One warning or error log record, as the dashboard lists it."""

    at: float  # unix time
    level: str
    logger: str
    message: str


class RecentProblems(logging.Handler):
    """A ring of the last `keep` records at WARNING or above; attach to a logger to fill it.

    It formats nothing it does not keep, and only message and fields: the records' fields carry
    codes, ids and sizes, never secrets (runtime/logs.py).
    """

    def __init__(self, keep: int = KEEP) -> None:
        super().__init__(logging.WARNING)
        self._ring: deque[Problem] = deque(maxlen=keep)
        self._attached: list[logging.Logger] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            fields = getattr(record, FIELDS_ATTR, None)
            if isinstance(fields, dict) and fields:
                text += " " + " ".join(f"{key}={_plain(value)}" for key, value in fields.items())
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        except Exception:  # a record that cannot be formatted is still a problem worth listing
            text = str(record.msg)
        self._ring.append(Problem(record.created, record.levelname, record.name, text[:MAX_TEXT]))

    def latest(self) -> list[Problem]:
        """The kept records, newest first."""
        return list(reversed(self._ring))

    def attach(self, *names: str) -> None:
        for name in names:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            self._attached.append(logger)

    def detach(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self)
        self._attached.clear()


def _plain(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)
