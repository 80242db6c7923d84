"""The client library's errors as the S3 errors clients know."""

from __future__ import annotations

from metadisk.client import (
    AccessDenied,
    BridgeUnavailable,
    ClientError,
    Conflict,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TransferError,
    Unauthenticated,
)
from metadisk.gateway.s3errors import S3Error

# The bridge's codes with an S3 error of their own.
_BY_CODE = {
    "bucket-not-found": "NoSuchBucket",
    "object-not-found": "NoSuchKey",
    "upload-not-found": "NoSuchUpload",
    "bucket-exists": "BucketAlreadyOwnedByYou",
    "bucket-not-empty": "BucketNotEmpty",
    "invalid-bucket-name": "InvalidBucketName",
    "storage-limit": "QuotaExceeded",
    "limit-exceeded": "QuotaExceeded",
    "order-limit": "QuotaExceeded",
    "pending-limit": "QuotaExceeded",
    "segment-limit": "QuotaExceeded",
    "pending-uploads-limit": "QuotaExceeded",
    "pending-orders-limit": "QuotaExceeded",
    "rate-limited": "SlowDown",
}


def s3_error(exc: ClientError) -> S3Error:
    """The S3 error to answer for `exc`; its message is the library's, which names no secret."""
    message = str(exc)
    code = _BY_CODE.get(exc.code)
    if code is not None:
        return S3Error(code, message)
    if isinstance(exc, AccessDenied | PermissionDenied | Unauthenticated):
        return S3Error("AccessDenied", message)
    if isinstance(exc, NotFound):
        return S3Error("NoSuchKey", message)
    if isinstance(exc, Conflict):
        return S3Error("OperationAborted", message)
    if isinstance(exc, InvalidArgument):
        return S3Error("InvalidArgument", message)
    if isinstance(exc, BridgeUnavailable | TransferError):
        return S3Error("ServiceUnavailable", message)
    if isinstance(exc, IntegrityFailure):
        return S3Error("InternalError", message)
    return S3Error("InternalError", message)
