"""Root keys from passphrases, key wrapping, content keys and encrypted object metadata.

The key hierarchy (see ``docs/core-crypto.md``)::

    passphrase + project salt --Argon2id(KdfParams)--> root key
    root key --paths.bucket_root / descend--> path keys --paths.object_key--> object key
    object key --wrap--> random metadata key --AES-256-GCM--> object metadata
    object key --wrap_segment_key--> random content key per segment --content--> ciphertext

Random keys are wrapped with AES-256-GCM under a random 96-bit nonce rather than AES-KW
(RFC 3394): GCM authenticates a context (so a segment's wrapped key cannot be replayed for another
segment, or as a metadata key), has a full 128-bit tag rather than KW's 64-bit check, and is the
one AEAD we already depend on. An object key wraps one key per segment plus one for metadata, far
below the 2**32 wraps after which random GCM nonces risk repeating.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import DecodeError, DecryptionError

KEY_SIZE = 32
MIN_SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16

TAG_KDF_PARAMS = 0x30

# Wrapped key: version byte | nonce | AES-256-GCM(key) | tag. The version byte is authenticated
# too (in the AAD), so a future format can never be confused with this one.
WRAP_VERSION = 1
WRAPPED_KEY_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE
_WRAP_DOMAIN = b"metadisk wrapped key\x00"

# Encrypted metadata: version byte | AES-256-GCM(metadata) | tag, under a fresh key used exactly
# once, so the nonce is fixed and not stored.
METADATA_VERSION = 1
_METADATA_NONCE = bytes(NONCE_SIZE)
_METADATA_AAD = b"metadisk object metadata\x00"
_METADATA_WRAP_CONTEXT = b"metadata key"
_SEGMENT_WRAP_CONTEXT = b"segment key "

# Argon2id parameters that a decoded recipe may ask for: beyond these a grant from someone else
# could make us allocate absurd memory or spin for hours.
_MAX_TIME_COST = 1 << 10
_MAX_MEMORY_KIB = 4 << 20  # 4 GiB
_MAX_PARALLELISM = 255
_ARGON2_VERSION = 0x13  # pinned, not the library's default: a new Argon2 version is a new recipe


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id (v1.3, 32-byte output) cost parameters: a self-describing root-key recipe.

    ``memory_cost`` is in KiB. `DEFAULT_KDF_PARAMS` is RFC 9106's second recommended option.
    """

    time_cost: int
    memory_cost: int
    parallelism: int

    VERSION = 1

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("time_cost", self.time_cost, 1, _MAX_TIME_COST),
            ("parallelism", self.parallelism, 1, _MAX_PARALLELISM),
            ("memory_cost", self.memory_cost, 8, _MAX_MEMORY_KIB),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise DecodeError(f"Argon2id {name} must be between {low} and {high}")
        if self.memory_cost < 8 * self.parallelism:
            raise DecodeError("Argon2id memory_cost must be at least 8 KiB per lane")

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(TAG_KDF_PARAMS)
            .u8(self.VERSION)
            .u32(self.time_cost)
            .u32(self.memory_cost)
            .u32(self.parallelism)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> KdfParams:
        r = Reader(data)
        r.header(TAG_KDF_PARAMS, cls.VERSION)
        time_cost, memory_cost, parallelism = r.u32(), r.u32(), r.u32()
        r.end()
        return cls(time_cost, memory_cost, parallelism)


# RFC 9106 section 4, second recommended option: 64 MiB is affordable on phones and small
# gateways, and about 0.13 s on this project's machines. The first option (2 GiB) is not.
DEFAULT_KDF_PARAMS = KdfParams(time_cost=3, memory_cost=64 * 1024, parallelism=4)


