"""S3 errors: the codes the gateway answers with, their HTTP status and the ``<Error>`` body.

Codes, statuses and default messages follow AWS's list of S3 error codes, so that SDKs map them
to the exceptions their users catch. ``InvalidObjectName`` is the one code of ours: S3 has none
for a key it cannot list, and the gateway refuses such keys at upload (see ``s3xml``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class ErrorKind:
    """What one code means: its HTTP status and the message S3 gives by default."""

    status: int
    message: str


CODES: Final[dict[str, ErrorKind]] = {
    "AccessDenied": ErrorKind(403, "Access Denied"),
    "AuthorizationHeaderMalformed": ErrorKind(400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": ErrorKind(
        400,
        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    ),
    "BadDigest": ErrorKind(400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": ErrorKind(
        409,
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
    ),
    "BucketAlreadyOwnedByYou": ErrorKind(
        409, "Your previous request to create the named bucket succeeded and you already own it."
    ),
    "BucketNotEmpty": ErrorKind(409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": ErrorKind(
        400, "Your proposed upload exceeds the maximum allowed object size."
    ),
    "EntityTooSmall": ErrorKind(
        400, "Your proposed upload is smaller than the minimum allowed object size."
    ),
    "IllegalLocationConstraintException": ErrorKind(
        400, "The specified location-constraint is not valid for this endpoint."
    ),
    "IncompleteBody": ErrorKind(
        400, "You did not provide the number of bytes specified by the Content-Length HTTP header."
    ),
    "InternalError": ErrorKind(500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": ErrorKind(
        403, "The AWS Access Key Id you provided does not exist in our records."
    ),
    "InvalidArgument": ErrorKind(400, "Invalid Argument"),
    "InvalidBucketName": ErrorKind(400, "The specified bucket is not valid."),
    "InvalidDigest": ErrorKind(400, "The Content-MD5 you specified is not valid."),
    "InvalidLocationConstraint": ErrorKind(400, "The specified location constraint is not valid."),
    "InvalidObjectName": ErrorKind(
        400, "Object keys may hold only characters XML 1.0 allows, encoded as valid UTF-8."
    ),
    "InvalidPart": ErrorKind(
        400,
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartOrder": ErrorKind(
        400,
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
    ),
    "InvalidRange": ErrorKind(416, "The requested range is not satisfiable"),
    "InvalidRequest": ErrorKind(400, "Invalid Request"),
    "InvalidStorageClass": ErrorKind(400, "The storage class you specified is not valid"),
    "KeyTooLongError": ErrorKind(400, "Your key is too long"),
    "MalformedXML": ErrorKind(
        400,
        "The XML you provided was not well-formed or did not validate against our published schema",
    ),
    "MaxMessageLengthExceeded": ErrorKind(400, "Your request was too big."),
    "MethodNotAllowed": ErrorKind(
        405, "The specified method is not allowed against this resource."
    ),
    "MissingContentLength": ErrorKind(411, "You must provide the Content-Length HTTP header."),
    "MissingSecurityHeader": ErrorKind(400, "Your request is missing a required header."),
    "MetadataTooLarge": ErrorKind(
        400, "Your metadata headers exceed the maximum allowed metadata size."
    ),
    "OperationAborted": ErrorKind(
        409, "A conflicting conditional operation is currently in progress against this resource."
    ),
    "QuotaExceeded": ErrorKind(403, "The project's storage, egress or upload limit is reached."),
    "ExpiredToken": ErrorKind(400, "The provided token has expired."),
    "InvalidURI": ErrorKind(400, "Couldn't parse the specified URI."),
    "NoSuchBucket": ErrorKind(404, "The specified bucket does not exist"),
    "NoSuchBucketPolicy": ErrorKind(404, "The bucket policy does not exist"),
    "NoSuchCORSConfiguration": ErrorKind(404, "The CORS configuration does not exist"),
    "NoSuchKey": ErrorKind(404, "The specified key does not exist."),
    "NoSuchLifecycleConfiguration": ErrorKind(404, "The lifecycle configuration does not exist"),
    "NoSuchTagSet": ErrorKind(404, "The TagSet does not exist"),
    "NoSuchUpload": ErrorKind(
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
    ),
    "NotImplemented": ErrorKind(
        501, "A header you provided implies functionality that is not implemented."
    ),
    "NotModified": ErrorKind(304, "Not Modified"),
    "PreconditionFailed": ErrorKind(
        412, "At least one of the preconditions you specified did not hold."
    ),
    "RequestTimeTooSkewed": ErrorKind(
        403, "The difference between the request time and the current time is too large."
    ),
    "RequestTimeout": ErrorKind(
        400,
        "Your socket connection to the server was not read from or written to within the "
        "timeout period.",
    ),
    "ServiceUnavailable": ErrorKind(503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": ErrorKind(
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "SlowDown": ErrorKind(503, "Please reduce your request rate."),
    "XAmzContentSHA256Mismatch": ErrorKind(
        400, "The provided 'x-amz-content-sha256' header does not match what was computed."
    ),
}

# Statuses whose answers carry no body at all (RFC 9110: 304 never has content).
_BODILESS = frozenset({304})


class S3Error(Exception):
    """An S3 error answer: ``code``, HTTP ``status``, ``message``, optional ``resource``.

    ``fields`` are the extra elements S3 adds for some codes (``BucketName``, ``Key``,
    ``UploadId``, ``ArgumentName``/``ArgumentValue``, ``ActualObjectSize`` for InvalidRange,
    ``RequestTime``/``ServerTime``/``MaxAllowedSkewMilliseconds`` for RequestTimeTooSkewed,
    ``Condition`` for PreconditionFailed...), written in the order given.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        resource: str | None = None,
        **fields: str | int,
    ) -> None:
        kind = CODES.get(code)
        if kind is None:
            if status is None:
                raise ValueError(f"unknown S3 error code {code!r} needs an explicit status")
            kind = ErrorKind(status, code)
        self.code = code
        self.status = status if status is not None else kind.status
        self.message = message if message is not None else kind.message
        self.resource = resource
        self.fields: dict[str, str] = {name: str(value) for name, value in fields.items()}
        super().__init__(f"{code}: {self.message}")

    @property
    def has_body(self) -> bool:
        """False for statuses that never carry a body (304 Not Modified)."""
        return self.status not in _BODILESS


