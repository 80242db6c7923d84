"""Listening sockets, their URLs, and the listening line."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator

import pytest

from metadisk.runtime.net import (
    BindError,
    announce_listening,
    bind,
    parse_listening,
    url_of,
)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, closed after it."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_bind_listens_on_an_ephemeral_port(sockets: list[socket.socket]) -> None:
    sock = bind("127.0.0.1", 0)
    sockets.append(sock)
    host, port = sock.getsockname()
    assert host == "127.0.0.1" and port > 0
    assert not sock.getblocking()
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    assert sock.proto == socket.IPPROTO_TCP
    assert not sock.get_inheritable()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_inheritable_on_request(sockets: list[socket.socket]) -> None:
    sock = bind("127.0.0.1", 0, inheritable=True)
    sockets.append(sock)
    assert sock.get_inheritable()


async def test_accepted_connections_get_tcp_nodelay(sockets: list[socket.socket]) -> None:
    """asyncio turns Nagle off only on sockets whose proto says TCP: the reason for IPPROTO_TCP."""
    sock = bind("127.0.0.1", 0)
    sockets.append(sock)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        nodelay.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname())
        async with asyncio.timeout(5):
            assert await nodelay != 0
        writer.close()
        await writer.wait_closed()


def test_port_in_use(sockets: list[socket.socket]) -> None:
    first = bind("127.0.0.1", 0)
    sockets.append(first)
    port = first.getsockname()[1]
    with pytest.raises(BindError) as raised:
        bind("127.0.0.1", port)
    assert raised.value.code == "port-in-use"
    assert str(port) in raised.value.message


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_reuse_port_lets_several_sockets_share_a_port(sockets: list[socket.socket]) -> None:
    first = bind("127.0.0.1", 0, reuse_port=True)
    sockets.append(first)
    port = first.getsockname()[1]
    second = bind("127.0.0.1", port, reuse_port=True)
    sockets.append(second)
    assert second.getsockname()[1] == port
    assert second.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


def test_a_closed_port_can_be_taken_back(sockets: list[socket.socket]) -> None:
    first = bind("127.0.0.1", 0)
    port = first.getsockname()[1]
    # a connection leaves the port in TIME_WAIT once closed by the server side
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    first.setblocking(True)
    accepted, _ = first.accept()
    accepted.close()
    client.close()
    first.close()
    again = bind("127.0.0.1", port)
    sockets.append(again)
    assert again.getsockname()[1] == port


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.1",  # TEST-NET-1: valid, but no interface here has it
        "a..b",  # not even a name (fails before any lookup)
    ],
)
def test_bad_address(host: str) -> None:
    with pytest.raises(BindError) as raised:
        bind(host, 0)
    assert raised.value.code == "bad-address"


def test_unknown_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)  # no resolver in unit tests
    with pytest.raises(BindError, match="Name or service not known") as raised:
        bind("no-such-host.invalid", 0)
    assert raised.value.code == "bad-address"


def test_port_out_of_range() -> None:
    with pytest.raises(BindError) as raised:
        bind("127.0.0.1", 65536)
    assert raised.value.code == "bad-address"


@needs_ipv6
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_ipv6(host: str, sockets: list[socket.socket]) -> None:
    sock = bind(host, 0)
    sockets.append(sock)
    assert sock.family == socket.AF_INET6
    port = sock.getsockname()[1]
    assert url_of(sock) == f"http://[::1]:{port}"
    with socket.create_connection(("::1", port), timeout=5):
        pass


def test_wildcard_binds_every_interface(sockets: list[socket.socket]) -> None:
    sock = bind("", 0)
    sockets.append(sock)
    assert sock.getsockname()[0] == "0.0.0.0"
    port = sock.getsockname()[1]
    assert url_of(sock) == f"http://127.0.0.1:{port}"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


@pytest.mark.parametrize(
    ("where", "url"),
    [
        (("127.0.0.1", 80), "http://127.0.0.1:80"),
        (("0.0.0.0", 8000), "http://127.0.0.1:8000"),
        (("::", 8000), "http://127.0.0.1:8000"),
        (("", 8000), "http://127.0.0.1:8000"),
        (("::1", 9), "http://[::1]:9"),
        (("[::1]", 9), "http://[::1]:9"),
        (("fe80::1", 443), "http://[fe80::1]:443"),
        (("node.example", 7777), "http://node.example:7777"),
    ],
)
def test_url_of(where: tuple[str, int], url: str) -> None:
    assert url_of(where) == url


def test_url_of_a_socket_with_a_scheme(sockets: list[socket.socket]) -> None:
    sock = bind("127.0.0.1", 0)
    sockets.append(sock)
    assert url_of(sock, scheme="https") == f"https://127.0.0.1:{sock.getsockname()[1]}"


def test_announce_listening_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    announce_listening(url="http://127.0.0.1:1234", node_id="ab" * 32, pid=os.getpid())
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    message = json.loads(out)
    assert next(iter(message)) == "event"  # first, for people reading the line
    assert message == {
        "event": "listening",
        "url": "http://127.0.0.1:1234",
        "node_id": "ab" * 32,
        "pid": os.getpid(),
    }
    assert parse_listening(out.encode()) == message


def test_announce_listening_keeps_its_line_whole(capsys: pytest.CaptureFixture[str]) -> None:
    announce_listening(note="two\nlines")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert parse_listening(out.encode()) == {"event": "listening", "note": "two\nlines"}


def test_announce_listening_owns_the_event_field() -> None:
    with pytest.raises(ValueError):
        announce_listening(event="started")


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"listening on 127.0.0.1\n",
        b'{"event": "started", "url": "http://x"}\n',
        b'["event", "listening"]\n',
        b'"listening"\n',
        b"\xff\xfe{}\n",
        b'{"event": "listening"',
    ],
)
def test_parse_listening_ignores_other_lines(line: bytes) -> None:
    assert parse_listening(line) is None


def test_parse_listening_takes_str_and_surrounding_space() -> None:
    assert parse_listening('  {"event": "listening", "port": 1}\r\n') == {
        "event": "listening",
        "port": 1,
    }
