"""Who may scrape the bridge API's ``/metrics``: loopback peers, and others only with the
configured token. Driven through the real ASGI app with a client address of the test's choice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metadisk.bridge.api import ApiPeer
from metadisk.bridge.config import BridgeConfig, DatabaseConfig, ServerConfig, sqlite_url
from metadisk.bridge.db.migrate import upgrade
from metadisk.core.identity import Identity


@pytest.fixture
async def peer(tmp_path: Path) -> AsyncIterator[ApiPeer]:
    config = BridgeConfig(
        data_dir=tmp_path,
        database=DatabaseConfig(sqlite_url(tmp_path)),
        server=ServerConfig(metrics_token="s3cret"),
    )
    api = ApiPeer(config, Identity.generate())
    upgrade(api.db)
    yield api
    await api.aclose()


async def scrape(api: ApiPeer, client: str, authorization: str = "") -> tuple[int, bytes]:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/metrics", "raw_path": b"/metrics", "query_string": b"",
        "root_path": "", "headers": headers, "client": (client, 5555),
        "server": ("127.0.0.1", 7000),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_loopback_scrapes(peer: ApiPeer) -> None:
    status, body = await scrape(peer, "127.0.0.1")
    assert status == 200 and b"metadisk_db_pool_connections" in body


async def test_others_need_the_token(peer: ApiPeer) -> None:
    status, body = await scrape(peer, "203.0.113.9")
    assert status == 403 and b'"not-local"' in body
    assert (await scrape(peer, "203.0.113.9", "Bearer wrong"))[0] == 403
    assert (await scrape(peer, "203.0.113.9", "Bearer s3cret"))[0] == 200


async def test_without_a_token_only_loopback(peer: ApiPeer) -> None:
    peer.config = replace(peer.config, server=ServerConfig())
    assert (await scrape(peer, "203.0.113.9", "Bearer s3cret"))[0] == 403
