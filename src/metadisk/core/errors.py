"""The errors `metadisk.core` raises.

Every error carries a stable ``code`` that callers map to API and CLI errors::

    CoreError
    ├── DecodeError            malformed          bytes that are not a valid encoding
    ├── SignatureError         bad-signature      a signature that does not verify
    ├── ExpiredError           expired            a message or caveat past its time
    ├── DecryptionError        decryption-failed  wrong key, tampered, truncated or moved data
    ├── IntegrityError         integrity          hashes, sizes or Merkle proofs that do not match
    ├── ErasureError           erasure            too few or inconsistent pieces to decode
    └── AccessError            access-denied      a macaroon or grant that does not allow the action
"""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error raised by `metadisk.core`."""

    code = "core-error"


class DecodeError(CoreError, ValueError):
    """Bytes or text that are not a valid encoding of the expected message."""

    code = "malformed"


class SignatureError(CoreError):
    """A signature that does not verify, or a signer that is not the expected one."""

    code = "bad-signature"


class ExpiredError(CoreError):
    """A message or caveat used outside its validity window."""

    code = "expired"


class DecryptionError(CoreError):
    """Ciphertext that does not decrypt: wrong key, tampered, truncated, reordered or moved."""

    code = "decryption-failed"


class IntegrityError(CoreError):
    """Data that does not match its declared hash, size or Merkle root."""

    code = "integrity"


class ErasureError(CoreError):
    """Pieces that cannot rebuild a segment (too few, wrong sizes or indices)."""

    code = "erasure"


class AccessError(CoreError):
    """An API key or access grant that does not allow the requested action."""

    code = "access-denied"