def derive_root_key(
    passphrase: str | bytes, salt: bytes, params: KdfParams = DEFAULT_KDF_PARAMS
) -> bytes:
    """Derive the 32-byte root key from a passphrase and the project's salt (>= 16 bytes).

    Text passphrases are NFC-normalized and UTF-8 encoded, so the same passphrase typed on
    systems that compose accents differently gives the same key; bytes are used as they are.
    """
    if isinstance(passphrase, str):
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    else:
        secret = bytes(passphrase)
    if not secret:
        raise ValueError("the passphrase must not be empty")
    if len(salt) < MIN_SALT_SIZE:
        raise ValueError(f"the salt must be at least {MIN_SALT_SIZE} bytes")
    # Here, not at the top: argon2 (and cffi) cost ~25 ms of every start-up, and only a
    # passphrase needs them (a grant carries its keys).
    from argon2.exceptions import HashingError
    from argon2.low_level import Type, hash_secret_raw

    try:
        return bytes(
            hash_secret_raw(
                secret,
                bytes(salt),
                time_cost=params.time_cost,
                memory_cost=params.memory_cost,
                parallelism=params.parallelism,
                hash_len=KEY_SIZE,
                type=Type.ID,
                version=_ARGON2_VERSION,
            )
        )
    except HashingError as exc:  # e.g. memory allocation failed
        raise ValueError(f"Argon2id failed: {exc}") from exc


# The verifier is HMAC-SHA256 under the root key of this fixed text: a PRF output that says
# nothing about the root key, so checking a guess still costs a whole Argon2id run.
VERIFIER_SIZE = 32
_VERIFIER_MESSAGE = b"metadisk passphrase verifier\x00v1"


def passphrase_verifier(root_key: bytes) -> bytes:
    """The 32-byte value the bridge keeps to tell a right passphrase from a wrong one.

    See ``docs/core-crypto.md`` (passphrase verifier) for why it reveals nothing more about the
    passphrase than trying it does: each guess still costs one Argon2id.
    """
    _check_key("root key", root_key)
    return hmac.new(root_key, _VERIFIER_MESSAGE, hashlib.sha256).digest()


def verifier_matches(root_key: bytes, verifier: bytes) -> bool:
    """Whether `verifier` was made from `root_key` (compared in constant time)."""
    return hmac.compare_digest(passphrase_verifier(root_key), bytes(verifier))


