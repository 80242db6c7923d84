"""The errors the farmer raises, each with a stable ``code`` and an HTTP status.

The data plane maps every `FarmerError` to ``{"error": {"code": ..., "message": ...}}`` with its
``status``; the CLI prints its message on one line. Codes are part of the protocol: never rename
one, only add::

    FarmerError                  farmer-error            500
    ├── BadRequest               bad-request             400  (subclasses name the bad input)
    ├── Unauthorized             missing-order-limit     401
    ├── Forbidden                (core's check code)     403
    ├── NotFound                 not-found               404
    ├── Conflict                 serial-reused, piece-exists, stale-request   409
    ├── LengthRequired           length-required         411
    ├── TooLarge                 too-large               413
    ├── RangeNotSatisfiable      range-not-satisfiable   416
    ├── Busy                     too-many-uploads        503
    ├── InsufficientStorage      insufficient-storage    507
    ├── CorruptPiece             corrupt-piece           500
    └── SetupError               config, data-dir, port-in-use, ...  (startup, never on the wire)
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class FarmerError(Exception):
    """Base of every farmer error; `code` is stable, `status` is the HTTP status to answer."""

    code = "farmer-error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(FarmerError):
    """Input that can never be valid: a malformed id, header, range or body."""

    code = "bad-request"
    status = 400


class Unauthorized(FarmerError):
    """A request that carries no order limit at all."""

    code = "missing-order-limit"
    status = 401


class Forbidden(FarmerError):
    """An order limit that does not allow this request (code from core's check), or a non-local
    caller on a local-only route."""

    code = "forbidden"
    status = 403


class NotFound(FarmerError):
    """No such piece (or route) here."""

    code = "not-found"
    status = 404


class Conflict(FarmerError):
    """A request that clashes with stored state: a reused serial, an existing piece, a retain
    request older than one already taken."""

    code = "conflict"
    status = 409


class LengthRequired(FarmerError):
    """An upload without Content-Length: the allocation is checked before any byte is written."""

    code = "length-required"
    status = 411


class TooLarge(FarmerError):
    """A request body over its route's cap (a retain request past 64 MiB of filter)."""

    code = "too-large"
    status = 413


class RangeNotSatisfiable(FarmerError):
    """A byte range outside the piece."""

    code = "range-not-satisfiable"
    status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class Busy(FarmerError):
    """Too much in flight from one caller already; it may try again shortly."""

    code = "busy"
    status = 503


class InsufficientStorage(FarmerError):
    """The allocation (or the disk) has no room for the piece."""

    code = "insufficient-storage"
    status = 507


class CorruptPiece(FarmerError):
    """A piece file whose footer does not add up (disk damage): an error of this node."""

    code = "corrupt-piece"
    status = 500


class SetupError(FarmerError):
    """A node that cannot start: bad config, unusable data dir, port in use, ..."""

    code = "setup"


def disk_full_is_507(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn`, with ENOSPC/EDQUOT turned into InsufficientStorage (a 507 for the uploader)."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("the disk is full") from exc
            raise

    return wrapper
