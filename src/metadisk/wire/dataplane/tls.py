"""TLS to farmers, pinned to node ids: whoever answers at a farmer's address must hold the key of
the node id we expect (`metadisk.core.certificate` has why that needs no certificate authority).

`NodeIdentityCheck` does it for aiohttp: passed as a request's ``ssl=``, it runs once the
handshake is done and before the request is written, so an order limit or a piece never reaches a
man in the middle. It compares equal for one node id, so aiohttp pools connections per node:
a connection proven to be node A's is never reused for node B at the same address.
`pinned_connection` does the same for the CLI's blocking calls to its own farmer.
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_exceptions import ServerFingerprintMismatch

from metadisk.core.certificate import certificate_node_id
from metadisk.core.errors import DecodeError
from metadisk.core.identity import NodeId


class WrongNodeIdentity(ServerFingerprintMismatch):
    """The peer at a farmer's address is not the node we expected (or shows no node key)."""

    def __init__(self, expected: NodeId, got: NodeId | None, host: str, port: int) -> None:
        super().__init__(expected.raw, got.raw if got is not None else b"", host, port)
        self.node_id = expected
        self.found = got

    def __str__(self) -> str:
        return _mismatch(self.node_id, self.found, self.host, self.port)


class NotThatNode(ConnectionError):
    """`pinned_connection`'s refusal: the peer is not the node expected."""


def _mismatch(expected: NodeId, found: NodeId | None, host: str, port: int) -> str:
    shown = found.hex()[:16] + "..." if found is not None else "no node key"
    return f"{host}:{port} is not node {expected.hex()[:16]}... (its certificate shows {shown})"


def peer_node_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> NodeId | None:
    """The node id the peer's certificate proves, or None (no TLS, no certificate, not a node)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return certificate_node_id(der)
    except DecodeError:
        return None


class NodeIdentityCheck(aiohttp.Fingerprint):
    """aiohttp's hook after the TLS handshake, checking a node id instead of a hash."""

    def __init__(self, node_id: NodeId) -> None:
        # aiohttp's own fingerprint field is never compared: `check` is ours.
        super().__init__(node_id.raw)
        self.node_id = node_id

    def check(self, transport: asyncio.Transport) -> None:
        found = peer_node_id(transport.get_extra_info("ssl_object"))
        if found != self.node_id:
            host, port, *_ = transport.get_extra_info("peername") or ("?", 0)
            raise WrongNodeIdentity(self.node_id, found, host, port)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeIdentityCheck) and other.node_id == self.node_id

    def __hash__(self) -> int:
        return hash(self.node_id)


def transport_security(address: str, node_id: NodeId | None) -> NodeIdentityCheck | bool:
    """What to pass as aiohttp's ``ssl=`` for a request to the farmer `node_id` at `address`.

    Plain ``http://`` farmers (a loopback development network) get nothing to check. An
    ``https://`` farmer is always pinned: a TLS farmer whose id we do not know is refused
    rather than trusted on first use.
    """
    if not address.startswith("https://"):
        return True
    if node_id is None:
        raise ValueError("a TLS farmer is reached only with its node id to check")
    return NodeIdentityCheck(node_id)


_UNVERIFIED = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE  # the node id is checked instead, after the handshake


def pinned_connection(url: str, node_id: NodeId, timeout: float) -> http.client.HTTPConnection:
    """A connected HTTP(S) connection to the farmer at `url`, its node id checked when TLS.

    Raises `NotThatNode` when the peer is someone else, another `OSError` when unreachable.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme != "https":
        plain = http.client.HTTPConnection(host, port, timeout=timeout)
        plain.connect()
        return plain
    connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_UNVERIFIED)
    connection.connect()
    sock = connection.sock
    found = peer_node_id(sock if isinstance(sock, ssl.SSLSocket) else None)
    if found != node_id:
        connection.close()
        raise NotThatNode(_mismatch(node_id, found, host, port or 443))
    return connection
