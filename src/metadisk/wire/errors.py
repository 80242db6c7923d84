"""The error envelope every metadisk HTTP service answers with, bridge and farmers alike.

``{"error": {"code": "...", "message": "..."}}``: ``code`` is stable and machine-readable (each
role documents its codes in its own ``errors`` module), ``message`` is for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from metadisk.wire.models import Answer

MAX_ERROR_BODY = 64 * 1024  # what a client reads of an error answer at most


class ErrorDetail(Answer):
    code: str
    message: str


class ErrorBody(Answer):
    error: ErrorDetail


def error_body(code: str, message: str) -> bytes:
    """The envelope as JSON bytes."""
    return ErrorBody(error=ErrorDetail(code=code, message=message)).model_dump_json().encode()


def parse_error(raw: bytes) -> ErrorDetail | None:
    """The code and message of an error answer, or None if it is not the envelope."""
    try:
        return ErrorBody.model_validate_json(raw).error
    except ValidationError:
        return None


def describe_invalid(errors: Iterable[Mapping[str, Any]], *, most: int = 3) -> str:
    """Validation errors (pydantic's, or FastAPI's for a request) as one line for a person:
    ``"where: what; where: what"``, the first `most` of them."""
    problems = []
    for error in list(errors)[:most]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        what = str(error.get("msg", "invalid"))
        problems.append(f"{where}: {what}" if where else what)
    return "; ".join(problems) or "invalid"
