"""AWS Signature Version 4 verification for the S3 gateway, sans I/O.

`verify` takes a plain description of a request (path exactly as sent, decoded query pairs,
lower-case headers), looks up the secret of the access key it names and checks the signature of
either the ``Authorization: AWS4-HMAC-SHA256 ...`` header or a presigned URL. It reads no clock:
the caller passes `now`. What it returns says how the body must be read: `chunked.ChunkedDecoder`
for the aws-chunked streaming forms, `chunked.PayloadChecks` for every body.

S3's rules followed here, where they differ from SigV4 for other services: the canonical URI is
the path as sent (neither normalised nor encoded twice), and every ``x-amz-*`` header present
must be signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from urllib.parse import quote

from metadisk.gateway.s3errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")

_Q_ALGORITHM = "X-Amz-Algorithm"
_Q_CREDENTIAL = "X-Amz-Credential"
_Q_DATE = "X-Amz-Date"
_Q_EXPIRES = "X-Amz-Expires"
_Q_SIGNED_HEADERS = "X-Amz-SignedHeaders"
_Q_SIGNATURE = "X-Amz-Signature"
_PRESIGN_PARAMS = (_Q_ALGORITHM, _Q_CREDENTIAL, _Q_DATE, _Q_EXPIRES, _Q_SIGNED_HEADERS)

_ONLY_V4 = (
    "Signature Version 2 is not supported: sign requests with AWS Signature Version 4 "
    "(AWS4-HMAC-SHA256)"
)


class AuthError(S3Error):
    """The request's authentication failed or could not be read.

    `details` are the extra elements S3 puts in its error document (the string to sign and the
    canonical request for a signature mismatch, so a client can see what differed).
    """

    def __init__(self, code: str, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(code, message)
        self.fields.update(details or {})

    @property
    def details(self) -> Mapping[str, str]:
        return self.fields


class Payload(Enum):
    """How the body is covered, from ``x-amz-content-sha256``."""

    UNSIGNED = "UNSIGNED-PAYLOAD"
    SHA256 = "SHA256"  # a hex digest of the whole body
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def streaming(self) -> bool:
        """The body is aws-chunked and must go through `chunked.ChunkedDecoder`."""
        return self.value.startswith("STREAMING-")

    @property
    def signed_chunks(self) -> bool:
        """Each chunk carries a signature chained from the request's."""
        return self in (Payload.STREAMING_SIGNED, Payload.STREAMING_SIGNED_TRAILER)

    @property
    def trailer(self) -> bool:
        """Trailing headers follow the final chunk."""
        return self in (Payload.STREAMING_SIGNED_TRAILER, Payload.STREAMING_UNSIGNED_TRAILER)


_LITERAL_PAYLOADS = {p.value: p for p in Payload if p is not Payload.SHA256}


@dataclass(frozen=True)
class Request:
    """A request as the server received it.

    `raw_path` is the path exactly as sent (percent-encoded, no query); `query` the decoded pairs
    in order with repeated keys kept; `headers` lower-case names, repeated headers joined by ",".
    """

    method: str
    raw_path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class ChunkSigning:
    """What verifying an aws-chunked body's chunk signatures needs."""

    key: bytes = field(repr=False)
    scope: str
    amz_date: str
    seed_signature: str


@dataclass(frozen=True)
class Verified:
    """An authenticated request: who sent it and how its body must be read.

    `content_sha256` is the expected lower-case hex digest when `payload` is `Payload.SHA256`.
    `decoded_length` is ``x-amz-decoded-content-length`` and `trailer_names` the lower-cased names
    of ``x-amz-trailer``, both for the streaming forms.
    """

    access_key: str
    region: str
    payload: Payload
    signing: ChunkSigning
    presigned: bool = False
    content_sha256: str | None = None
    decoded_length: int | None = None
    trailer_names: tuple[str, ...] = ()


def uri_encode(text: str) -> str:
    """Percent-encode per SigV4: A-Z a-z 0-9 - _ . ~ kept, everything else as %XX of UTF-8."""
    return quote(text, safe="-_.~")


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The key derived from `secret` for one day, region and service."""
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def canonical_query(query: Sequence[tuple[str, str]], *, presigned: bool = False) -> str:
    """Pairs encoded, sorted by key then value; ``X-Amz-Signature`` left out when `presigned`."""
    pairs = sorted(
        (uri_encode(key), uri_encode(value))
        for key, value in query
        if not (presigned and key == _Q_SIGNATURE)
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_request(
    request: Request, signed_headers: Sequence[str], payload_hash: str, *, presigned: bool = False
) -> str:
    """The canonical request of `request`; `signed_headers` sorted lower-case names."""
    lines = [f"{name}:{_trim(_header(request, name))}" for name in signed_headers]
    return "\n".join(
        [
            request.method.upper(),
            # A raw path that still carries its query (aiohttp's raw_path does) loses it here.
            request.raw_path.partition("?")[0] or "/",
            canonical_query(request.query, presigned=presigned),
            *lines,
            "",
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The string signed for a request whose canonical form is `canonical`."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def sign(key: bytes, text: str) -> str:
    """The hex HMAC-SHA256 of `text` under a derived signing key."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures, case-insensitive."""
    return hmac.compare_digest(expected.lower().encode(), given.lower().encode())


