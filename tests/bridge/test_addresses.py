"""Check-in addresses a bridge must not reach out to, and ping-back failures shown only as codes.

Two real bridge processes: a public one (the default, `private_addresses` off) that must refuse
every non-global address before sending anything, and a private one (as `metadisk up` runs) that
pings loopback farmers. The ping-back targets are raw TCP servers on loopback that count every
connection, so "nothing was sent" is seen from the target's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from metadisk.bridge.config import BridgeConfig, DatabaseConfig, sqlite_url
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.overlay.db import NodeRecord
from metadisk.bridge.overlay.service import is_public, network_of, resolve
from metadisk.bridge.peer import Bridge
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.nodes import PING_FAILURES
from tests.bridge.helpers import Api, Farmer, checkin

PING_TIMEOUT = 1.0
ADMIN = "admin-token-of-the-address-tests"  # why a ping-back failed is shown to operators only


def _start(
    factory: pytest.TempPathFactory, database_url: str | None, private: bool
) -> BridgeProcess:
    process = BridgeProcess(
        factory.mktemp("bridge"),
        database_url=database_url,
        settings={
            "nodes": {"private_addresses": private, "ping_timeout": PING_TIMEOUT},
            "server": {"admin_token": ADMIN},
        },
    )
    process.start()
    return process


@pytest.fixture(scope="module")
def public_bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = _start(tmp_path_factory, database_url, private=False)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def private_bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = _start(tmp_path_factory, database_url, private=True)
    yield process
    process.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class Target:
    """A raw HTTP/1.1 server on one loopback address: counts connections, answers as told."""

    def __init__(self) -> None:
        self.hits = 0
        self.status = 200
        self.body = b"{}"
        self.stall = False  # hold the connection open without answering
        self.raw: bytes | None = None  # send these bytes instead of an HTTP response
        self.port = 0
        self._host = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str) -> None:
        self._server = await asyncio.start_server(self._handle, host, 0)
        self._host = host
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, host: str | None = None) -> str:
        host = host or self._host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def answer_as(self, farmer: Farmer, node_id: str | None = None) -> None:
        """Answer with the node card `farmer` serves (under another `node_id` if given)."""
        card = {
            "node_id": node_id or farmer.node_id.hex(),
            "public_key": b64encode(farmer.identity.public_key),
            "version": "test",
            "address": farmer.address,
        }
        self.body = json.dumps(card).encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.stall:
                await asyncio.Event().wait()  # until the bridge gives up or the test ends
            if self.raw is not None:
                writer.write(self.raw)
            else:
                head = (
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(head.encode() + self.body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def stop(self) -> None:
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def serving(host: str) -> AsyncIterator[Target]:
    target = Target()
    await target.start(host)
    try:
        yield target
    finally:
        await target.stop()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _farmer(address: str) -> Farmer:
    return Farmer(Identity.generate(), address=address)


async def _status(api: Api, farmer: Farmer) -> dict[str, object]:
    path = f"/v1/nodes/{farmer.node_id.hex()}"
    status: dict[str, object] = await api.ok("GET", path, token=ADMIN)
    return status


async def test_non_public_addresses_are_refused_before_any_ping(
    public_bridge: BridgeProcess, session: aiohttp.ClientSession
) -> None:
    api = Api(session, public_bridge.url)
    async with contextlib.AsyncExitStack() as stack:
        v4 = await stack.enter_async_context(serving("127.0.0.1"))
        targets = [v4]
        port = v4.port
        addresses = [
            v4.url(),
            f"http://localhost:{port}",
            f"http://2130706433:{port}",  # 127.0.0.1 as one number: getaddrinfo accepts it
            f"http://0.0.0.0:{port}",  # connecting to it reaches this host on Linux
            f"http://[::ffff:127.0.0.1]:{port}",
            f"http://[64:ff9b::7f00:1]:{port}",  # NAT64 form of 127.0.0.1
            f"http://10.0.0.1:{port}",
            f"http://172.16.0.1:{port}",
            f"http://192.168.1.1:{port}",
            f"http://100.64.0.1:{port}",
            "http://169.254.169.254",
            "http://169.254.169.254:80",
            "http://224.0.0.1:80",
            "http://[fe80::1]:80",
            "http://[fc00::1]:80",
            "http://[::]:80",
        ]
        if _has_ipv6_loopback():
            v6 = await stack.enter_async_context(serving("::1"))
            targets.append(v6)
            addresses.append(v6.url())
        else:
            addresses.append(f"http://[::1]:{port}")
        for address in addresses:
            farmer = _farmer(address)
            reply = await checkin(api, farmer)
            assert (reply.status, reply.code) == (400, "invalid-address"), (address, reply)
            # Refused for where it leads, not for its form (the portless one aside).
            assert "non-public" in reply.body["error"]["message"] or address.endswith(".254")
            gone = await api.call("GET", f"/v1/nodes/{farmer.node_id.hex()}")
            assert (gone.status, gone.code) == (404, "node-not-found"), address
        assert [target.hits for target in targets] == [0] * len(targets)


async def test_unresolvable_host_is_stored_not_online(
    public_bridge: BridgeProcess, session: aiohttp.ClientSession
) -> None:
    api = Api(session, public_bridge.url)
    farmer = _farmer("https://nothing.invalid:7777")  # .invalid never resolves (RFC 6761)
    reply = await checkin(api, farmer)
    assert reply.body == {"node_id": farmer.node_id.hex(), "online": False}
    status = await _status(api, farmer)
    assert status["last_ping_error"] == "unresolvable"


async def test_private_addresses_allow_loopback(
    private_bridge: BridgeProcess, session: aiohttp.ClientSession
) -> None:
    api = Api(session, private_bridge.url)
    async with serving("127.0.0.1") as target:
        for host in ("127.0.0.1", "localhost"):
            farmer = _farmer(target.url(host))
            target.answer_as(farmer)
            reply = await checkin(api, farmer)
            assert reply.body == {"node_id": farmer.node_id.hex(), "online": True}, host
            status = await _status(api, farmer)
            assert status["online"] is True and status["last_ping_error"] is None
        assert target.hits == 2


async def test_ping_failures_are_codes_only(
    private_bridge: BridgeProcess, session: aiohttp.ClientSession
) -> None:
    api = Api(session, private_bridge.url)
    seen = []

    async def expect(farmer: Farmer, code: str) -> None:
        reply = await checkin(api, farmer)
        assert reply.body == {"node_id": farmer.node_id.hex(), "online": False}, code
        status = await _status(api, farmer)
        assert status["online"] is False and status["last_ping_error"] == code, status
        seen.append(code)

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    await expect(_farmer(closed), "unreachable")
    async with serving("127.0.0.1") as target:
        farmer = _farmer(target.url())
        target.status, target.body = 403, b'{"error": "forbidden"}'
        await expect(farmer, "http-error")
        target.status, target.body = 200, b"<html>not json</html>"
        await expect(farmer, "bad-answer")
        target.raw = b"SSH-2.0-OpenSSH_9.6\r\n"  # not HTTP at all
        await expect(farmer, "bad-answer")
        target.raw = b""  # accepts and hangs up
        await expect(farmer, "unreachable")
        target.raw = None
        target.answer_as(farmer, node_id=Identity.generate().node_id.hex())
        await expect(farmer, "wrong-node")
        target.stall = True
        await expect(farmer, "timeout")
        target.stall = False
        target.answer_as(farmer)
        await checkin(api, farmer)
        status = await _status(api, farmer)
        assert status["online"] is True and status["last_ping_error"] is None
    assert set(seen) <= set(PING_FAILURES)


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 form of 8.8.8.8
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),  # global-scope multicast: is_global alone says yes
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a00:1", False),  # NAT64 form of 10.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("::7f00:1", False),  # IPv4-compatible (deprecated) 127.0.0.1
    ],
)
def test_is_public(ip: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(ip)) is public


async def test_resolve() -> None:
    assert await resolve("192.168.7.200") == [ipaddress.ip_address("192.168.7.200")]
    assert await resolve("::1") == [ipaddress.ip_address("::1")]
    local = await resolve("localhost")
    assert local and set(local) <= {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    assert len(local) == len(set(local))
    with pytest.raises(OSError):
        await resolve("nothing.invalid")
    with pytest.raises(ValueError):  # a label over 63 bytes cannot even be encoded
        await resolve("a" * 70 + ".example")


def test_network_of_ignores_scope_and_ipv4_mapping() -> None:
    assert network_of(ipaddress.ip_address("::ffff:192.168.7.200")) == "192.168.7.0/24"
    assert network_of(ipaddress.ip_address("fe80::1%eth0")) == "fe80::/64"


async def test_error_text_stored_before_codes_is_not_shown(tmp_path: Path) -> None:
    """A row from a bridge that stored exception text shows a code until the next check-in."""
    config = BridgeConfig(data_dir=tmp_path, database=DatabaseConfig(sqlite_url(tmp_path)))
    peer = Bridge(config, Identity.generate())
    peer.migrate()
    try:
        node = Identity.generate()
        legacy = "ping-back failed: ClientConnectorError: Connect call failed ('10.0.0.7', 22)"
        OverlayStore(peer.db).save_contact(
            NodeRecord(
                node_id=node.node_id.raw,
                public_key=node.public_key,
                address="http://10.0.0.7:22",
                last_net="10.0.0.0/24",
                allocated=1,
                free=1,
                version="old",
                contact_timestamp=1,
                last_contact_at=1,
                last_ping_ok_at=None,
                last_ping_error=legacy,
                disqualified_at=None,
                created_at=1,
            )
        )
        status = await peer.api.overlay.status(node.node_id, 2, "admin")
        assert status.last_ping_error == "unreachable"
    finally:
        await peer.aclose()