# What XML 1.0 cannot carry at all, not even as a character reference (lone surrogates included).
XML_FORBIDDEN: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    # An error echoes what the client sent: a character XML cannot carry becomes U+FFFD rather
    # than a document no client can read. The quote is escaped too, and a carriage return kept
    # as a reference, since XML parsers turn a raw one into a line feed.
    value = XML_FORBIDDEN.sub("\ufffd", value)
    return escape(value, {'"': "&quot;", "\r": "&#13;"})


def error_body(
    err: S3Error, request_id: str, resource: str | None = None, *, host_id: str | None = None
) -> bytes:
    """The ``<Error>`` document of ``err``; empty for a status without body (304).

    ``err.resource`` wins over ``resource``, which is usually the request's path.
    """
    if not err.has_body:
        return b""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
        f"<Code>{_text(err.code)}</Code>",
        f"<Message>{_text(err.message)}</Message>",
    ]
    where = err.resource if err.resource is not None else resource
    if where is not None:
        parts.append(f"<Resource>{_text(where)}</Resource>")
    parts.append(f"<RequestId>{_text(request_id)}</RequestId>")
    if host_id is not None:
        parts.append(f"<HostId>{_text(host_id)}</HostId>")
    parts.extend(f"<{name}>{_text(value)}</{name}>" for name, value in err.fields.items())
    parts.append("</Error>")
    return "".join(parts).encode("utf-8")
