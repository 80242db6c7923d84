"""Hierarchical, deterministic encryption of object paths, and the keys a grant carries.

A path is a bucket name (visible to the bridge) and components separated by ``/``. Every
component has a key derived one-way from its parent's key and its own plaintext name, so the key
of ``a/b`` opens everything below ``a/b/`` and nothing else::

    K(bucket)   = BLAKE3-derive("...bucket key v1",      root_key || bucket)
    K(p/c)      = BLAKE3-derive("...path child key v1",  K(p) || c)
    N(p)        = BLAKE3-derive("...path name key v1",   K(p)), 64 bytes: AES-256-SIV key
    E(p/c)      = base64url(AES-256-SIV(N(p), c))                 # the name the bridge sees
    object(p/c) = BLAKE3-derive("...object key v1",      K(p) || c)

Names are encrypted with AES-SIV (RFC 5297): deterministic, so the same path always gives the
same encrypted path and the bridge can list by encrypted prefix, yet authenticated, so a wrong key
or a tampered name raises `DecryptionError`. The encrypted name is 16 bytes (the synthetic IV)
longer than the plaintext, in unpadded base64url, which never contains ``/`` and is never empty,
so empty components (``a//b``, ``a/``) keep their place.

An object's key comes from its parent's key and its name, not from the path key of its full path:
a grant for the prefix ``a/b`` reaches the objects below ``a/b/`` but not an object named ``a/b``.

Path strings: a relative path is always at least one component (``relative.split("/")``), so ""
is one empty component. A `PathKey` names a prefix, and its ``path`` is "" (the whole bucket) or
components whose last one is not empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from metadisk.core.encoding import Reader, Writer, b64decode, b64encode
from metadisk.core.errors import AccessError, DecodeError, DecryptionError

KEY_SIZE = 32
SIV_SIZE = 16  # bytes an encrypted component adds to its plaintext
TAG_ENCRYPTION_ACCESS = 0x31

# Cipher suite 1: BLAKE3 derive-key hierarchy, AES-256-SIV names, AES-256-GCM content blocks
# (metadisk.core.content) and wrapped keys (metadisk.core.keys). A new suite gets a new number.
CIPHER_SUITE = 1

_BUCKET_CONTEXT = "metadisk 2026 bucket key v1"
_CHILD_CONTEXT = "metadisk 2026 path child key v1"
_NAME_CONTEXT = "metadisk 2026 path name key v1"
_OBJECT_CONTEXT = "metadisk 2026 object key v1"

_MAX_BUCKET = 1024
_MAX_PATH = 1 << 16
_MAX_ENCRYPTED_PATH = 1 << 18
_ENCRYPTED_PATH = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")


@dataclass(frozen=True, slots=True)
class PathKey:
    """The key of a path prefix in a bucket, with the prefix's plaintext and encrypted forms."""

    bucket: str
    path: str  # "" for the whole bucket; components joined by "/"; never a trailing "/"
    encrypted_path: str  # how the bridge sees `path`; "" when path == ""
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_bucket(self.bucket)
        if not isinstance(self.path, str) or not isinstance(self.encrypted_path, str):
            raise DecodeError("a path key's paths are text")
        if self.path.endswith("/") or not _is_utf8(self.path):
            raise DecodeError("a path key's path is valid Unicode and never ends in '/'")
        if (self.path == "") != (self.encrypted_path == ""):
            raise DecodeError("a path and its encrypted form are empty together")
        if self.path and (
            _ENCRYPTED_PATH.fullmatch(self.encrypted_path) is None
            or self.path.count("/") != self.encrypted_path.count("/")
        ):
            raise DecodeError("encrypted path does not match the path's components")
        if not isinstance(self.key, bytes) or len(self.key) != KEY_SIZE:
            raise DecodeError(f"a path key is exactly {KEY_SIZE} bytes")

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")) if self.path else ()


def bucket_root(root_key: bytes, bucket: str) -> PathKey:
    """The key of a whole bucket."""
    if not isinstance(root_key, bytes) or len(root_key) != KEY_SIZE:
        raise ValueError(f"a root key is exactly {KEY_SIZE} bytes")
    _check_bucket(bucket, ValueError)
    key = _derive(_BUCKET_CONTEXT, root_key + bucket.encode("utf-8"))
    return PathKey(bucket, "", "", key)


