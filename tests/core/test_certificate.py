"""Node certificates: a farmer's self-signed certificate proves its node id, and nothing else
passes for one."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.certificate import certificate_node_id, node_certificate, node_private_key
from metadisk.core.errors import DecodeError
from metadisk.core.identity import SEED_SIZE, Identity

NOW = 1_780_000_000


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@given(st.binary(min_size=SEED_SIZE, max_size=SEED_SIZE), st.integers(0, 2**37))
def test_a_certificate_proves_its_node_id(seed: bytes, now: int) -> None:
    identity = Identity(seed)
    assert certificate_node_id(der(node_certificate(identity, now))) == identity.node_id


def test_same_identity_and_time_give_the_same_certificate() -> None:
    identity = Identity(bytes(range(32)))
    assert node_certificate(identity, NOW) == node_certificate(identity, NOW)
    assert node_certificate(identity, NOW) != node_certificate(identity, NOW + 1)


def test_the_certificate_is_self_signed_by_the_node_key() -> None:
    identity = Identity(bytes(range(32)))
    cert = x509.load_pem_x509_certificate(node_certificate(identity, NOW))
    cert.verify_directly_issued_by(cert)  # the node key signed it
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        identity.node_id.hex()
    )
    issued = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    assert cert.not_valid_before_utc < issued < cert.not_valid_after_utc
    assert b"PRIVATE KEY" in node_private_key(identity)


def test_a_certificate_of_another_key_type_is_no_node() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(DecodeError, match="Ed25519"):
        certificate_node_id(cert.public_bytes(Encoding.DER))


@pytest.mark.parametrize("junk", [b"", b"\x30\x03\x02\x01\x01", b"not a certificate"])
def test_junk_is_no_certificate(junk: bytes) -> None:
    with pytest.raises(DecodeError):
        certificate_node_id(junk)
