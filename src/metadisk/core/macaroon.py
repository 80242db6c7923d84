"""API keys as macaroons: bearer tokens that anyone holding one can narrow offline.

A key is an identifier, a list of caveats and a tail (a chained HMAC)::

    tail_0 = HMAC-SHA256(secret, key_id)
    tail_i = HMAC-SHA256(tail_{i-1}, encode(caveat_i))

The bridge keeps ``key_id -> (project, secret)``. `APIKey.restrict` appends a caveat and advances
the tail without the secret; because HMAC cannot be run backwards, nobody can drop or change a
caveat without the secret, only add more. `APIKey.check` recomputes the chain, refuses revoked
tails, and requires that *every* caveat allow the request, so adding caveats can only narrow.

Caveats have a canonical, versioned encoding (`metadisk.core.encoding`) and parsing requires the
canonical form, so the bytes under the HMAC are exactly the caveat the checker evaluates. A reader
that meets a caveat version it does not know refuses the key (fails closed) rather than skipping
a restriction it cannot understand.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from metadisk.core.encoding import Reader, Writer, b64decode, b64encode
from metadisk.core.errors import AccessError, DecodeError

KEY_ID_SIZE = 16
TAIL_SIZE = 32
MIN_SECRET_SIZE = 16
SECRET_SIZE = 32

MAX_BUCKET = 255  # bytes of UTF-8; bucket names are far shorter, this only bounds parsing
MAX_PREFIX = 1 << 16  # encrypted paths grow per component, so allow generous prefixes
MAX_ALLOWED_PATHS = 1024
MAX_CAVEATS = 256
MAX_KEY_BYTES = 1 << 20  # whole decoded key; parsing stops before doing work on more

KEY_PREFIX = "mdk1"

# Type tags of this module's binary formats (messages.py uses 1..3; grants use 0x22).
TAG_CAVEAT = 0x20
TAG_API_KEY = 0x21

_MAX_U64 = (1 << 64) - 1


class Op(enum.Enum):
    """The kind of action a request performs, as far as caveats are concerned."""

    READ = "read"
    WRITE = "write"
    LIST = "list"
    DELETE = "delete"


# Wire bits of Caveat's "disallow" byte. Never renumber; new ops take new bits in a new version.
_OP_BITS = {Op.READ: 0x01, Op.WRITE: 0x02, Op.LIST: 0x04, Op.DELETE: 0x08}
_ALL_OP_BITS = 0x0F


class AccessDenied(AccessError):
    """A key that does not allow a request. `reason` names the failed check (stable strings).

    Reasons: ``invalid-key`` (the HMAC chain does not verify: wrong secret, tampered, forged),
    ``revoked``, ``not-yet-valid``, ``expired``, ``op-denied``, ``path-denied``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AllowedPath:
    """A bucket, optionally narrowed to a prefix of encrypted object paths.

    Prefixes match on component boundaries: ``""`` covers the whole bucket; ``"a/b"`` covers
    ``"a/b"`` and ``"a/b/..."`` but not ``"a/bc"``; ``"a/b/"`` covers only ``"a/b/..."``, the
    folder's contents without an object named ``"a/b"`` (what `AccessGrant.share` issues, since a
    prefix's path key cannot decrypt that object).
    """

    bucket: str
    encrypted_prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.bucket, str) or not isinstance(self.encrypted_prefix, str):
            raise DecodeError("bucket and prefix must be text")
        if not 1 <= _utf8_len(self.bucket) <= MAX_BUCKET:
            raise DecodeError("bucket name must be 1 to 255 bytes")
        if _utf8_len(self.encrypted_prefix) > MAX_PREFIX:
            raise DecodeError("encrypted prefix too long")

    def covers(self, bucket: str, encrypted_path: str) -> bool:
        """Whether this allows the object (or listing prefix) `encrypted_path` in `bucket`."""
        return bucket == self.bucket and path_within(self.encrypted_prefix, encrypted_path)


