"""Asking a farmer who it is: ``GET {address}/v1/node`` (the farmer's data-plane contract).

A failed ping-back is reported as one code of `PING_FAILURES`, never as the exception's text: the
code is public (`GET /v1/nodes/{id}`), and text such as "Connection refused" or the HTTP status a
host answered would turn the bridge into a port scanner whose results anyone can read. The detail
goes only to the bridge's own log.
"""

from __future__ import annotations

import json
import socket
import typing
from typing import Literal, Protocol

import aiohttp

MAX_RESPONSE = 64 * 1024

PingFailure = Literal[
    "unreachable",  # connection refused, reset or dropped; no route
    "timeout",  # no whole answer within the ping timeout
    "http-error",  # answered with an HTTP status other than 200
    "bad-answer",  # answered 200 (or garbled HTTP), but not with the node's JSON
    "wrong-node",  # answered with another node's id
    "unresolvable",  # the address's host name does not resolve
]
PING_FAILURES: tuple[PingFailure, ...] = typing.get_args(PingFailure)


class Pinger(Protocol):
    async def __call__(self, address: str, wait: float) -> str:
        """The node id (hex) the farmer at `address` reports; `PingFailed` if it cannot."""
        ...


class PingFailed(Exception):
    """A ping-back that did not get a node id: `code` may be shown to anyone, `detail` may not."""

    def __init__(self, code: PingFailure, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: PingFailure = code
        self.detail = detail


class HTTPPinger:
    """Pings over one shared aiohttp session (created lazily on the running loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, address: str, wait: float) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = address.rstrip("/") + "/v1/node"
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=wait), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise PingFailed("http-error", f"answered HTTP {response.status}")
                body = await response.content.read(MAX_RESPONSE)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PingFailed(_failure(exc), f"{type(exc).__name__}: {exc}") from exc
        try:
            node_id = json.loads(body)["node_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PingFailed("bad-answer", "the answer is not the node's JSON") from exc
        if not isinstance(node_id, str):
            raise PingFailed("bad-answer", "the answer has no node id")
        return node_id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _failure(exc: Exception) -> PingFailure:
    # Order matters: aiohttp's timeouts are also connection errors, and a DNS failure is a
    # connector error (its own subclass only from aiohttp 3.11 on, hence the look at os_error).
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror):
        return "unresolvable"  # the name stopped resolving between the check-in and the ping
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return "bad-answer"  # something answered, but not in HTTP the client could read
    return "unreachable"
