"""Access grants: one printable string that is everything a client needs to reach some data.

A grant holds the bridge URL, an API key (`metadisk.core.macaroon`) and an encryption access
(`metadisk.core.paths`). `AccessGrant.share` narrows both halves together: the key gets a caveat
limiting ops, time and the *encrypted* prefixes, and the encryption access keeps only the path keys
of those prefixes. Neither half can be widened by the recipient: caveats only narrow, and path keys
are derived one way, so no key above or beside a shared prefix can be computed from it.

Format: ``mdg1`` followed by base64url of ``tag | version | text url | blob api_key | blob access``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from metadisk.core.encoding import Reader, Writer, b64encode
from metadisk.core.errors import AccessError, DecodeError
from metadisk.core.macaroon import MAX_KEY_BYTES, AllowedPath, APIKey, Caveat, Op, decode_token
from metadisk.core.paths import EncryptionAccess, PathKey

GRANT_PREFIX = "mdg1"
TAG_ACCESS_GRANT = 0x22
MAX_URL = 2048
MAX_ACCESS_BYTES = 1 << 20
MAX_GRANT_BYTES = MAX_KEY_BYTES + MAX_ACCESS_BYTES + MAX_URL + 64


def check_bridge_url(url: str) -> None:
    """Require an absolute http(s) URL with a host and nothing a grant should not carry.

    Refused: other schemes, credentials (a grant is meant to be handed around), query strings and
    fragments, non-ASCII or whitespace (spell international hosts in punycode), bad ports.
    """
    if not isinstance(url, str) or not url.isascii() or not url.isprintable() or " " in url:
        raise DecodeError("bridge URL must be printable ASCII without spaces")
    if len(url) > MAX_URL:
        raise DecodeError("bridge URL too long")
    try:
        parts = urlsplit(url)
        port = parts.port  # parsing the port is what raises on "host:99999" or "host:x"
    except ValueError as exc:
        raise DecodeError(f"invalid bridge URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise DecodeError("bridge URL must be http:// or https://")
    if not parts.hostname:
        raise DecodeError("bridge URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DecodeError("bridge URL must not carry credentials")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise DecodeError("bridge URL must not have a query or fragment")
    if port == 0:
        raise DecodeError("bridge URL port must not be 0")


@dataclass(frozen=True, slots=True)
class SharePrefix:
    """A plaintext folder to share: ``""`` is the whole bucket, ``"a/b"`` everything below ``a/b/``.

    One trailing "/" is allowed and means the same folder ("a/b/" is "a/b"), as in
    `EncryptionAccess.restrict`.
    """

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.bucket, str) or not self.bucket:
            raise ValueError("a share needs a bucket")
        if not isinstance(self.prefix, str):
            raise ValueError("a share prefix must be text")
        if self.folder.endswith("/"):
            raise ValueError("a share prefix ends in at most one '/'")

    @property
    def folder(self) -> str:
        """The prefix without its optional trailing "/"."""
        return self.prefix[:-1] if self.prefix.endswith("/") else self.prefix


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """Bridge URL, API key and encryption keys: what a client needs to reach some data."""

    bridge_url: str
    api_key: APIKey
    encryption: EncryptionAccess

    VERSION = 1

    def __post_init__(self) -> None:
        check_bridge_url(self.bridge_url)
        if not isinstance(self.api_key, APIKey) or not isinstance(
            self.encryption, EncryptionAccess
        ):
            raise DecodeError("a grant holds an APIKey and an EncryptionAccess")

    def share(
        self,
        prefixes: Sequence[SharePrefix],
        *,
        read: bool = True,
        write: bool = False,
        list: bool = True,  # shadows the builtin to mirror the op names
        delete: bool = False,
        not_before: int | None = None,
        not_after: int | None = None,
    ) -> AccessGrant:
        """A grant for `prefixes` only, with only the given ops, within the given times.

        Raises `AccessError` if this grant cannot reach a prefix (no key for it, or its API key
        is limited elsewhere) or does not allow a requested op; `ValueError` if `prefixes` is
        empty (an empty path list in a caveat would mean "anywhere").
        """
        if not prefixes:
            raise ValueError("share at least one prefix")
        wanted = {Op.READ: read, Op.WRITE: write, Op.LIST: list, Op.DELETE: delete}
        for op, on in wanted.items():
            if on and not self.api_key.allows_op(op):
                raise AccessError(f"this grant does not allow {op.value}, so it cannot share it")
        allowed: dict[AllowedPath, None] = {}  # ordered set: the caveat is deterministic
        keys: dict[tuple[str, str], PathKey] = {}
        for share in prefixes:
            key = self.encryption.path_key(share.bucket, share.folder)
            # "E(a)/E(b)/": the folder's contents only. The object named exactly "a/b" takes its
            # key from "a", which the recipient does not get, so it must not be writable either.
            scope = key.encrypted_path + "/" if key.encrypted_path else ""
            if not self.api_key.reaches(share.bucket, scope):
                raise AccessError(
                    f"this grant's API key does not reach {share.bucket}/{share.folder}"
                )
            allowed[AllowedPath(share.bucket, scope)] = None
            keys[(key.bucket, key.path)] = key
        caveat = Caveat(
            disallow_reads=not read,
            disallow_writes=not write,
            disallow_lists=not list,
            disallow_deletes=not delete,
            allowed_paths=tuple(allowed),
            not_before=not_before,
            not_after=not_after,
        )
        encryption = EncryptionAccess(root_key=None, path_keys=tuple(keys.values()))
        return AccessGrant(self.bridge_url, self.api_key.restrict(caveat), encryption)

    def encode(self) -> bytes:
        key, access = self.api_key.encode(), self.encryption.encode()
        # Refuse to write what `decode` would refuse to read.
        if len(key) > MAX_KEY_BYTES or len(access) > MAX_ACCESS_BYTES:
            raise ValueError("access grant too large")
        w = Writer().u8(TAG_ACCESS_GRANT).u8(self.VERSION).text(self.bridge_url)
        return w.blob(key).blob(access).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> AccessGrant:
        if len(data) > MAX_GRANT_BYTES:
            raise DecodeError("access grant too large")
        r = Reader(data)
        r.header(TAG_ACCESS_GRANT, cls.VERSION)
        url = r.text(MAX_URL)
        api_key = APIKey.decode(r.blob(MAX_KEY_BYTES))
        encryption = EncryptionAccess.decode(r.blob(MAX_ACCESS_BYTES))
        r.end()
        return cls(url, api_key, encryption)

    def serialize(self) -> str:
        """One printable string: ``mdg1`` followed by base64url of `encode()`."""
        return GRANT_PREFIX + b64encode(self.encode())

    @classmethod
    def parse(cls, text: str) -> AccessGrant:
        """Inverse of `serialize`; `DecodeError` on anything malformed."""
        return cls.decode(decode_token(text, GRANT_PREFIX, MAX_GRANT_BYTES))

    def __repr__(self) -> str:  # a grant is a bearer credential with keys: never print them
        return f"AccessGrant(bridge_url={self.bridge_url!r}, api_key={self.api_key!r})"