def _utf8_len(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates have no UTF-8 encoding
        raise DecodeError("text is not valid Unicode") from exc


def path_within(prefix: str, path: str) -> bool:
    """Whether `path` lies within `prefix` as `AllowedPath` describes, on component boundaries."""
    if prefix == "":
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Caveat:
    """One restriction. Every caveat of a key must allow a request for the key to allow it."""

    disallow_reads: bool = False
    disallow_writes: bool = False
    disallow_lists: bool = False
    disallow_deletes: bool = False
    allowed_paths: tuple[AllowedPath, ...] = ()  # empty: no path restriction
    not_before: int | None = None  # unix seconds, inclusive
    not_after: int | None = None  # unix seconds, inclusive

    VERSION = 1

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_paths, tuple) or not all(
            isinstance(p, AllowedPath) for p in self.allowed_paths
        ):
            raise DecodeError("allowed_paths must be a tuple of AllowedPath")
        if len(self.allowed_paths) > MAX_ALLOWED_PATHS:
            raise DecodeError("too many allowed paths in one caveat")
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_U64
            ):
                raise DecodeError(f"{name} out of range")

    def disallows(self, op: Op) -> bool:
        return bool(self._disallow_bits() & _OP_BITS[op])

    def _disallow_bits(self) -> int:
        flags = {
            Op.READ: self.disallow_reads,
            Op.WRITE: self.disallow_writes,
            Op.LIST: self.disallow_lists,
            Op.DELETE: self.disallow_deletes,
        }
        return sum(_OP_BITS[op] for op, flag in flags.items() if flag)

    def check(self, request: Request) -> None:
        """Raise `AccessDenied` unless this caveat allows `request`."""
        if self.not_before is not None and request.now < self.not_before:
            raise AccessDenied("not-yet-valid", "key is not valid yet")
        if self.not_after is not None and request.now > self.not_after:
            raise AccessDenied("expired", "key has expired")
        if self.disallows(request.op):
            raise AccessDenied("op-denied", f"key does not allow {request.op.value}")
        if self.allowed_paths and not self._path_allows(request):
            raise AccessDenied("path-denied", _path_denial(request))

    def _path_allows(self, request: Request) -> bool:
        if request.bucket is None:
            # Project-wide calls: only listing buckets, which the bridge filters to allowed_buckets.
            return request.op is Op.LIST
        if request.encrypted_path is None:
            if request.op in (Op.WRITE, Op.DELETE):
                # Creating or deleting a bucket touches all of it: needs the whole bucket.
                return any(
                    p.bucket == request.bucket and p.encrypted_prefix == ""
                    for p in self.allowed_paths
                )
            return any(p.bucket == request.bucket for p in self.allowed_paths)
        if request.op is Op.LIST and any(
            p.bucket == request.bucket and p.encrypted_prefix == request.encrypted_path + "/"
            for p in self.allowed_paths
        ):
            # Listing folder "a/b" of a key for "a/b/": whichever way a client spells the prefix.
            return True
        return any(p.covers(request.bucket, request.encrypted_path) for p in self.allowed_paths)

    def encode(self) -> bytes:
        w = Writer().u8(TAG_CAVEAT).u8(self.VERSION).u8(self._disallow_bits())
        w.u16(len(self.allowed_paths))
        for path in self.allowed_paths:
            w.text(path.bucket).text(path.encrypted_prefix)
        for value in (self.not_before, self.not_after):
            if value is None:
                w.u8(0)
            else:
                w.u8(1).u64(value)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Caveat:
        r = Reader(data)
        r.header(TAG_CAVEAT, cls.VERSION)
        bits = r.u8()
        if bits & ~_ALL_OP_BITS:
            raise DecodeError("unknown operation bits in caveat")
        count = r.u16()
        if count > MAX_ALLOWED_PATHS:
            raise DecodeError("too many allowed paths in one caveat")
        paths = tuple(AllowedPath(r.text(MAX_BUCKET), r.text(MAX_PREFIX)) for _ in range(count))
        not_before, not_after = _optional_u64(r), _optional_u64(r)
        r.end()
        return cls(
            disallow_reads=bool(bits & _OP_BITS[Op.READ]),
            disallow_writes=bool(bits & _OP_BITS[Op.WRITE]),
            disallow_lists=bool(bits & _OP_BITS[Op.LIST]),
            disallow_deletes=bool(bits & _OP_BITS[Op.DELETE]),
            allowed_paths=paths,
            not_before=not_before,
            not_after=not_after,
        )


