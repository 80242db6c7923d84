"""The farmer's TLS context: a certificate of its own node key, made at every start.

`metadisk.core.certificate` says why a self-signed certificate over the identity key is all a
peer needs. The certificate is made in memory and handed to OpenSSL through files in a private
temporary directory that is removed at once: the identity seed stays the only copy of the key on
disk.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from metadisk.core.certificate import node_certificate, node_private_key
from metadisk.core.identity import Identity


def server_context(identity: Identity, now: int) -> ssl.SSLContext:
    """A TLS 1.3 server context presenting `identity`'s certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # TLS 1.3 only: every peer is metadisk, and 1.3 signs the whole handshake with the node key.
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with tempfile.TemporaryDirectory(prefix="metadisk-tls-") as scratch:  # mode 0700
        cert, key = Path(scratch, "node.crt"), Path(scratch, "node.key")
        cert.write_bytes(node_certificate(identity, now))
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(node_private_key(identity))
        context.load_cert_chain(cert, key)
    return context
