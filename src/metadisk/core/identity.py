"""Ed25519 identities of farmers and bridges, and node ids with proof of work.

A node id is the BLAKE3 hash of the node's public key under a fixed context. A bridge may ask for a
proof-of-work difficulty d: the node id must end in at least d zero bits, which makes a new identity
cost about 2**d key generations (Sybil resistance), while checking it costs one hash.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from metadisk.core.errors import DecodeError, SignatureError

NODE_ID_SIZE = 32
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
_NODE_ID_CONTEXT = "metadisk 2026 node id v1"


@dataclass(frozen=True, slots=True)
class NodeId:
    """A node's 32-byte id, derived from its public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != NODE_ID_SIZE:
            raise DecodeError("a node id is exactly 32 bytes")

    @classmethod
    def from_public_key(cls, public_key: bytes) -> NodeId:
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise DecodeError("an Ed25519 public key is exactly 32 bytes")
        return cls(blake3.blake3(public_key, derive_key_context=_NODE_ID_CONTEXT).digest())

    @classmethod
    def from_hex(cls, text: str) -> NodeId:
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise DecodeError("a node id is 64 hex digits") from exc

    def hex(self) -> str:
        return self.raw.hex()

    def difficulty(self) -> int:
        """Number of trailing zero bits: the proof of work this id carries."""
        value = int.from_bytes(self.raw, "big")
        if value == 0:
            return NODE_ID_SIZE * 8
        return (value & -value).bit_length() - 1

    def __str__(self) -> str:
        return self.hex()


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature; raise `SignatureError` if it does not verify."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise SignatureError("malformed key or signature")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


class Identity:
    """An Ed25519 key pair with its node id. Keep `seed` secret; share `public_key`."""

    __slots__ = ("_private", "node_id", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise DecodeError("an Ed25519 seed is exactly 32 bytes")
        self.seed = bytes(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.public_key = self._private.public_key().public_bytes_raw()
        self.node_id = NodeId.from_public_key(self.public_key)

    @classmethod
    def generate(
        cls, difficulty: int = 0, randbytes: Callable[[int], bytes] = os.urandom
    ) -> Identity:
        """Make a new identity whose node id has at least `difficulty` trailing zero bits."""
        if not 0 <= difficulty <= 32:
            raise ValueError("difficulty must be between 0 and 32 bits")
        while True:
            identity = cls(randbytes(SEED_SIZE))
            if identity.node_id.difficulty() >= difficulty:
                return identity

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:  # never show the seed
        return f"Identity(node_id={self.node_id.hex()[:16]}...)"