def _optional_u64(r: Reader) -> int | None:
    present = r.u8()
    if present == 0:
        return None
    if present != 1:
        raise DecodeError("invalid presence flag")
    return r.u64()


def _path_denial(request: Request) -> str:
    if request.bucket is None:
        return f"key is limited to some paths and does not allow project-wide {request.op.value}"
    if request.encrypted_path is None:
        return f"key does not allow {request.op.value} on bucket {request.bucket!r}"
    return f"key does not allow {request.op.value} on this path in bucket {request.bucket!r}"


@dataclass(frozen=True, slots=True)
class Request:
    """The action the bridge is authorizing.

    - ``bucket=None``: a project-wide call (list buckets).
    - ``encrypted_path=None``: a bucket-level call (create, get, delete bucket).
    - otherwise an object path, or for `Op.LIST` the listing prefix. A listing of a whole bucket
      must pass ``encrypted_path=""``, not None: None means the bucket itself, which a key limited
      to one prefix of the bucket may READ/LIST (see its metadata) but not list in full.
    """

    op: Op
    bucket: str | None
    encrypted_path: str | None
    now: int

    def __post_init__(self) -> None:
        if not isinstance(self.op, Op):
            raise TypeError("op must be an Op")
        if self.bucket is None and self.encrypted_path is not None:
            raise ValueError("a request with a path needs a bucket")


