"""Bounded resources on a real farmer process: uploads hold only the space they sent, silence
and slowness are cut, headers are bounded, malformed HTTP gets the JSON envelope and no echo.

Each test starts a farmer of its own with short timeouts and talks raw HTTP/1.1 over sockets
where a well-behaved client would not do what the test needs (stall, trickle, send garbage).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from metadisk.core.messages import Action
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.http import RequestClock
from tests.farmer.helpers import Bridge, error_code, piece_id, put, put_headers

pytestmark = pytest.mark.asyncio

MiB = 1 << 20
# Bound on every wait below: a farmer that never acts fails the test instead of hanging it.
WITHIN = 60.0


def farmer_at(tmp_path: Path, bridge: Bridge, **settings: Any) -> Any:
    settings.setdefault("allocated", 256 * MiB)
    return farmer_process(tmp_path / "data", [bridge.trusted], checkin_interval=3600, **settings)


async def wait_until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `probe` until it holds; fail naming `what` if it has not within `WITHIN` s."""
    try:
        async with asyncio.timeout(WITHIN):
            # the farmer is another process: there is no event to wait on
            while not await probe():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {WITHIN:g} s: {what}")


class Raw:
    """One HTTP/1.1 connection the test drives byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, farmer: FarmerProcess) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", URL(farmer.url).port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self) -> bytes:
        """Everything the farmer sends until it closes the connection."""
        async with asyncio.timeout(WITHIN):
            return await self.reader.read()

    def close(self) -> None:
        self.writer.close()


def answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def put_head(bridge: Bridge, farmer: FarmerProcess, size: int) -> bytes:
    """The head of a valid PUT of `size` bytes (its hash is never checked: no body completes)."""
    pid = piece_id()
    limit = bridge.limit(farmer.node_id, pid, Action.PUT, limit=size)
    headers = put_headers(limit, b"")
    lines = [
        f"PUT /v1/pieces/{pid.hex()} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {size}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def node_free(session: aiohttp.ClientSession, farmer: FarmerProcess) -> int:
    async with session.get(f"{farmer.url}/v1/node") as response:
        body: Any = await response.json()
        return int(body["free"])


async def status(session: aiohttp.ClientSession, farmer: FarmerProcess) -> Any:
    async with session.get(f"{farmer.url}/v1/status") as response:
        return await response.json()


def partial_uploads(farmer: FarmerProcess) -> list[str]:
    return os.listdir(farmer.data_dir / "tmp")


async def test_held_open_puts_hold_only_what_they_sent_and_are_cut(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    """The issue's attack: many valid PUTs of 16 MiB, one byte sent on each, then held."""
    held, size, big = 40, 16 * MiB, 2  # 40 x 16 MiB promised: more than the 256 MiB allocated
    async with farmer_at(tmp_path, bridge, body_idle_timeout=2.0) as farmer:
        allocated = await node_free(session, farmer)
        conns = [await Raw.open(farmer) for _ in range(held)]
        sent = 0
        for index, conn in enumerate(conns):
            # two send more than a write batch, so their temp files exist on disk
            body = os.urandom(MiB + MiB // 2) if index < big else b"x"
            await conn.send(put_head(bridge, farmer, size) + body)
            sent += len(body)

        async def all_received() -> bool:
            return allocated - await node_free(session, farmer) >= sent

        await wait_until(all_received, "the farmer read every byte sent")
        assert allocated - await node_free(session, farmer) == sent  # not 40 x 16 MiB

        async def files_made() -> bool:
            return len(partial_uploads(farmer)) == big

        await wait_until(files_made, "the larger uploads' temp files made")

        # a real upload still fits while they are held
        data = os.urandom(size)
        await put(session, farmer.url, bridge, farmer.node_id, data)

        # silence is cut: each held upload is answered 408 and its connection closed
        for conn in conns:
            code, headers, body = answer(await conn.until_closed())
            assert code == 408
            assert json.loads(body)["error"]["code"] == "request-timeout"
            assert headers["connection"] == "close"
            conn.close()

        async def released() -> bool:
            state = await status(session, farmer)
            return bool(state["free"] == state["allocated"] - state["used"])

        await wait_until(released, "the held uploads' space released")
        assert partial_uploads(farmer) == []
        await put(session, farmer.url, bridge, farmer.node_id, os.urandom(size))


async def test_a_slow_but_live_upload_is_not_cut(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    """Gaps shorter than the silence allowed, for longer than it in all: the piece is stored."""
    async with farmer_at(tmp_path, bridge, body_idle_timeout=3.0) as farmer:
        data = os.urandom(64 * 1024)
        pid = piece_id()
        limit = bridge.limit(farmer.node_id, pid, Action.PUT)

        async def trickle() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 8192):
                await asyncio.sleep(0.5)  # 8 gaps: 4 s in all, more than the 3 s allowed
                yield data[start : start + 8192]

        async with session.put(
            f"{farmer.url}/v1/pieces/{pid.hex()}",
            data=trickle(),
            headers={**put_headers(limit, data), "Content-Length": str(len(data))},
        ) as response:
            assert response.status == 201, await response.text()


async def test_a_request_past_the_total_deadline_is_cut(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    """A body that trickles forever, never silent long enough to be cut for silence."""
    async with farmer_at(tmp_path, bridge, request_timeout=1.0) as farmer:
        allocated = await node_free(session, farmer)
        conn = await Raw.open(farmer)
        await conn.send(put_head(bridge, farmer, MiB))
        closed = asyncio.create_task(conn.until_closed())
        while not closed.done():
            await conn.send(b"x")
            await asyncio.wait([closed], timeout=0.1)
        code, _, body = answer(closed.result())
        assert code == 408
        assert json.loads(body)["error"]["code"] == "request-timeout"
        assert b"longer than" in body
        assert await node_free(session, farmer) == allocated
        conn.close()


async def test_headers_that_never_finish_are_cut(tmp_path: Path, bridge: Bridge) -> None:
    async with farmer_at(tmp_path, bridge, header_timeout=1.0) as farmer:
        silent = await Raw.open(farmer)  # connects, sends nothing
        partial = await Raw.open(farmer)
        await partial.send(b"PUT /v1/pieces/" + b"a" * 64 + b" HTTP/1.1\r\nHost: x\r\n")
        assert await silent.until_closed() == b""
        assert await partial.until_closed() == b""

        # slowloris: a header byte every 0.1 s is still cut, the deadline is for all of them
        trickler = await Raw.open(farmer)
        await trickler.send(b"GET /v1/node HTTP/1.1\r\nX-Slow: ")
        closed = asyncio.create_task(trickler.until_closed())
        while not closed.done():
            try:
                await trickler.send(b"a")
            except ConnectionError:
                break
            await asyncio.wait([closed], timeout=0.1)
        assert await closed == b""
        for conn in (silent, partial, trickler):
            conn.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"SECRET-MARKER garbage\r\n\r\n", 400, "malformed-http"),
        (
            b"GET /v1/node HTTP/1.1\r\nHost: x\r\nBad\x01SECRET-MARKER: 1\r\n\r\n",
            400,
            "malformed-http",
        ),
        (
            b"GET /v1/node HTTP/1.1\r\nHost: x\r\nX-Big: " + b"SECRET-MARKER" * 1000 + b"\r\n\r\n",
            431,
            "headers-too-large",
        ),
        (
            b"GET /v1/node?SECRET-MARKER" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            431,
            "headers-too-large",
        ),
        (
            b"GET /v1/node HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-SECRET-MARKER-%d: 1\r\n" % i for i in range(100))
            + b"\r\n",
            431,
            "headers-too-large",
        ),
    ],
    ids=["request-line", "header-name", "header-size", "line-size", "header-count"],
)
async def test_malformed_http_gets_the_envelope_without_the_request_bytes(
    tmp_path: Path,
    bridge: Bridge,
    session: aiohttp.ClientSession,
    request_bytes: bytes,
    status: int,
    code: str,
) -> None:
    async with farmer_at(tmp_path, bridge) as farmer:
        conn = await Raw.open(farmer)
        await conn.send(request_bytes)
        raw = await conn.until_closed()
        conn.close()
        got, headers, body = answer(raw)
        assert got == status
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["error"]["code"] == code
        assert b"SECRET" not in raw.upper()
        async with session.get(f"{farmer.url}/metrics") as response:
            metrics = await response.text()
        assert f'metadisk_farmer_refusals_total{{code="{code}",route="unmatched"}} 1.0' in metrics


