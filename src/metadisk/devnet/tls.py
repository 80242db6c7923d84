"""A certificate authority of a local network's own, and the bridge's certificate from it, for
networks that run with TLS on one machine (``LocalNetwork(tls=True)``, ``metadisk up --tls``).

Farmers need nothing from here: their certificates come from their node keys
(`metadisk.core.certificate`). The bridge has an ordinary web certificate, so clients check it
as they would a public bridge's, against ``ca.pem`` (``METADISK_CA_FILE``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR = "tls"
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class NetworkTLS:
    """Where a local network's TLS files are: the CA every client trusts, the bridge's pair."""

    ca_file: Path
    bridge_cert: Path
    bridge_key: Path


def tls_files(root: Path) -> NetworkTLS:
    """Where the TLS files of the network in `root` are (made or not)."""
    where = root / TLS_DIR
    return NetworkTLS(where / "ca.pem", where / "bridge.crt", where / "bridge.key")


def network_tls(root: Path) -> NetworkTLS:
    """The network's CA and bridge certificate under `root`/tls, made on first use (0600 keys)."""
    files = tls_files(root)
    where = files.ca_file.parent
    if files.ca_file.exists() and files.bridge_cert.exists() and files.bridge_key.exists():
        return files
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metadisk local network CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "metadisk bridge")])
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(files.bridge_key, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    _write(files.bridge_cert, cert.public_bytes(Encoding.PEM))
    _write(files.ca_file, ca.public_bytes(Encoding.PEM))  # last: its presence means "complete"
    return files


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
    )


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)