def descend(base: PathKey, relative: str) -> PathKey:
    """The key of the prefix ``base.path + "/" + relative`` (whose last component is not empty)."""
    parts = _split(relative)
    if parts[-1] == "":
        raise ValueError("a path key's path never ends in '/' (an empty last component)")
    key = base.key
    encrypted = []
    for part in parts:
        encrypted.append(_encrypt_component(key, part))
        key = _child_key(key, part)
    return PathKey(
        base.bucket,
        _join(base.path, relative),
        _join(base.encrypted_path, "/".join(encrypted)),
        key,
    )


def encrypt_path(base: PathKey, relative: str) -> str:
    """The encrypted form (components joined by "/") of `relative` below `base`."""
    key = base.key
    encrypted = []
    for part in _split(relative):
        encrypted.append(_encrypt_component(key, part))
        key = _child_key(key, part)
    return "/".join(encrypted)


def decrypt_path(base: PathKey, encrypted_relative: str) -> str:
    """Inverse of `encrypt_path`.

    Raises `DecryptionError` for anything that is not a path encrypted under `base`, malformed
    text included: a listing may hold names under keys this caller does not have.
    """
    if not isinstance(encrypted_relative, str):
        raise DecryptionError("an encrypted path is text")
    key = base.key
    parts = []
    for encrypted in encrypted_relative.split("/"):
        part = _decrypt_component(key, encrypted)
        parts.append(part)
        key = _child_key(key, part)
    return "/".join(parts)


def object_key(base: PathKey, relative: str) -> bytes:
    """The 32-byte key of the object at ``base.path + "/" + relative``."""
    parts = _split(relative)
    key = base.key
    for part in parts[:-1]:
        key = _child_key(key, part)
    return _derive(_OBJECT_CONTEXT, key + parts[-1].encode("utf-8"))


@dataclass(frozen=True, slots=True)
class EncryptionAccess:
    """The encryption keys an access grant carries: the root key, or keys for shared prefixes."""

    root_key: bytes | None = field(repr=False)  # full access, or None when restricted
    path_keys: tuple[PathKey, ...] = ()

    VERSION = 1

    def __post_init__(self) -> None:
        if self.root_key is not None and (
            not isinstance(self.root_key, bytes) or len(self.root_key) != KEY_SIZE
        ):
            raise DecodeError(f"a root key is exactly {KEY_SIZE} bytes")
        if not isinstance(self.path_keys, tuple) or not all(
            isinstance(pk, PathKey) for pk in self.path_keys
        ):
            raise DecodeError("path keys must be a tuple of PathKey")
        if len({(pk.bucket, pk.path) for pk in self.path_keys}) != len(self.path_keys):
            raise DecodeError("two path keys for the same prefix")

    def resolve(self, bucket: str, path: str) -> tuple[PathKey, str]:
        """The key covering the object `path` (longest prefix above it) and the rest of the path.

        The rest is never empty of components, so ``object_key(*access.resolve(b, p))`` works;
        `AccessError` if no key of this access reaches `path`.
        """
        parts = _split(path)
        best: PathKey | None = None
        for pk in self.path_keys:
            own = pk.components
            if (
                pk.bucket == bucket
                and len(own) < len(parts)
                and tuple(parts[: len(own)]) == own
                and (best is None or len(own) > len(best.components))
            ):
                best = pk
        if best is None:
            if self.root_key is None:
                raise AccessError(f"this access cannot reach {bucket}/{path}")
            best = bucket_root(self.root_key, bucket)
        return best, "/".join(parts[len(best.components) :])

    def path_key(self, bucket: str, prefix: str) -> PathKey:
        """The key of exactly `prefix` ("" for the whole bucket), derived from the closest key."""
        if prefix == "":
            for pk in self.path_keys:
                if pk.bucket == bucket and pk.path == "":
                    return pk
            if self.root_key is None:
                raise AccessError(f"this access cannot reach all of bucket {bucket}")
            return bucket_root(self.root_key, bucket)
        if prefix.endswith("/"):
            raise ValueError("a prefix never ends in '/'")
        for pk in self.path_keys:
            if pk.bucket == bucket and pk.path == prefix:
                return pk
        return descend(*self.resolve(bucket, prefix))

    def restrict(self, bucket: str, prefix: str) -> EncryptionAccess:
        """An access holding only the key for `prefix` in `bucket` ("" = the whole bucket).

        `prefix` names a folder on component boundaries; one trailing "/" is allowed, so
        "photos" and "photos/" both share everything below ``photos/``. `AccessError` if this
        access cannot reach that folder.
        """
        if prefix.endswith("/") and prefix != "/":
            prefix = prefix[:-1]
        return EncryptionAccess(None, (self.path_key(bucket, prefix),))

    def encode(self) -> bytes:
        w = Writer().u8(TAG_ENCRYPTION_ACCESS).u8(self.VERSION).u8(CIPHER_SUITE)
        if self.root_key is None:
            w.u8(0)
        else:
            w.u8(1).fixed(self.root_key, KEY_SIZE)
        w.u32(len(self.path_keys))
        for pk in self.path_keys:
            w.text(pk.bucket).text(pk.path).text(pk.encrypted_path).fixed(pk.key, KEY_SIZE)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> EncryptionAccess:
        r = Reader(data)
        r.header(TAG_ENCRYPTION_ACCESS, cls.VERSION)
        suite = r.u8()
        if suite != CIPHER_SUITE:
            raise DecodeError(f"unsupported cipher suite {suite}")
        has_root = r.u8()
        if has_root not in (0, 1):
            raise DecodeError("root key flag must be 0 or 1")
        root_key = r.fixed(KEY_SIZE) if has_root else None
        count = r.u32()
        path_keys = []
        for _ in range(count):  # each entry takes >= 44 bytes, so a huge count fails fast
            bucket = r.text(_MAX_BUCKET)
            path = r.text(_MAX_PATH)
            encrypted_path = r.text(_MAX_ENCRYPTED_PATH)
            path_keys.append(PathKey(bucket, path, encrypted_path, r.fixed(KEY_SIZE)))
        r.end()
        return cls(root_key, tuple(path_keys))


