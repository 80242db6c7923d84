"""Listening sockets, their URLs, and the "listening" line a launcher waits for.

A server process binds first (port 0 for an ephemeral port), then prints one JSON line on stdout::

    sock = bind("127.0.0.1", 0)
    announce_listening(url=url_of(sock), node_id=node_id)  # {"event": "listening", ...}

and the launcher that started it reads that line with `parse_listening`, so it learns the port
without racing for it or polling.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
from typing import Any, Literal

BindCode = Literal["port-in-use", "bad-address"]

# The addresses that mean "every interface": not somewhere to connect to.
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - naming them, not binding


class BindError(Exception):
    """A listening socket could not be made; `code` says why (`port-in-use`, `bad-address`)."""

    def __init__(self, message: str, code: BindCode) -> None:
        super().__init__(message)
        self.message = message
        self.code: BindCode = code


def bind(
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    backlog: int = 2048,
    inheritable: bool = False,
) -> socket.socket:
    """A non-blocking TCP socket listening on `host`:`port` (port 0: one the kernel picks).

    SO_REUSEADDR is always set, so a restarted process takes its port back while the old
    connections sit in TIME_WAIT; SO_REUSEPORT when asked, so that several processes accept on one
    port. `inheritable` keeps the socket open across fork and exec (worker processes).
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # a bracketed IPv6 literal, as in URLs
    if not 0 <= port <= 65535:
        raise BindError(f"port {port} is not a TCP port", "bad-address")
    try:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
        # and without it every response waits out delayed ACKs (about 10x fewer requests/s).
        infos = socket.getaddrinfo(
            host or "0.0.0.0",  # noqa: S104 - "" means every interface, as for socket.bind
            port,
            type=socket.SOCK_STREAM,
            proto=socket.IPPROTO_TCP,
            flags=socket.AI_PASSIVE,
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise BindError(f"cannot listen on {host}: {exc}", "bad-address") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} on {host} is in use", "port-in-use") from exc
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}", "bad-address") from exc
    sock.setblocking(False)
    sock.set_inheritable(inheritable)
    return sock


def url_of(where: socket.socket | tuple[str, int], scheme: str = "http") -> str:
    """The URL to reach a bound socket (or a host and port) from this machine.

    IPv6 hosts are bracketed; a wildcard host is shown as 127.0.0.1.
    """
    host, port = where.getsockname()[:2] if isinstance(where, socket.socket) else where
    if host in WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def announce_listening(**fields: Any) -> None:
    """Print ``{"event": "listening", **fields}`` as one JSON line on stdout, flushed at once."""
    if "event" in fields:
        raise ValueError("the listening line sets its own 'event' field")
    sys.stdout.write(json.dumps({"event": "listening", **fields}) + "\n")
    sys.stdout.flush()


def parse_listening(line: bytes | str) -> dict[str, Any] | None:
    """The fields of a listening line (with its "event"), or None for any other line."""
    try:
        message = json.loads(line)
    except ValueError:  # also not UTF-8
        return None
    if isinstance(message, dict) and message.get("event") == "listening":
        return message
    return None


__all__ = [
    "WILDCARDS",
    "BindCode",
    "BindError",
    "announce_listening",
    "bind",
    "parse_listening",
    "url_of",
]


def is_loopback(remote: str | None) -> bool:
    """Whether a peer's address (as a server sees it) is on the loopback interface."""
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
