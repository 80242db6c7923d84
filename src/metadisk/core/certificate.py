"""TLS certificates bound to node identities: a farmer's self-signed certificate, and the node id a
certificate proves.

A farmer serves TLS with a self-signed X.509 certificate over its own Ed25519 identity key, so the
certificate's public key *is* the node's public key and its node id follows from it. A peer that
expects node X checks, once the handshake is done, that the certificate's key hashes to X: TLS 1.3
has already made the server sign the handshake with that key, so only the holder of X's private
key gets that far. No certificate authority is involved, and none could vouch for a node id
anyway. Storj binds node ids to certificates the same way (its ids hash the certificate
authority's key); we skip the intermediate and use the identity key directly.

The TLS handshake signs with a context string of its own ("TLS 1.3, server CertificateVerify"),
so a handshake signature can never be replayed as a metadisk signed message, whose domain prefix
differs, nor the other way around.
"""

from __future__ import annotations

import datetime

import blake3
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from metadisk.core.errors import DecodeError
from metadisk.core.identity import Identity, NodeId

# Peers never check the validity period (the node id is what they check), but TLS libraries
# and people reading a certificate do: it is made at each start, valid from a day before.
VALIDITY = datetime.timedelta(days=365)
_SKEW = datetime.timedelta(days=1)


def node_certificate(identity: Identity, now: int) -> bytes:
    """A PEM certificate for `identity`'s own key, self-signed, issued at `now` (Unix seconds).

    The same identity and time always give the same bytes (Ed25519 signatures and the serial
    number are deterministic), which keeps the function testable with fixed vectors.
    """
    private = Ed25519PrivateKey.from_private_bytes(identity.seed)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "metadisk node"),
            x509.NameAttribute(NameOID.COMMON_NAME, identity.node_id.hex()),
        ]
    )
    issued = datetime.datetime.fromtimestamp(now, datetime.UTC)
    digest = blake3.blake3(identity.node_id.raw + now.to_bytes(8, "big")).digest(length=16)
    serial = int.from_bytes(digest, "big") >> 1 or 1  # positive, at most 127 bits (RFC 5280)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(serial)
        .not_valid_before(issued - _SKEW)
        .not_valid_after(issued + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, None)
    )
    return certificate.public_bytes(Encoding.PEM)


def node_private_key(identity: Identity) -> bytes:
    """`identity`'s private key as unencrypted PKCS#8 PEM, the form TLS libraries load."""
    private = Ed25519PrivateKey.from_private_bytes(identity.seed)
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def certificate_node_id(der: bytes) -> NodeId:
    """The node id a DER certificate's public key gives; `DecodeError` unless it is Ed25519.

    Only the key matters: the handshake proved that the peer holds its private half.
    """
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as exc:
        raise DecodeError("not an X.509 certificate") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise DecodeError("the certificate's key is not an Ed25519 node key")
    return NodeId.from_public_key(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
