"""The errors the bridge's services raise, each with a stable ``code`` and an HTTP status.

One handler (`metadisk.bridge.http`) turns every `BridgeError` into
``{"error": {"code": ..., "message": ...}}`` with `status`::

    BridgeError
    ├── InvalidRequest      400  invalid-request, malformed, bucket-name, key, ...
    ├── Unauthenticated     401  unauthenticated, invalid-credentials, invalid-api-key
    ├── AccessDenied        403  access-denied
    ├── LimitExceeded       403  limit-exceeded
    ├── NotFound            404  bucket-not-found, object-not-found, upload-not-found, ...
    ├── Conflict            409  bucket-exists, bucket-not-empty, email-taken, ...
    ├── NodeRejected        400  bad-signature, insufficient-difficulty, clock-skew, ...
    ├── NotEnoughPieces     400  not-enough-pieces
    └── Unavailable         503  not-enough-nodes, segment-unavailable
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error a bridge service reports to a caller."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(BridgeError):
    status = 400
    code = "invalid-request"


class Unauthenticated(BridgeError):
    status = 401
    code = "unauthenticated"


class AccessDenied(BridgeError):
    status = 403
    code = "access-denied"


class LimitExceeded(BridgeError):
    status = 403
    code = "limit-exceeded"


class NotFound(BridgeError):
    status = 404
    code = "not-found"


class Conflict(BridgeError):
    status = 409
    code = "conflict"


class NodeRejected(BridgeError):
    """A check-in the directory refuses; `code` names the failed check."""

    status = 400
    code = "node-rejected"


class NotEnoughPieces(BridgeError):
    status = 400
    code = "not-enough-pieces"


class Unavailable(BridgeError):
    status = 503
    code = "unavailable"
