"""API key root secrets at rest: wrapped under a key-encryption key (KEK) the database never sees.

An API key is a macaroon, an HMAC chain from its root secret, so checking one takes the secret
itself: a one-way verifier (as for passwords) cannot check a caveat chain. The bridge therefore
keeps each secret encrypted with AES-256-GCM under a KEK that lives outside the database, and
decrypts it to check a key. Who holds only the database (a copy, a backup, a replica) holds
ciphertexts that rebuild no key; losing the KEK loses every API key (users make new ones: their
data is encrypted under their own keys, not these).

The stored form (same column, no schema change) is::

    0x01 | kek id (8) | nonce (12) | AES-256-GCM(secret) with its tag (48)

The associated data binds the row (key id and project), so a wrapped secret moved to another
row does not decrypt. A 32-byte value is a raw secret from before wrapping: `is_wrapped` tells
them apart, and the bridge wraps those on start (`metadisk.bridge.db.auth.wrap_raw_secrets`).

The KEK is 32 bytes written as 64 hex digits: from ``[database] kek``
(``METADISK_BRIDGE_DATABASE_KEK``, for deployments that keep it off disk), else the file
``[database] kek_file`` (default ``<data_dir>/api-keys.kek``), which the first process creates
(mode 0600). Every bridge process of one database must load the same KEK: a process whose KEK
is not the one the database's secrets are wrapped under refuses to start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metadisk.bridge.config import BridgeConfig
from metadisk.runtime.files import tighten, write_private
from metadisk.runtime.logs import event

KEK_FILE = "api-keys.kek"
KEK_SIZE = 32
SECRET_SIZE = 32  # a raw root secret, as stored before wrapping
VERSION = 1
_ID_SIZE = 8
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEADER = 1 + _ID_SIZE + _NONCE_SIZE
_ID_CONTEXT = b"metadisk bridge kek id v1\0"
_AAD_CONTEXT = b"metadisk api key secret v1\0"

log = logging.getLogger(__name__)


class KekError(Exception):
    """No usable KEK, or one that does not match the database: one line for the operator."""


class UnwrapError(Exception):
    """A stored secret that this KEK does not open (another KEK, a moved or altered row)."""


@dataclass(frozen=True, slots=True, repr=False)
class KeyWrap:
    """Wraps and unwraps API key secrets under one KEK; `source` says where it came from."""

    kek: bytes
    source: str

    def __post_init__(self) -> None:
        if len(self.kek) != KEK_SIZE:
            raise ValueError(f"a KEK is {KEK_SIZE} bytes")

    def __repr__(self) -> str:  # never the key itself
        return f"KeyWrap(id={self.kek_id.hex()}, source={self.source!r})"

    @property
    def kek_id(self) -> bytes:
        """A public fingerprint of the KEK, stored with each wrapped secret."""
        return hashlib.sha256(_ID_CONTEXT + self.kek).digest()[:_ID_SIZE]

    def wrap(self, key_id: bytes, project_id: str, secret: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        sealed = AESGCM(self.kek).encrypt(nonce, secret, _aad(key_id, project_id))
        return bytes([VERSION]) + self.kek_id + nonce + sealed

    def unwrap(self, key_id: bytes, project_id: str, stored: bytes) -> bytes:
        """The secret in `stored`; `UnwrapError` if it is raw, malformed or not this row's."""
        if not is_wrapped(stored):
            raise UnwrapError("not a wrapped secret")
        if stored[1 : _HEADER - _NONCE_SIZE] != self.kek_id:
            raise UnwrapError("wrapped under another KEK")
        nonce = stored[_HEADER - _NONCE_SIZE : _HEADER]
        try:
            return AESGCM(self.kek).decrypt(nonce, stored[_HEADER:], _aad(key_id, project_id))
        except InvalidTag as exc:
            raise UnwrapError("does not decrypt for this row") from exc


def unwrap_or_none(wrap: KeyWrap, key_id: bytes, project_id: str, stored: bytes) -> bytes | None:
    """The secret of a row; None (the key is not genuine) for one this KEK does not open.

    A raw secret is refused too: after start-up wrapping none is left, so one found now was
    written behind the bridge's back, by someone who can write the database but lacks the KEK.
    """
    try:
        return wrap.unwrap(key_id, project_id, stored)
    except UnwrapError as exc:
        event(log, logging.WARNING, "api key secret refused", key_id=key_id, reason=str(exc))
        return None


def is_wrapped(stored: bytes) -> bool:
    """Whether a stored value is in the wrapped format (else: a raw secret, or garbage)."""
    return len(stored) == _HEADER + SECRET_SIZE + _TAG_SIZE and stored[0] == VERSION


def wrapped_kek_id(stored: bytes) -> bytes | None:
    """The id of the KEK a stored value is wrapped under; None for a raw or unknown value."""
    return stored[1 : _HEADER - _NONCE_SIZE] if is_wrapped(stored) else None


def _aad(key_id: bytes, project_id: str) -> bytes:
    return _AAD_CONTEXT + struct.pack(">B", len(key_id)) + key_id + project_id.encode()


def parse_kek(text: str) -> bytes:
    """The KEK in its text form (64 hex digits); ValueError that never repeats the text."""
    try:
        kek = bytes.fromhex(text.strip())
    except ValueError:
        kek = b""
    if len(kek) != KEK_SIZE:
        raise ValueError(
            f"a KEK is {KEK_SIZE * 2} hex digits ({KEK_SIZE} random bytes: `openssl rand -hex 32`)"
        )
    return kek


def kek_path(config: BridgeConfig) -> Path:
    """Where the KEK file is (used only when ``[database] kek`` is not set)."""
    named = config.database.kek_file
    return Path(named).expanduser() if named else config.data_dir / KEK_FILE


def load_kek(config: BridgeConfig) -> KeyWrap:
    """The KEK from the configuration, else from its file, made (0600) on the first start.

    A file others can read is tightened with a warning rather than refused: it is the
    operator's to judge whether it leaked, and a refusal would take the bridge down for a
    mode bit. `KekError` when the file cannot be read or is not a KEK.
    """
    if config.database.kek:
        return KeyWrap(parse_kek(config.database.kek), "[database] kek")
    path = kek_path(config)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        text = _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise KekError(f"cannot read the KEK file {path}: {exc}") from exc
    else:
        tighten(path)
    try:
        return KeyWrap(parse_kek(text), str(path))
    except ValueError as exc:
        raise KekError(f"{path} is not a KEK: {exc}") from exc


def _create(path: Path) -> str:
    text = os.urandom(KEK_SIZE).hex() + "\n"
    try:
        write_private(path, text, exclusive=True)
    except FileExistsError:  # another bridge process made it first: use theirs
        return path.read_text(encoding="ascii")
    except OSError as exc:
        raise KekError(f"cannot create the KEK file {path}: {exc}") from exc
    return text