@dataclass(frozen=True)
class _Auth:
    """The authentication fields of a request, from its header or its query."""

    access_key: str
    date: str
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    when: datetime
    presigned: bool
    expires: int = 0


def verify(
    request: Request,
    secret_for: Callable[[str], str | None],
    now: datetime,
    *,
    skew: timedelta = timedelta(minutes=15),
    max_expires: int = MAX_PRESIGNED_EXPIRES,
) -> Verified:
    """Check `request`'s SigV4 signature (header or presigned URL); raise `AuthError` if wrong.

    `secret_for` maps an access key id to its secret, or None when unknown. `now` is the server's
    time (naive means UTC). Header-signed requests must be within `skew` of it; presigned URLs
    must not have expired and may live at most `max_expires` seconds.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    auth = _read_auth(request, max_expires)
    payload_hash = _payload_hash(request, auth.presigned)
    when = auth.when
    if auth.presigned:
        if when - now > skew:
            raise AuthError("AccessDenied", "Request is not valid yet")
        if now > when + timedelta(seconds=auth.expires):
            raise AuthError("AccessDenied", "Request has expired")
    elif abs(now - when) > skew:
        raise AuthError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        )
    _check_headers(request, auth)
    secret = secret_for(auth.access_key)
    if secret is None:
        raise AuthError(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    scope = f"{auth.date}/{auth.region}/{SERVICE}/{TERMINATOR}"
    key = signing_key(secret, auth.date, auth.region)
    canonical = canonical_request(
        request, auth.signed_headers, payload_hash, presigned=auth.presigned
    )
    to_sign = string_to_sign(auth.amz_date, scope, canonical)
    expected = sign(key, to_sign)
    if not signatures_match(expected, auth.signature):
        raise AuthError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            {"StringToSign": to_sign, "CanonicalRequest": canonical},
        )
    payload, digest = _payload(request, payload_hash, auth.presigned)
    return Verified(
        access_key=auth.access_key,
        region=auth.region,
        payload=payload,
        signing=ChunkSigning(key, scope, auth.amz_date, expected),
        presigned=auth.presigned,
        content_sha256=digest,
        decoded_length=_decoded_length(request) if payload.streaming else None,
        trailer_names=_trailer_names(request) if payload.trailer else (),
    )


def _read_auth(request: Request, max_expires: int) -> _Auth:
    header = request.headers.get("authorization")
    names = {key for key, _ in request.query}
    if "AWSAccessKeyId" in names or ("Signature" in names and _Q_SIGNATURE not in names):
        raise AuthError("InvalidRequest", _ONLY_V4)
    presigned = _Q_ALGORITHM in names or _Q_SIGNATURE in names or _Q_CREDENTIAL in names
    if header is not None and presigned:
        raise AuthError(
            "InvalidRequest",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified",
        )
    if presigned:
        return _read_query_auth(request, max_expires)
    if header is None:
        raise AuthError("AccessDenied", "Anonymous access is not supported: sign the request")
    return _read_header_auth(request, header)


def _read_header_auth(request: Request, header: str) -> _Auth:
    code = "AuthorizationHeaderMalformed"
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm == "AWS":
        raise AuthError("InvalidRequest", _ONLY_V4)
    if algorithm != ALGORITHM:
        raise AuthError(
            "InvalidRequest",
            f"The authorization mechanism you have provided is not supported. Please use "
            f"{ALGORITHM}.",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name in fields:
            raise AuthError(code, f"The authorization header is malformed; bad component {part!r}")
        fields[name] = value.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise AuthError(
            code,
            "The authorization header is malformed; it needs exactly Credential, SignedHeaders "
            "and Signature.",
        )
    amz_date = request.headers.get("x-amz-date")
    if amz_date is None:
        raise AuthError(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    when = _parse_amz_date(amz_date, presigned=False)
    access_key, date, region = _read_credential(fields["Credential"], amz_date, code)
    return _Auth(
        access_key=access_key,
        date=date,
        region=region,
        signed_headers=_read_signed_headers(fields["SignedHeaders"], code),
        signature=_read_signature(fields["Signature"], code),
        amz_date=amz_date,
        when=when,
        presigned=False,
    )


def _read_query_auth(request: Request, max_expires: int) -> _Auth:
    code = "AuthorizationQueryParametersError"
    params: dict[str, str] = {}
    for key, value in request.query:
        if key.startswith("X-Amz-"):
            if key in params:
                raise AuthError(code, f"The query parameter {key} appears more than once.")
            params[key] = value
    missing = [name for name in (*_PRESIGN_PARAMS, _Q_SIGNATURE) if name not in params]
    if missing:
        raise AuthError(
            code,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.",
        )
    if params[_Q_ALGORITHM] != ALGORITHM:
        raise AuthError(code, f"X-Amz-Algorithm only supports {ALGORITHM}")
    raw_expires = params[_Q_EXPIRES]
    if not raw_expires.isascii() or not raw_expires.isdigit() or int(raw_expires) < 1:
        raise AuthError(code, "X-Amz-Expires should be a number of seconds, at least 1")
    if int(raw_expires) > max_expires:
        raise AuthError(
            code,
            f"X-Amz-Expires must be less than a week (in seconds) that is {max_expires}",
        )
    amz_date = params[_Q_DATE]
    when = _parse_amz_date(amz_date, presigned=True)
    access_key, date, region = _read_credential(params[_Q_CREDENTIAL], amz_date, code)
    return _Auth(
        access_key=access_key,
        date=date,
        region=region,
        signed_headers=_read_signed_headers(params[_Q_SIGNED_HEADERS], code),
        signature=_read_signature(params[_Q_SIGNATURE], code),
        amz_date=amz_date,
        when=when,
        presigned=True,
        expires=int(raw_expires),
    )


def _read_credential(credential: str, amz_date: str, code: str) -> tuple[str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise AuthError(
            code,
            f"Error parsing the Credential {credential!r}: it should be "
            "<key>/<YYYYMMDD>/<region>/s3/aws4_request",
        )
    access_key, date, region, service, terminator = parts
    if date != amz_date[:8]:
        raise AuthError(code, "Invalid credential date. Date is not the same as X-Amz-Date.")
    if service != SERVICE:
        raise AuthError(
            code, f"The credential scope is incorrect: service {service!r}; this is 's3'."
        )
    if terminator != TERMINATOR:
        raise AuthError(
            code,
            f"The credential scope is incorrect: terminal {terminator!r}; this endpoint uses "
            f"{TERMINATOR!r}.",
        )
    return access_key, date, region


def _read_signed_headers(text: str, code: str) -> tuple[str, ...]:
    names = text.split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in names) or len(set(names)) != len(names):
        raise AuthError(code, f"SignedHeaders {text!r} is not a list of lower-case header names")
    if "host" not in names:
        raise AuthError(code, "The host header must be signed")
    return tuple(sorted(names))


def _read_signature(text: str, code: str) -> str:
    if not _HEX64.fullmatch(text):
        raise AuthError(code, "The signature is not 64 hexadecimal digits")
    return text


def _parse_amz_date(text: str, presigned: bool) -> datetime:
    try:
        if not _AMZ_DATE.fullmatch(text):
            raise ValueError(text)
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        if presigned:
            raise AuthError(
                "AuthorizationQueryParametersError",
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            ) from None
        raise AuthError(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        ) from None


def _check_headers(request: Request, auth: _Auth) -> None:
    signed = set(auth.signed_headers)
    for name in auth.signed_headers:
        if _header_or_none(request, name) is None:
            raise AuthError(
                "AccessDenied", f"The signed header {name!r} is missing from the request"
            )
    unsigned = sorted(
        name
        for name in request.headers
        if name.startswith("x-amz-")
        and name not in signed
        # A presigned URL cannot know the payload; its hash header is checked, not signed.
        and not (auth.presigned and name == "x-amz-content-sha256")
    )
    if unsigned:
        raise AuthError(
            "AccessDenied",
            "There were headers present in the request which were not signed: "
            + ", ".join(unsigned),
        )


def _payload_hash(request: Request, presigned: bool) -> str:
    """The payload hash of the canonical request (a presigned URL's is fixed)."""
    if presigned:
        return Payload.UNSIGNED.value
    found = request.headers.get("x-amz-content-sha256")
    if found is None:
        raise AuthError(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    return _checked_content_sha256(found)


def _checked_content_sha256(value: str) -> str:
    if value not in _LITERAL_PAYLOADS and not _HEX64.fullmatch(value):
        raise AuthError(
            "InvalidRequest",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a "
            "hex SHA-256",
        )
    return value


def _payload(request: Request, payload_hash: str, presigned: bool) -> tuple[Payload, str | None]:
    if presigned:
        # Not signed, but a digest the client sends along is still worth checking.
        sent = request.headers.get("x-amz-content-sha256")
        payload_hash = _checked_content_sha256(sent) if sent is not None else payload_hash
    literal = _LITERAL_PAYLOADS.get(payload_hash)
    if literal is None:
        return Payload.SHA256, payload_hash.lower()
    if presigned and literal.streaming:
        raise AuthError("InvalidRequest", "A presigned URL cannot carry an aws-chunked body")
    return literal, None


def _decoded_length(request: Request) -> int | None:
    text = request.headers.get("x-amz-decoded-content-length")
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise AuthError("InvalidRequest", "x-amz-decoded-content-length is not a number")
    return int(text)


def _trailer_names(request: Request) -> tuple[str, ...]:
    text = request.headers.get("x-amz-trailer", "")
    return tuple(name.strip().lower() for name in text.split(",") if name.strip())


def _header_or_none(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    # Some HTTP stacks consume "Expect: 100-continue" before the handler sees it.
    if value is None and name == "expect":
        return "100-continue"
    return value


def _header(request: Request, name: str) -> str:
    return _header_or_none(request, name) or ""


def _trim(value: str) -> str:
    return " ".join(value.split())


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
