"""The bridge's HTTP edge against a real `metadisk bridge run` process: body and header caps,
timeouts that cut slow callers, the connection cap, 405 with Allow, rate limits and the bounded
password-hashing queue (bridge/edge.py, bridge/connections.py, bridge/accounts/hashing.py).

Raw sockets where the point is what the server does before a request is complete."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from metadisk.core.encoding import b64encode
from metadisk.core.macaroon import APIKey, Caveat
from metadisk.devnet.bridge import BridgeProcess, bridge_process
from tests.bridge.helpers import Api, FarmerFleet, Tenant, checkin

# Long enough for any loaded machine; a server that does not cut the caller fails at this.
PATIENCE = 60.0
CREDS = {"password": "correct horse"}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Starts a bridge with these [server] / [accounts] settings (one per test)."""
    with_bridges: list[Any] = []

    def started(server: Mapping[str, Any], accounts: Mapping[str, Any] | None = None) -> str:
        settings: dict[str, Any] = {"server": dict(server)}
        if accounts:
            settings["accounts"] = dict(accounts)
        manager = bridge_process(tmp_path / f"bridge{len(with_bridges)}", settings=settings)
        bridge: BridgeProcess = manager.__enter__()
        with_bridges.append(manager)
        return bridge.url

    yield started
    for manager in with_bridges:
        manager.__exit__(None, None, None)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes: status, headers, body."""
    raw = await asyncio.wait_for(reader.read(), PATIENCE)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def code_of(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


async def test_an_oversize_body_is_refused_before_it_is_read(start: Any) -> None:
    url = start({"max_body_bytes": 64 << 10})
    # 100 MB announced, a few bytes sent: the 413 comes without waiting for the rest.
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/sessions HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100000000\r\n\r\n{"email": '
    )
    status, headers, body = await answer(reader)
    assert status == 413 and code_of(body) == "too-large"
    assert headers["connection"] == "close"
    writer.close()

    # Chunked, so no length is announced: refused once the count passes the cap.
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/accounts HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 16384
    for _ in range(5):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, _, body = await answer(reader)
    assert status == 413 and code_of(body) == "too-large"
    writer.close()


async def test_move_and_copy_have_their_own_larger_cap(
    start: Any, session: aiohttp.ClientSession
) -> None:
    url = start({"max_body_bytes": 64 << 10, "max_relocation_body_bytes": 1 << 20})
    segments = [{"index": i, "encrypted_metadata": "A" * 200} for i in range(1000)]  # ~240 KB
    body = {"key": "a", "new_bucket": "b", "new_key": "c", "encrypted_metadata": "",
            "segments": segments}  # fmt: skip
    async with session.post(url + "/v1/buckets/b/object/move", json=body) as response:
        assert response.status == 401  # read, parsed, then refused for want of a key
    async with session.post(url + "/v1/buckets/b/objects", json=body) as response:
        assert response.status == 413


async def test_headers_that_never_end_are_cut(start: Any) -> None:
    url = start({"header_timeout": 0.5})
    reader, writer = await connect(url)
    writer.write(b"GET /v1/bridge HTTP/1.1\r\nHost: bridge\r\nX-Slow: ")
    status, _, body = await answer(reader)
    assert status == 408 and code_of(body) == "timeout"
    writer.close()

    reader, writer = await connect(url)  # connected, nothing sent at all
    status, _, _ = await answer(reader)
    assert status == 408
    writer.close()


async def test_oversize_headers_are_refused(start: Any) -> None:
    url = start({"max_header_bytes": 8192})
    reader, writer = await connect(url)
    writer.write(b"GET /v1/bridge HTTP/1.1\r\nHost: bridge\r\nX-Big: " + b"a" * 20000)
    status, _, body = await answer(reader)
    assert status == 431 and code_of(body) == "headers-too-large"
    writer.close()


async def test_a_stalled_body_is_cut(start: Any) -> None:
    url = start({"body_idle_timeout": 0.5})
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/accounts HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"email": '
    )
    status, headers, body = await answer(reader)
    assert status == 408 and code_of(body) == "timeout"
    assert headers["connection"] == "close"
    writer.close()


async def test_a_body_that_trickles_is_cut_at_the_total_timeout(start: Any) -> None:
    url = start({"body_idle_timeout": 30.0, "body_timeout": 1.0})
    reader, writer = await connect(url)
    writer.write(
        b"POST /v1/accounts HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    received = b""
    for _ in range(int(PATIENCE / 0.2)):  # a byte every 0.2 s: never idle for long
        writer.write(b" ")
        try:
            # read(n) returns what has come; cancelled before that, it loses nothing
            received = await asyncio.wait_for(reader.read(65536), 0.2)
            break
        except TimeoutError:
            continue
    received += await asyncio.wait_for(reader.read(), PATIENCE)  # the rest, until closed
    assert received.startswith(b"HTTP/1.1 408 ")
    assert code_of(received.partition(b"\r\n\r\n")[2]) == "timeout"
    writer.close()


async def test_connections_beyond_the_cap_are_refused(start: Any) -> None:
    url = start({"max_connections": 3})
    held = []
    for _ in range(3):  # a request answered on each: the server has taken all three
        reader, writer = await connect(url)
        writer.write(b"GET /v1/bridge HTTP/1.1\r\nHost: bridge\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), PATIENCE)).split()[1] == b"200"
        held.append(writer)
    reader, writer = await connect(url)
    status, _, body = await answer(reader)
    assert status == 503 and code_of(body) == "busy"
    writer.close()
    held.pop().close()
    async with aiohttp.ClientSession() as session:
        while True:  # until the server has seen the close
            async with session.get(url + "/v1/bridge") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
    for writer in held:
        writer.close()


async def test_trace_gets_405_with_allow(start: Any, session: aiohttp.ClientSession) -> None:
    url = start({})
    async with session.request("TRACE", url + "/v1/buckets/photos") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "DELETE, GET"
        assert (await response.json())["error"]["code"] == "method-not-allowed"
    async with session.request("TRACE", url + "/v1/sessions") as response:
        assert response.status == 405 and response.headers["Allow"] == "POST"


async def test_failed_logins_are_limited_per_email_and_address(
    start: Any, session: aiohttp.ClientSession
) -> None:
    url = start({"login_failure_burst": 3, "login_failure_rate": 0.001, "account_burst": 3,
                 "account_rate": 0.001})  # fmt: skip
    api = Api(session, url)
    emails = [f"user{i}@example.org" for i in range(3)]
    for email in emails:
        assert (
            await api.call("POST", "/v1/accounts", json={"email": email, **CREDS})
        ).status == 201
    refused = await api.call("POST", "/v1/accounts", json={"email": "more@example.org", **CREDS})
    assert refused.status == 429 and refused.code == "rate-limited"

    for _ in range(5):  # successful logins spend no failure tokens
        reply = await api.call("POST", "/v1/sessions", json={"email": emails[0], **CREDS})
        assert reply.status == 201
    wrong = {"email": emails[0], "password": "wrong horse"}
    for _ in range(3):
        assert (await api.call("POST", "/v1/sessions", json=wrong)).status == 401
    async with session.post(url + "/v1/sessions", json=wrong) as response:
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    # The address has failed three times too: another email from it waits as well, even with
    # the right password (failures spend first, and a success gives them back).
    other = await api.call("POST", "/v1/sessions", json={"email": emails[1], **CREDS})
    assert other.status == 429


async def test_checkins_are_limited_per_node_and_address(
    start: Any, session: aiohttp.ClientSession
) -> None:
    url = start({"checkin_burst": 2, "checkin_rate": 0.001, "checkin_address_burst": 5,
                 "checkin_address_rate": 0.001})  # fmt: skip
    api = Api(session, url)
    fleet = FarmerFleet(3)
    try:
        one, two, three = fleet.farmers
        assert [(await checkin(api, one)).status for _ in range(3)] == [200, 200, 429]
        # A contact naming `two` but not signed by it spends only the address's tokens.
        forged = dataclasses.replace(one.contact(), public_key=two.identity.public_key)
        body = {"contact": b64encode(forged.encode())}
        assert (await api.call("POST", "/v1/nodes/checkin", json=body)).status == 400
        assert (await checkin(api, two)).status == 200
        # 5 address tokens: one's 2 (its refused third gave its back), the forgery, two's and
        # three's first; then three, with a token of its own left, waits for the address.
        assert (await checkin(api, three)).status == 200
        reply = await checkin(api, three)
        assert reply.status == 429 and reply.code == "rate-limited"
    finally:
        fleet.close()


async def test_begins_are_limited_per_api_key_id(
    start: Any, session: aiohttp.ClientSession
) -> None:
    url = start({"begin_burst": 3, "begin_rate": 0.001})
    api = Api(session, url)
    tenant, neighbour = await Tenant.create(api), await Tenant.create(api)
    await tenant.bucket("bkt")
    await neighbour.bucket("bkt")
    streams = []
    for i in range(3):
        began = await tenant.ok("POST", "/v1/buckets/bkt/uploads", json={"key": f"k{i}"})
        streams.append(began["stream_id"])
    again = await tenant.call("POST", "/v1/buckets/bkt/uploads", json={"key": "k3"})
    assert again.status == 429 and again.code == "rate-limited"
    # A caveat added offline is the same key id, so the same bucket.
    restricted = APIKey.parse(tenant.api_key).restrict(Caveat(not_before=0)).serialize()
    reply = await api.call("POST", "/v1/buckets/bkt/uploads", token=restricted, json={"key": "k"})
    assert reply.status == 429
    # A key forged under someone's key id is refused, and spends none of their tokens.
    key = APIKey.parse(neighbour.api_key)
    forged = APIKey(key.key_id, (), bytes(32)).serialize()
    for _ in range(4):
        reply = await api.call("POST", "/v1/buckets/bkt/uploads", token=forged, json={"key": "k"})
        assert reply.status == 401
    began = await neighbour.call("POST", "/v1/buckets/bkt/uploads", json={"key": "k"})
    assert began.status == 201

    # Begin segment has its own bucket: no farmers here, so each fails (503), until it is 429.
    body = {"index": 0, "encrypted_size": 1000, "piece_size": 100}
    statuses = [
        (await tenant.call("POST", f"/v1/uploads/{streams[0]}/segments", json=body)).status
        for _ in range(4)
    ]
    assert 429 not in statuses[:3] and statuses[3] == 429


async def test_a_login_burst_beyond_the_hashing_queue_gets_busy(
    start: Any, session: aiohttp.ClientSession
) -> None:
    # Default-cost Argon2id, one hashing thread and one waiting call.
    accounts = {"argon2_time_cost": 3, "argon2_memory_kib": 65536, "hash_threads": 1,
                "hash_queue": 1}  # fmt: skip
    url = start({}, accounts)
    api = Api(session, url)

    async def login(i: int) -> tuple[int, str | None, str | None]:
        body = {"email": f"nobody{i}@example.org", **CREDS}
        async with session.post(url + "/v1/sessions", json=body) as response:
            reply = await response.json()
            return response.status, reply["error"]["code"], response.headers.get("Retry-After")

    results = await asyncio.gather(*(login(i) for i in range(16)))
    busy = [r for r in results if r[0] == 503]
    assert busy and all(code == "busy" and retry == "1" for _, code, retry in busy)
    assert {status for status, _, _ in results} == {401, 503}
    assert sum(status == 401 for status, _, _ in results) >= 2  # the two let in were hashed
    assert (await api.call("GET", "/v1/bridge")).status == 200