def new_content_key(randbytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A fresh random 32-byte key (one per segment, or per object's metadata)."""
    return _random(randbytes, KEY_SIZE)


def wrap_key(
    wrapping_key: bytes,
    key: bytes,
    randbytes: Callable[[int], bytes] = os.urandom,
    *,
    context: bytes = b"",
) -> bytes:
    """Encrypt a 32-byte `key` under `wrapping_key`; `context` must match when unwrapping.

    The result is `WRAPPED_KEY_SIZE` (61) bytes: version, nonce, ciphertext and tag.
    """
    _check_key("wrapping key", wrapping_key)
    _check_key("key", key)
    nonce = _random(randbytes, NONCE_SIZE)
    header = bytes([WRAP_VERSION]) + nonce
    sealed = AESGCM(wrapping_key).encrypt(nonce, key, _wrap_aad(context))
    return header + sealed


def unwrap_key(wrapping_key: bytes, wrapped: bytes, *, context: bytes = b"") -> bytes:
    """Recover a key from `wrap_key`; `DecryptionError` if the key, context or bytes are wrong."""
    _check_key("wrapping key", wrapping_key)
    if not isinstance(wrapped, bytes) or len(wrapped) != WRAPPED_KEY_SIZE:
        raise DecryptionError(f"a wrapped key is exactly {WRAPPED_KEY_SIZE} bytes")
    if wrapped[0] != WRAP_VERSION:
        raise DecryptionError(f"unknown wrapped key version {wrapped[0]}")
    nonce = wrapped[1 : 1 + NONCE_SIZE]
    try:
        return AESGCM(wrapping_key).decrypt(nonce, wrapped[1 + NONCE_SIZE :], _wrap_aad(context))
    except InvalidTag as exc:
        raise DecryptionError("wrapped key does not decrypt: wrong key or tampered") from exc


def rewrap_key(
    old_wrapping_key: bytes,
    new_wrapping_key: bytes,
    wrapped: bytes,
    randbytes: Callable[[int], bytes] = os.urandom,
    *,
    context: bytes = b"",
) -> bytes:
    """Move a wrapped key under a new wrapping key: how a rename re-keys an object cheaply."""
    return wrap_key(
        new_wrapping_key,
        unwrap_key(old_wrapping_key, wrapped, context=context),
        randbytes,
        context=context,
    )


def wrap_segment_key(
    object_key: bytes,
    content_key: bytes,
    segment_index: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Wrap a segment's content key under its object key, bound to the segment's index."""
    return wrap_key(object_key, content_key, randbytes, context=_segment_context(segment_index))


def unwrap_segment_key(object_key: bytes, wrapped: bytes, segment_index: int) -> bytes:
    """Inverse of `wrap_segment_key`; `DecryptionError` for another object's or segment's key."""
    return unwrap_key(object_key, wrapped, context=_segment_context(segment_index))


def rewrap_segment_key(
    old_object_key: bytes,
    new_object_key: bytes,
    wrapped: bytes,
    segment_index: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Re-wrap a segment's content key for its object's new path after a rename."""
    return rewrap_key(
        old_object_key, new_object_key, wrapped, randbytes, context=_segment_context(segment_index)
    )


def encrypt_metadata(
    object_key: bytes, metadata: bytes, randbytes: Callable[[int], bytes] = os.urandom
) -> tuple[bytes, bytes]:
    """Encrypt an object's metadata under a fresh key; return (encrypted, wrapped metadata key).

    The two parts are stored side by side. Renaming an object re-wraps only the small key
    (`rewrap_metadata_key`); the encrypted metadata stays as it is.
    """
    _check_key("object key", object_key)
    metadata_key = new_content_key(randbytes)
    wrapped = wrap_key(object_key, metadata_key, randbytes, context=_METADATA_WRAP_CONTEXT)
    sealed = AESGCM(metadata_key).encrypt(_METADATA_NONCE, metadata, _METADATA_AAD)
    return bytes([METADATA_VERSION]) + sealed, wrapped


def decrypt_metadata(object_key: bytes, encrypted: bytes, wrapped_metadata_key: bytes) -> bytes:
    """Inverse of `encrypt_metadata`; `DecryptionError` on a wrong key or tampered bytes."""
    metadata_key = unwrap_key(object_key, wrapped_metadata_key, context=_METADATA_WRAP_CONTEXT)
    if not isinstance(encrypted, bytes) or len(encrypted) < 1 + TAG_SIZE:
        raise DecryptionError("encrypted metadata is truncated")
    if encrypted[0] != METADATA_VERSION:
        raise DecryptionError(f"unknown encrypted metadata version {encrypted[0]}")
    try:
        return AESGCM(metadata_key).decrypt(_METADATA_NONCE, encrypted[1:], _METADATA_AAD)
    except InvalidTag as exc:
        raise DecryptionError("metadata does not decrypt: wrong key or tampered") from exc


def rewrap_metadata_key(
    old_object_key: bytes,
    new_object_key: bytes,
    wrapped_metadata_key: bytes,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Re-wrap an object's metadata key for its new path after a rename."""
    return rewrap_key(
        old_object_key,
        new_object_key,
        wrapped_metadata_key,
        randbytes,
        context=_METADATA_WRAP_CONTEXT,
    )


def _segment_context(segment_index: int) -> bytes:
    if not isinstance(segment_index, int) or not 0 <= segment_index < 1 << 32:
        raise ValueError("segment index out of range")
    return _SEGMENT_WRAP_CONTEXT + segment_index.to_bytes(4, "big")


def _wrap_aad(context: bytes) -> bytes:
    return _WRAP_DOMAIN + bytes([WRAP_VERSION]) + bytes(context)


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"the {name} must be exactly {KEY_SIZE} bytes")


def _random(randbytes: Callable[[int], bytes], size: int) -> bytes:
    value = randbytes(size)
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"randbytes({size}) must return exactly {size} bytes")
    return value