def _derive(context: str, material: bytes, length: int = KEY_SIZE) -> bytes:
    return bytes(blake3.blake3(material, derive_key_context=context).digest(length))


def _child_key(parent: bytes, component: str) -> bytes:
    # The parent key is always 32 bytes, so parent || name is unambiguous.
    return _derive(_CHILD_CONTEXT, parent + component.encode("utf-8"))


def _name_cipher(parent: bytes) -> AESSIV:
    return AESSIV(_derive(_NAME_CONTEXT, parent, 64))


def _encrypt_component(parent: bytes, component: str) -> str:
    return b64encode(_name_cipher(parent).encrypt(component.encode("utf-8"), None))


def _decrypt_component(parent: bytes, encrypted: str) -> str:
    try:
        sealed = b64decode(encrypted)
    except DecodeError as exc:
        raise DecryptionError("encrypted path component is not base64url") from exc
    if len(sealed) < SIV_SIZE:
        raise DecryptionError("encrypted path component is truncated")
    try:
        raw = _name_cipher(parent).decrypt(sealed, None)
    except InvalidTag as exc:
        raise DecryptionError("path component does not decrypt: wrong key or tampered") from exc
    try:
        component = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionError("decrypted path component is not UTF-8") from exc
    if "/" in component:
        raise DecryptionError("decrypted path component contains '/'")
    return component


def _split(relative: str) -> list[str]:
    if not isinstance(relative, str):
        raise ValueError("a path is text")
    if not _is_utf8(relative):
        raise ValueError("a path must be valid Unicode (no lone surrogates)")
    return relative.split("/")


def _join(base: str, relative: str) -> str:
    return f"{base}/{relative}" if base else relative


def _check_bucket(bucket: str, error: type[Exception] = DecodeError) -> None:
    if not isinstance(bucket, str) or not bucket or "/" in bucket:
        raise error("a bucket name is non-empty text without '/'")
    if not _is_utf8(bucket) or len(bucket.encode("utf-8")) > _MAX_BUCKET:
        raise error("a bucket name is valid Unicode of at most 1024 UTF-8 bytes")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