async def test_puts_per_address_are_capped(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    async with farmer_at(tmp_path, bridge, max_puts_per_address=2) as farmer:
        conns = [await Raw.open(farmer) for _ in range(2)]
        for conn in conns:
            await conn.send(put_head(bridge, farmer, MiB) + b"x")
        allocated = (await status(session, farmer))["allocated"]

        async def both_under_way() -> bool:
            return allocated - await node_free(session, farmer) == 2

        await wait_until(both_under_way, "both held uploads started")
        data = os.urandom(4096)
        pid = piece_id()
        limit = bridge.limit(farmer.node_id, pid, Action.PUT)
        url = f"{farmer.url}/v1/pieces/{pid.hex()}"
        async with session.put(url, data=data, headers=put_headers(limit, data)) as response:
            assert response.status == 503
            assert await error_code(response) == "busy"
        for conn in conns:
            conn.close()  # the client goes away: its slot is free again

        async def room_again() -> bool:
            return await node_free(session, farmer) == allocated

        await wait_until(room_again, "the abandoned uploads released")
        await put(session, farmer.url, bridge, farmer.node_id, data)


class _Client:
    """A body's source for `RequestClock`: each chunk after `delay` seconds, or never."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay

    async def readchunk(self) -> tuple[bytes, bool]:
        if self.delay is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay or 0)
        return b"x", False


async def test_only_waits_on_the_client_count_as_silence() -> None:
    """A handler busy elsewhere (a slow disk) for longer than `idle` between reads is not cut;
    a client that sends nothing for `idle` is."""
    deadline = asyncio.timeout(None)
    clock = RequestClock(deadline, idle=0.2)
    async with deadline:
        for _ in range(3):
            await clock.read(_Client(0.01))  # type: ignore[arg-type]
            await asyncio.sleep(0.4)  # the handler's own work, not the client's silence
    assert not clock.silent
    clock.close()

    deadline = asyncio.timeout(None)
    clock = RequestClock(deadline, idle=0.2)
    with pytest.raises(TimeoutError):
        async with deadline:
            await clock.read(_Client(None))  # type: ignore[arg-type]
    assert clock.silent
    clock.close()
