"""Test helpers: a small async API client, tenants, and farmer doubles signing receipts.

The farmer doubles are real HTTP servers on 127.0.0.1 (one port each) run by a background thread
with its own event loop, so a bridge process can ping them back and send them deletes while a test
runs in any loop. They store nothing: a test signs the receipts a farmer would return for each
order limit, with the farmer's own `Identity` (fine for bridge-only tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.erasure import ErasureCodec
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import (
    Action,
    NodeContact,
    OrderLimit,
    PieceReceipt,
    check_order_limit,
)

ORDER_LIMIT_HEADER = "X-Metadisk-Order-Limit"


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"]["code"])
        return None


class Api:
    """Calls the bridge's JSON API; returns status and decoded body (never raises on status)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if params:
            params = {
                k: ("true" if v is True else "false" if v is False else v)
                for k, v in params.items()
            }
        async with self.session.request(
            method, self.url + path, headers=headers, json=json, params=params
        ) as response:
            body = await response.json() if response.status != 204 else None
            return Reply(response.status, body)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = await self.call(method, path, **kwargs)
        assert 200 <= reply.status < 300, (method, path, reply)
        return reply.body


@dataclass
class Tenant:
    """A user with one project and its root API key."""

    api: Api
    email: str
    session: str
    project_id: str
    api_key: str
    salt: str

    @classmethod
    async def create(cls, api: Api, *, limits: dict[str, int] | None = None) -> Tenant:
        email = f"user-{time.monotonic_ns()}-{id(api)}@example.org"
        await api.ok("POST", "/v1/accounts", json={"email": email, "password": "correct horse"})
        session = (
            await api.ok("POST", "/v1/sessions", json={"email": email, "password": "correct horse"})
        )["token"]
        body: dict[str, Any] = {"name": "project"}
        if limits is not None:
            body["limits"] = limits
        project = await api.ok("POST", "/v1/projects", token=session, json=body)
        key = await api.ok(
            "POST", f"/v1/projects/{project['id']}/api-keys", token=session, json={"name": "root"}
        )
        return cls(api, email, session, project["id"], key["api_key"], project["salt"])

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        kwargs.setdefault("token", self.api_key)
        return await self.api.call(method, path, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("token", self.api_key)
        return await self.api.ok(method, path, **kwargs)

    async def bucket(self, name: str = "bucket", profile: str | None = None) -> str:
        body: dict[str, Any] = {"name": name}
        if profile:
            body["profile"] = profile
        await self.ok("POST", "/v1/buckets", json=body)
        return name

    async def put_inline(self, bucket: str, key: str, data: bytes = b"x", **kwargs: Any) -> Reply:
        token = kwargs.pop("token", self.api_key)
        body = {"key": key, "data": b64encode(data), **kwargs}
        return await self.api.call("POST", f"/v1/buckets/{bucket}/objects", token=token, json=body)

    async def project(self) -> Any:
        return await self.api.ok("GET", f"/v1/projects/{self.project_id}", token=self.session)


@dataclass
class Farmer:
    """One farmer double: an identity, an address, and what the bridge asked of it."""

    identity: Identity
    address: str = ""
    deleted: list[bytes] = field(default_factory=list)
    delete_failures: list[str] = field(default_factory=list)
    answer_node_id: str | None = None  # to impersonate another node on ping-back
    ping_status: int = 200
    delete_status: int = 204

    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    def contact(self, *, timestamp: int | None = None, free: int = 1 << 40) -> NodeContact:
        return NodeContact(
            public_key=self.identity.public_key,
            address=self.address,
            allocated=1 << 40,
            free=free,
            version="test",
            timestamp=int(time.time()) if timestamp is None else timestamp,
        ).signed_by(self.identity)

    def receipt(
        self,
        order_limit: str,
        *,
        size: int | None = None,
        piece_id: bytes | None = None,
        serial: bytes | None = None,
    ) -> PieceReceipt:
        limit = OrderLimit.decode(b64decode(order_limit))
        return PieceReceipt(
            serial=serial if serial is not None else limit.serial,
            node_id=self.node_id,
            piece_id=piece_id if piece_id is not None else limit.piece_id,
            size=limit.limit if size is None else size,
            piece_hash=fake_piece_hash(limit.piece_id),
            stored_at=int(time.time()),
        ).signed_by(self.identity)


def fake_piece_hash(piece_id: bytes) -> bytes:
    """What the doubles' receipts give as a piece's hash (its Merkle root): one per piece."""
    return hashlib.blake2b(piece_id, digest_size=32, person=b"fake piece hash").digest()


class FarmerFleet:
    """N farmer doubles served from one background thread and event loop."""

    def __init__(
        self, count: int, *, bridge_public_key: bytes | None = None, difficulty: int = 0
    ) -> None:
        self.farmers = [Farmer(Identity.generate(difficulty)) for _ in range(count)]
        self.bridge_public_key = bridge_public_key
        self.clock: Callable[[], float] = time.time  # what the farmers check order limits at
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        for farmer in self.farmers:
            self.run(self._serve(farmer))

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def add(self, identity: Identity | None = None) -> Farmer:
        farmer = Farmer(identity or Identity.generate())
        self.run(self._serve(farmer))
        self.farmers.append(farmer)
        return farmer

    def by_node(self, node_id: str) -> Farmer:
        for farmer in self.farmers:
            if farmer.node_id.hex() == node_id:
                return farmer
        raise KeyError(node_id)

    async def _serve(self, farmer: Farmer) -> None:
        app = web.Application()

        async def node(request: web.Request) -> web.Response:
            if farmer.ping_status != 200:
                return web.json_response({"error": "down"}, status=farmer.ping_status)
            return web.json_response(
                {
                    "node_id": farmer.answer_node_id or farmer.node_id.hex(),
                    "public_key": b64encode(farmer.identity.public_key),
                    "version": "test",
                    "address": farmer.address,
                }
            )

        async def delete(request: web.Request) -> web.Response:
            piece_id = bytes.fromhex(request.match_info["piece_id"])
            try:
                limit = OrderLimit.decode(b64decode(request.headers[ORDER_LIMIT_HEADER]))
                assert self.bridge_public_key is not None
                check_order_limit(
                    limit,
                    trusted_bridges={limit.bridge_id: self.bridge_public_key},
                    node_id=farmer.node_id,
                    piece_id=piece_id,
                    actions=[Action.DELETE],
                    now=int(self.clock()),
                )
            except Exception as exc:
                farmer.delete_failures.append(repr(exc))
                return web.json_response({"error": "bad order limit"}, status=403)
            farmer.deleted.append(piece_id)
            return web.Response(status=farmer.delete_status)

        app.router.add_get("/v1/node", node)
        app.router.add_delete("/v1/pieces/{piece_id}", delete)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        farmer.address = f"http://127.0.0.1:{port}"
        self._runners.append(runner)

    def close(self) -> None:
        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        self.run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def checkin(api: Api, farmer: Farmer, **kwargs: Any) -> Reply:
    contact = farmer.contact(**kwargs)
    return await api.call(
        "POST", "/v1/nodes/checkin", json={"contact": b64encode(contact.encode())}
    )


async def checkin_all(api: Api, farmers: Sequence[Farmer]) -> None:
    replies = await asyncio.gather(*(checkin(api, farmer) for farmer in farmers))
    for reply in replies:
        assert reply.status == 200 and reply.body["online"], reply


def sign_receipts(fleet: FarmerFleet, orders: Sequence[dict[str, Any]]) -> list[str]:
    """The receipts the farmers of `orders` would return after storing their pieces."""
    return [
        b64encode(fleet.by_node(order["node_id"]).receipt(order["order_limit"]).encode())
        for order in orders
    ]


async def upload(
    tenant: Tenant,
    fleet: FarmerFleet,
    bucket: str,
    key: str,
    segment_sizes: Sequence[int] = (1000,),
    *,
    metadata: bytes = b"meta",
) -> dict[str, Any]:
    """A whole segmented upload, farmers played by `fleet`; returns the committed object."""
    upload = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": key})
    stream = upload["stream_id"]
    k = upload["redundancy"]["k"]
    for index, size in enumerate(segment_sizes):
        piece_size = ErasureCodec(k, k).piece_size(size)
        segment = await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": index, "encrypted_size": size, "piece_size": piece_size},
        )
        receipts = sign_receipts(fleet, segment["order_limits"])
        await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments/{index}/commit",
            json={"receipts": receipts, "plain_size": size - 16},
        )
    return await tenant.ok(  # type: ignore[no-any-return]
        "POST", f"/v1/uploads/{stream}/commit", json={"encrypted_metadata": b64encode(metadata)}
    )


def json_call(url: str, method: str, body: Any = None, token: str = "") -> Any:
    """One blocking JSON request (for code outside an event loop); its parsed answer."""
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        request.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(request, data, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None
