"""Child processes: start until listening, stop, kill, wait, restart, failures; async and blocking.

The children are small Python scripts written for each test; every test ends the children it
started (the fixtures kill any left running, by their own pid).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from metadisk.runtime.process import ChildProcess, ChildStartError

# The child: `mode` picks what it does; it logs to stderr and prints its listening line on stdout.
SERVER = """
import json, os, signal, sys, time

mode = sys.argv[1]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean exit on SIGTERM
if mode == "fail":
    sys.stderr.write("boom: bad config\\n")
    sys.exit(3)
if mode == "silent":
    if "NOTIFY_PORT" in os.environ:  # say "I am running" (and who) to the test
        import socket
        with socket.create_connection(("127.0.0.1", int(os.environ["NOTIFY_PORT"]))) as notify:
            notify.sendall(str(os.getpid()).encode())
    time.sleep(3600)
if mode == "noisy":
    print("starting up")
    print("y" * 200_000)  # longer than asyncio's line limit
sys.stderr.write(f"started {os.getpid()}\\n")
listening = {
    "event": "listening",
    "pid": os.getpid(),
    "extra": os.environ.get("CHILD_EXTRA"),
    "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
}
print(json.dumps(listening), flush=True)
if mode == "flood":
    sys.stdout.write("x" * (4 << 20))  # far more than a pipe holds: blocks unless drained
    sys.stdout.flush()
    import socket
    socket.create_connection(("127.0.0.1", int(os.environ["NOTIFY_PORT"]))).close()  # done
if mode == "exit":
    sys.exit(7)
while True:
    signal.pause()