@dataclass(frozen=True, slots=True)
class APIKey:
    """A macaroon: `key_id` names the bridge's secret, `tail` chains an HMAC over `caveats`."""

    key_id: bytes
    caveats: tuple[Caveat, ...]
    tail: bytes

    VERSION = 1

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_SIZE:
            raise DecodeError(f"key id must be exactly {KEY_ID_SIZE} bytes")
        if not isinstance(self.tail, bytes) or len(self.tail) != TAIL_SIZE:
            raise DecodeError(f"tail must be exactly {TAIL_SIZE} bytes")
        if not isinstance(self.caveats, tuple) or not all(
            isinstance(c, Caveat) for c in self.caveats
        ):
            raise DecodeError("caveats must be a tuple of Caveat")
        if len(self.caveats) > MAX_CAVEATS:
            raise DecodeError("too many caveats")

    @classmethod
    def new(cls, secret: bytes, key_id: bytes) -> APIKey:
        """The unrestricted root key for `key_id` under `secret`."""
        if len(secret) < MIN_SECRET_SIZE:
            raise ValueError(f"secret must be at least {MIN_SECRET_SIZE} bytes")
        if len(key_id) != KEY_ID_SIZE:
            raise ValueError(f"key id must be exactly {KEY_ID_SIZE} bytes")
        return cls(bytes(key_id), (), _mac(secret, key_id))

    @classmethod
    def generate(cls, randbytes: Callable[[int], bytes] = os.urandom) -> tuple[APIKey, bytes]:
        """A fresh root key and its secret; the bridge stores (key_id -> project, secret)."""
        secret = randbytes(SECRET_SIZE)
        return cls.new(secret, randbytes(KEY_ID_SIZE)), secret

    def restrict(self, caveat: Caveat) -> APIKey:
        """A key that allows at most what this one allows and what `caveat` allows. Offline."""
        if len(self.caveats) >= MAX_CAVEATS:
            raise ValueError("too many caveats")
        return APIKey(self.key_id, (*self.caveats, caveat), _mac(self.tail, caveat.encode()))

    def tails(self, secret: bytes) -> list[bytes]:
        """Every tail of the chain, root first, as the bridge recomputes it from `secret`.

        Putting a key's last tail on the revocation list revokes that key and every key
        restricted from it. Raises `AccessDenied` if the key is not genuine under `secret`.
        """
        chain = [_mac(secret, self.key_id)]
        for caveat in self.caveats:
            chain.append(_mac(chain[-1], caveat.encode()))
        if not hmac.compare_digest(chain[-1], self.tail):
            raise AccessDenied("invalid-key", "API key is invalid")
        return chain

    def check(
        self,
        secret: bytes,
        request: Request,
        *,
        revoked: Callable[[bytes], bool] = lambda tail: False,
    ) -> None:
        """Raise `AccessDenied` unless this genuine, unrevoked key allows `request`.

        Checks in order: the HMAC chain, revocation of any tail, then every caveat.
        """
        chain = self.tails(secret)
        if any(revoked(tail) for tail in chain):
            raise AccessDenied("revoked", "API key has been revoked")
        for caveat in self.caveats:
            caveat.check(request)

    def allowed_buckets(self) -> frozenset[str] | None:
        """Buckets this key may touch at all (intersection over caveats); None: any bucket.

        The bridge filters a project-wide bucket listing through this.
        """
        allowed: frozenset[str] | None = None
        for caveat in self.caveats:
            if caveat.allowed_paths:
                buckets = frozenset(p.bucket for p in caveat.allowed_paths)
                allowed = buckets if allowed is None else allowed & buckets
        return allowed

    @property
    def not_before(self) -> int | None:
        """Earliest time (unix seconds) any request is allowed; None: no lower bound."""
        values = [c.not_before for c in self.caveats if c.not_before is not None]
        return max(values) if values else None

    @property
    def expires_at(self) -> int | None:
        """Last time (unix seconds, inclusive) any request is allowed; None: never expires."""
        values = [c.not_after for c in self.caveats if c.not_after is not None]
        return min(values) if values else None

    def reaches(self, bucket: str, encrypted_path: str) -> bool:
        """Whether every path-restricted caveat covers this path (ops and time aside)."""
        return all(
            any(p.covers(bucket, encrypted_path) for p in c.allowed_paths)
            for c in self.caveats
            if c.allowed_paths
        )

    def allows_op(self, op: Op) -> bool:
        """Whether no caveat disallows `op` outright (paths and time aside); for display."""
        return not any(c.disallows(op) for c in self.caveats)

    def encode(self) -> bytes:
        w = Writer().u8(TAG_API_KEY).u8(self.VERSION).fixed(self.key_id, KEY_ID_SIZE)
        w.u16(len(self.caveats))
        for caveat in self.caveats:
            w.blob(caveat.encode())
        return w.fixed(self.tail, TAIL_SIZE).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> APIKey:
        if len(data) > MAX_KEY_BYTES:
            raise DecodeError("API key too large")
        r = Reader(data)
        r.header(TAG_API_KEY, cls.VERSION)
        key_id = r.fixed(KEY_ID_SIZE)
        count = r.u16()
        if count > MAX_CAVEATS:
            raise DecodeError("too many caveats")
        caveats = []
        for _ in range(count):
            raw = r.blob(MAX_KEY_BYTES)
            caveat = Caveat.decode(raw)
            # The HMAC covers re-encoded caveats: only the canonical form may verify.
            if caveat.encode() != raw:
                raise DecodeError("non-canonical caveat encoding")
            caveats.append(caveat)
        tail = r.fixed(TAIL_SIZE)
        r.end()
        return cls(key_id, tuple(caveats), tail)

    def serialize(self) -> str:
        """One printable string: ``mdk1`` followed by base64url of `encode()`."""
        data = self.encode()
        if len(data) > MAX_KEY_BYTES:
            raise ValueError("API key too large")
        return KEY_PREFIX + b64encode(data)

    @classmethod
    def parse(cls, text: str) -> APIKey:
        """Inverse of `serialize`; `DecodeError` on anything malformed."""
        return cls.decode(decode_token(text, KEY_PREFIX, MAX_KEY_BYTES))

    def __repr__(self) -> str:  # the tail is the bearer credential: never print it
        return f"APIKey(key_id={self.key_id.hex()}, caveats={len(self.caveats)})"


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def decode_token(text: str, prefix: str, max_bytes: int) -> bytes:
    """Check a printable token's prefix and size and return its body; shared with grants."""
    if not isinstance(text, str):
        raise DecodeError("expected text")
    if not text.startswith(prefix):
        raise DecodeError(f"expected a string starting with {prefix!r}")
    body = text[len(prefix) :]
    # Refuse oversized input before decoding it: 4 base64 characters carry 3 bytes.
    if len(body) > (max_bytes * 4 + 2) // 3:
        raise DecodeError("token too large")
    return b64decode(body)
