"""The errors the client raises, each with a stable ``code``.

Callers catch `ClientError` (or one branch) and show ``code`` and the message; the CLI and the
gateway map codes to exit statuses and S3 errors. Codes are stable: never rename one, only add::

    ClientError                      client-error
    ├── InvalidArgument              invalid-argument      bad input caught before any I/O
    ├── AccessDenied                 access-denied         the grant holds no key or right for it
    ├── BridgeError                  (the bridge's code)   an error answer from the bridge
    │   ├── Unauthenticated          401  unauthenticated, invalid-api-key, ...
    │   ├── PermissionDenied         403  access-denied, limit-exceeded
    │   ├── NotFound                 404  bucket-not-found, object-not-found, upload-not-found
    │   ├── Conflict                 409  bucket-exists, bucket-not-empty, ...
    │   └── BridgeUnavailable        5xx  not-enough-nodes, unavailable, or no answer at all
    ├── TransferError
    │   ├── UploadFailed             not-enough-pieces     fewer than o farmers stored a piece
    │   └── DownloadFailed           segment-unavailable   fewer than k good pieces came back
    ├── PieceError                   (farmer's code)       one piece to or from one farmer
    ├── IntegrityFailure             integrity             data that fails decryption or its hash
    └── ResumeMismatch               resume-mismatch       resume state that does not fit the upload

A `BridgeError` keeps the bridge's own ``code`` (for example ``bucket-not-found``) and its HTTP
``status``; its class follows the status, so ``except NotFound`` catches every kind of missing
thing. Errors from farmers never surface alone: a failed piece is retried elsewhere, and only a
segment that cannot reach its threshold raises, carrying every piece's failure in ``failures``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping


class ClientError(Exception):
    """Base of every error the client raises; `code` is stable."""

    code = "client-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgument(ClientError, ValueError):
    """Input the client refuses before doing any I/O: a bad range, bucket name or grant."""

    code = "invalid-argument"


class AccessDenied(ClientError):
    """The access grant holds no key or permission for the bucket, path or operation."""

    code = "access-denied"


class BridgeError(ClientError):
    """An error answer from the bridge, with the bridge's `code` and the HTTP `status`."""

    code = "bridge-error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message, code=code)
        if status is not None:
            self.status = status


class Unauthenticated(BridgeError):
    """The bridge does not accept the API key (malformed, revoked, unknown)."""

    code = "unauthenticated"
    status = 401


class PermissionDenied(BridgeError):
    """The API key does not allow the action, or a project limit is reached."""

    code = "access-denied"
    status = 403


class NotFound(BridgeError):
    """No such bucket, object or pending upload."""

    code = "not-found"
    status = 404


class Conflict(BridgeError):
    """The request clashes with the bridge's state: a bucket that exists or is not empty."""

    code = "conflict"
    status = 409


class BridgeUnavailable(BridgeError):
    """The bridge cannot serve the request now (no answer, too few nodes, server error)."""

    code = "unavailable"
    status = 503


class TransferError(ClientError):
    """Moving pieces to or from farmers failed for a whole segment.

    `failures` maps each failed piece number to why it failed (farmer code and message), so a
    caller can tell one broken farmer from a broken network.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        failures: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.failures: dict[int, str] = dict(failures or {})


class UploadFailed(TransferError):
    """Fewer than the success threshold (o) of farmers stored a segment's pieces."""

    code = "not-enough-pieces"


class DownloadFailed(TransferError):
    """Fewer than k good pieces of a segment could be fetched."""

    code = "segment-unavailable"


class PieceError(ClientError):
    """One piece's transfer failed: the farmer's error `code`, or ``connection-failed``,
    ``timeout``, ``bad-response``, ``bad-receipt``, ``bad-piece``.

    Transfers catch it, try another farmer and report it in `TransferError.failures`; it only
    reaches callers of a `FarmerTransport` directly.
    """

    code = "piece-failed"

    def __init__(self, message: str, *, code: str | None = None, status: int = 0) -> None:
        super().__init__(message, code=code)
        self.status = status


class IntegrityFailure(ClientError):
    """Data that fails its hash or does not decrypt: tampered, or not the uploader's keys."""

    code = "integrity"


class ResumeMismatch(ClientError):
    """Saved resume state that does not match the source or the bridge's pending upload."""

    code = "resume-mismatch"


_BY_STATUS: dict[int, type[BridgeError]] = {
    400: BridgeError,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
}


def bridge_error(status: int, code: str, message: str) -> BridgeError:
    """The exception for an error answer: class by HTTP status, the bridge's `code` kept."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = BridgeUnavailable if status >= 500 else BridgeError
    return cls(message, code=code or cls.code, status=status)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise from a failed task group: the first that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