"""

Make = Callable[..., ChildProcess]


def _make(tmp_path: Path, made: list[ChildProcess]) -> Make:
    script = tmp_path / "server.py"
    script.write_text(SERVER)

    def make(mode: str = "serve", **env: str) -> ChildProcess:
        child = ChildProcess(
            f"child-{mode}",
            [sys.executable, str(script), mode],
            log_path=tmp_path / "logs" / "child.log",
            env=env,
        )
        made.append(child)
        return child

    return make


@pytest.fixture
async def children(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[ChildProcess] = []
    yield _make(tmp_path, made)
    for child in made:
        if child.running:
            await child.kill()


@pytest.fixture
def sync_children(tmp_path: Path) -> Iterator[Make]:
    made: list[ChildProcess] = []
    yield _make(tmp_path, made)
    for child in made:
        if child.running:
            child.kill_sync()


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours were reaped, so a reused pid is someone's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- async


async def test_start_stop_restart(children: Make) -> None:
    child = children()
    info = await child.start(within=30)
    assert info["event"] == "listening"
    assert info["pid"] == child.pid == child.info["pid"]
    assert info["unbuffered"] == "1"
    assert child.running and child.returncode is None
    first = child.pid

    assert await child.stop() == 0  # SIGTERM: the child exits cleanly
    assert not child.running and child.returncode == 0
    assert await child.stop() == 0  # again: nothing to do

    await child.start(within=30)
    assert child.pid != first and child.running
    assert await child.stop() == 0
    log = child.log_path.read_text()
    assert f"started {first}" in log and f"started {child.pid}" in log  # appended, not replaced


async def test_kill_then_start_again(children: Make) -> None:
    child = children()
    await child.start(within=30)
    pid = child.pid
    assert await child.kill() == -signal.SIGKILL
    assert not child.running and not _alive(pid)
    await child.start(within=30)
    assert child.running
    await child.stop()


async def test_args_may_change_before_a_restart(children: Make) -> None:
    child = children()
    await child.start(within=30)
    await child.stop()
    child.args[-1] = "exit"
    await child.start(within=30)
    assert await child.wait() == 7


async def test_start_returns_the_listening_line_after_noise(children: Make) -> None:
    child = children("noisy", CHILD_EXTRA="42")
    info = await child.start(within=30)
    assert info["extra"] == "42"  # env is added to the environment
    await child.stop()


async def test_exit_before_listening(children: Make) -> None:
    child = children("fail")
    with pytest.raises(ChildStartError, match="exited with 3") as raised:
        await child.start(within=30)
    assert "boom: bad config" in str(raised.value)  # the log tail says why
    assert child.returncode == 3 and not child.running
    assert child.info == {}


async def test_silence_times_out_and_kills(children: Make) -> None:
    child = children("silent")
    with pytest.raises(ChildStartError, match=r"did not listen within 0\.3 s"):
        await child.start(within=0.3)
    assert child.returncode == -signal.SIGKILL
    assert not _alive(child.pid)


async def test_cancelled_start_kills_the_child(children: Make) -> None:
    pids: asyncio.Queue[int] = asyncio.Queue()

    async def notified(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pids.put_nowait(int(await reader.read()))
        writer.close()

    server = await asyncio.start_server(notified, "127.0.0.1", 0)
    async with server:
        child = children("silent", NOTIFY_PORT=str(server.sockets[0].getsockname()[1]))
        task = asyncio.create_task(child.start(within=30))
        async with asyncio.timeout(30):
            pid = await pids.get()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert child.returncode == -signal.SIGKILL
    assert not _alive(pid)


async def test_stop_kills_a_child_that_ignores_sigterm(children: Make) -> None:
    child = children("ignore-term")
    await child.start(within=30)
    assert await child.stop(within=0.2) == -signal.SIGKILL


async def test_a_child_flooding_stdout_never_blocks(children: Make) -> None:
    flooded = asyncio.Event()

    async def notified(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flooded.set()
        writer.close()

    server = await asyncio.start_server(notified, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        child = children("flood", NOTIFY_PORT=str(port))
        await child.start(within=30)
        async with asyncio.timeout(30):  # the child wrote it all while nobody waited for it
            await flooded.wait()
        assert await child.stop() == 0


async def test_wait_for_an_exit_of_its_own(children: Make) -> None:
    child = children("exit")
    await child.start(within=30)
    async with asyncio.timeout(30):
        assert await child.wait() == 7
    assert await child.stop() == 7  # already gone: its code


async def test_a_missing_program(tmp_path: Path) -> None:
    child = ChildProcess("ghost", [str(tmp_path / "nothing")], log_path=tmp_path / "ghost.log")
    with pytest.raises(ChildStartError, match="cannot run ghost"):
        await child.start()
    with pytest.raises(ChildStartError, match="cannot run ghost"):
        child.start_sync()
    assert not child.running


async def test_never_started(children: Make) -> None:
    child = children()
    assert await child.stop() is None
    assert await child.kill() is None
    assert child.returncode is None and not child.running
    with pytest.raises(RuntimeError):
        await child.wait()
    with pytest.raises(RuntimeError):
        child.pid  # noqa: B018 - the property raises
    assert child.log_tail() == ""


async def test_start_twice_is_refused(children: Make) -> None:
    child = children()
    await child.start(within=30)
    with pytest.raises(RuntimeError, match="already running"):
        await child.start(within=30)
    await child.stop()


async def test_forms_do_not_mix(children: Make) -> None:
    child = children()
    await child.start(within=30)
    with pytest.raises(RuntimeError, match="start\\(\\)"):
        child.stop_sync()
    with pytest.raises(RuntimeError):
        child.kill_sync()
    await child.stop()


async def test_log_tail(children: Make) -> None:
    child = children()
    child.log_path.parent.mkdir(parents=True)
    child.log_path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert child.log_tail(3) == "line 97\nline 98\nline 99"
    assert child.log_tail().splitlines()[0] == "line 60"


# -- blocking


def test_sync_start_stop_kill_restart(sync_children: Make) -> None:
    child = sync_children("noisy", CHILD_EXTRA="x")
    info = child.start_sync(within=30)
    assert info["pid"] == child.pid and info["extra"] == "x"
    assert child.running
    pid = child.pid
    assert child.kill_sync() == -signal.SIGKILL
    assert not child.running and not _alive(pid)
    child.start_sync(within=30)
    assert child.pid != pid
    assert child.stop_sync() == 0
    assert child.stop_sync() == 0
    assert child.returncode == 0


def test_sync_exit_before_listening(sync_children: Make) -> None:
    child = sync_children("fail")
    with pytest.raises(ChildStartError, match="exited with 3") as raised:
        child.start_sync(within=30)
    assert "boom: bad config" in str(raised.value)
    assert child.returncode == 3


def test_sync_silence_times_out_and_kills(sync_children: Make) -> None:
    child = sync_children("silent")
    with pytest.raises(ChildStartError, match="did not listen"):
        child.start_sync(within=0.3)
    assert child.returncode == -signal.SIGKILL


def test_sync_stop_kills_a_child_that_ignores_sigterm(sync_children: Make) -> None:
    child = sync_children("ignore-term")
    child.start_sync(within=30)
    assert child.stop_sync(within=0.2) == -signal.SIGKILL


def test_sync_flooding_child_never_blocks(sync_children: Make) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        child = sync_children("flood", NOTIFY_PORT=str(server.getsockname()[1]))
        child.start_sync(within=30)
        connection, _ = server.accept()  # the child wrote it all while nobody waited for it
        connection.close()
    assert child.stop_sync() == 0


def test_sync_wait(sync_children: Make) -> None:
    child = sync_children()
    child.start_sync(within=30)
    with pytest.raises(TimeoutError):
        child.wait_sync(within=0.05)
    assert child.running
    child.stop_sync()
    child.args[-1] = "exit"
    child.start_sync(within=30)
    assert child.wait_sync(within=30) == 7


async def test_sync_forms_do_not_mix(sync_children: Make) -> None:
    child = sync_children()
    child.start_sync(within=30)
    try:
        with pytest.raises(RuntimeError, match="start_sync"):
            await child.stop()
        with pytest.raises(RuntimeError):
            await child.wait()
    finally:
        child.stop_sync()
