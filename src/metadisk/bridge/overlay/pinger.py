"""Asking a farmer who it is: ``GET {address}/v1/node`` (the farmer's data-plane contract)."""

from __future__ import annotations

import json
from typing import Protocol

import aiohttp

MAX_RESPONSE = 64 * 1024


class Pinger(Protocol):
    async def __call__(self, address: str, wait: float) -> str:
        """The node id (hex) the farmer at `address` reports; `PingFailed` if it cannot."""
        ...


class PingFailed(Exception):
    pass


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
                    raise PingFailed(f"ping-back answered HTTP {response.status}")
                body = await response.content.read(MAX_RESPONSE)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PingFailed(f"ping-back failed: {type(exc).__name__}: {exc}") from exc
        try:
            node_id = json.loads(body)["node_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PingFailed("ping-back answer is not the node's JSON") from exc
        if not isinstance(node_id, str):
            raise PingFailed("ping-back answer has no node id")
        return node_id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
