"""Start a server as a real child process and wait until it listens (launchers, tests, `up`).

The child prints one listening line on stdout once it accepts connections
(`net.announce_listening`); `ChildProcess.start` waits for that line, so a launcher learns an
ephemeral port without racing for it or polling. Example::

    child = ChildProcess("farmer", [sys.executable, "-m", "metadisk.cli.farmer", "run", ...],
                         log_path=data_dir / "farmer.log")
    info = await child.start()  # {"event": "listening", "url": ..., ...}
    await child.kill()  # SIGKILL, as a crash would
    await child.start()  # again, with the same (or changed) `args`
    await child.stop()  # SIGTERM, SIGKILL if it lingers

The child's stderr is appended to `log_path`; its stdout is for the listening line, and whatever
else it prints there is read and dropped, so it never blocks on a full pipe. Code without an event
loop uses `start_sync`, `stop_sync`, `kill_sync` and `wait_sync`. A process is ended and waited
for with the forms that started it: mixing them raises RuntimeError.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from metadisk.runtime.net import parse_listening

# How long to let stdout reach its end after the child exited (a grandchild may hold it open).
DRAIN_GRACE = 5.0
# How often the blocking drain thread looks whether it has been told to stop.
_DRAIN_POLL = 0.1
_TAIL_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_LINE_LIMIT = 1024 * 1024


class ChildStartError(RuntimeError):
    """The child could not be run, or it exited or stayed silent instead of listening."""


class ChildProcess:
    """One server process, started again as often as needed; only ever signals its own pid.

    Parameters:
        name: names the child in errors and task names.
        args: the whole argv; an attribute a launcher may change before a restart.
        log_path: the child's stderr is appended here (directories are made).
        env: added to this process's environment, with PYTHONUNBUFFERED=1.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args: list[str] = list(args)
        self.log_path = Path(log_path)
        self.env: dict[str, str] = dict(env or {})
        self.info: dict[str, Any] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._drain_thread: threading.Thread | None = None
        self._drain_stop = threading.Event()

    @property
    def pid(self) -> int:
        if self._process is not None:
            return self._process.pid
        if self._popen is not None:
            return self._popen.pid
        raise RuntimeError(f"{self.name} has not been started")

    @property
    def returncode(self) -> int | None:
        """The exit code of the last process started, None while it runs (or if never started).

        Negative for a signal, as in `subprocess`.
        """
        if self._process is not None:
            return self._process.returncode
        if self._popen is not None:
            return self._popen.poll()
        return None

    @property
    def running(self) -> bool:
        return (self._process is not None or self._popen is not None) and self.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log ("" if there is none yet)."""
        try:
            with open(self.log_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - _TAIL_BYTES))
                data = log.read()
        except OSError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    # -- async

    async def start(self, *, within: float = 60.0) -> dict[str, Any]:
        """Run `args` and wait until the child prints its listening line; that line's fields.

        ChildStartError if it cannot be run, or (with the log's tail) if it exits first or is
        silent for `within` seconds, when it is killed.
        """
        self._before_start()
        await self._settle()
        self._settle_sync()  # a child of start_sync() that ended on its own: its thread is done
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - opening a local file is instant
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.args,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env=self._environment(),
                )
            except OSError as exc:
                raise ChildStartError(self._unable(exc)) from exc
        self._process, self._popen = process, None
        assert process.stdout is not None
        try:
            async with asyncio.timeout(within):
                info = await _read_listening(process.stdout)
        except TimeoutError:
            await self.kill()
            raise ChildStartError(self._silent(within)) from None
        except BaseException:
            await self.kill()
            raise
        if info is None:
            await self.wait()
            raise ChildStartError(self._exited())
        self.info = info
        self._ensure_drain(process)
        return info

    async def stop(self, *, within: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `within` seconds; the exit code.

        None if it was never started; an exited child just gives its code.
        """
        return await self._end(signal.SIGTERM, within)

    async def kill(self) -> int | None:
        """SIGKILL, as a crash or a power cut would end it; the exit code."""
        return await self._end(signal.SIGKILL, None)

    async def wait(self) -> int:
        """Wait until the child exits on its own; its exit code."""
        process = self._async_process("wait")
        if process is None:
            raise RuntimeError(f"{self.name} has not been started")
        self._ensure_drain(process)
        code = await process.wait()
        await self._settle()
        return code

    async def _end(self, signum: signal.Signals, within: float | None) -> int | None:
        process = self._async_process("stop")
        if process is None:
            return None
        self._ensure_drain(process)
        if process.returncode is None:
            # asyncio does not signal a process it has reaped, so this never hits a reused pid
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
            try:
                async with asyncio.timeout(within):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self._settle()
        return process.returncode

    def _ensure_drain(self, process: asyncio.subprocess.Process) -> None:
        """Read stdout to its end in the background (without a reader the child could block)."""
        if self._drain_task is None and process.stdout is not None:
            self._drain_task = asyncio.create_task(
                _drain(process.stdout), name=f"{self.name}-stdout"
            )

    async def _settle(self) -> None:
        """After the child exited: let the drain reach the end of stdout, or give up on it."""
        task, self._drain_task = self._drain_task, None
        if task is None:
            return
        _, pending = await asyncio.wait([task], timeout=DRAIN_GRACE)
        if pending:
            task.cancel()
            await asyncio.wait([task])

    def _async_process(self, verb: str) -> asyncio.subprocess.Process | None:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was started with start_sync(): use {verb}_sync()")
        return self._process

    # -- blocking

    def start_sync(self, *, within: float = 60.0) -> dict[str, Any]:
        """`start` for code without an event loop."""
        self._before_start()
        self._settle_sync()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                popen = subprocess.Popen(
                    self.args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=self._environment(),
                )
            except OSError as exc:
                raise ChildStartError(self._unable(exc)) from exc
        self._popen, self._process, self._drain_task = popen, None, None
        assert popen.stdout is not None
        try:
            info = _read_listening_sync(popen.stdout, time.monotonic() + within)
        except TimeoutError:
            self.kill_sync()
            raise ChildStartError(self._silent(within)) from None
        except BaseException:
            self.kill_sync()
            raise
        if info is None:
            self.wait_sync()
            raise ChildStartError(self._exited())
        self.info = info
        self._drain_stop = threading.Event()
        self._drain_thread = threading.Thread(
            target=_drain_sync,
            args=(popen.stdout, self._drain_stop),
            name=f"{self.name}-stdout",
            daemon=True,
        )
        self._drain_thread.start()
        return info

    def stop_sync(self, *, within: float = 15.0) -> int | None:
        """`stop` for code without an event loop."""
        return self._end_sync(signal.SIGTERM, within)

    def kill_sync(self) -> int | None:
        """`kill` for code without an event loop."""
        return self._end_sync(signal.SIGKILL, None)

    def wait_sync(self, *, within: float | None = None) -> int:
        """`wait` for code without an event loop; TimeoutError after `within` seconds."""
        popen = self._sync_process("wait")
        if popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        try:
            code = popen.wait(within)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{self.name} still runs after {within:g} s") from exc
        self._settle_sync()
        return code

    def _end_sync(self, signum: signal.Signals, within: float | None) -> int | None:
        popen = self._sync_process("stop")
        if popen is None:
            return None
        if popen.poll() is None:
            # Popen polls before signalling, so this never hits a reused pid
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signum)
            try:
                popen.wait(within)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                popen.wait()
        self._settle_sync()
        return popen.returncode

    def _settle_sync(self) -> None:
        """After the child exited: end the drain thread, which closes stdout."""
        thread, self._drain_thread = self._drain_thread, None
        if thread is not None:
            # it reads the end of stdout at once; the flag covers a grandchild holding it open
            self._drain_stop.set()
            thread.join()
        elif self._popen is not None and self._popen.stdout is not None:
            self._popen.stdout.close()  # no reader: safe to close here

    def _sync_process(self, verb: str) -> subprocess.Popen[bytes] | None:
        if self._process is not None:
            raise RuntimeError(f"{self.name} was started with start(): use {verb}()")
        return self._popen

    # -- shared

    def _before_start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.info = {}

    def _environment(self) -> dict[str, str]:
        # unbuffered: the listening line and the log must not wait in the child's buffers
        return {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}

    def _unable(self, exc: OSError) -> str:
        return f"cannot run {self.name} ({self.args[0] if self.args else 'no args'}): {exc}"

    def _silent(self, within: float) -> str:
        return f"{self.name} did not listen within {within:g} s; log tail:\n{self.log_tail()}"

    def _exited(self) -> str:
        return (
            f"{self.name} exited with {self.returncode} before listening; "
            f"log tail:\n{self.log_tail()}"
        )


async def _read_listening(stdout: asyncio.StreamReader) -> dict[str, Any] | None:
    """The first listening line's fields; None at the end of the stream."""
    while True:
        try:
            line = await stdout.readline()
        except ValueError:
            continue  # a line over the reader's limit (dropped by it): not a listening line
        if not line:
            return None
        if (info := parse_listening(line)) is not None:
            return info


async def _drain(stdout: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stdout.read(_CHUNK):
            pass


def _read_listening_sync(stdout: IO[bytes], deadline: float) -> dict[str, Any] | None:
    """`_read_listening` with a deadline on the monotonic clock (TimeoutError after it)."""
    fd = stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return None
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if (info := parse_listening(line)) is not None:
                    return info
            if len(buffer) > _LINE_LIMIT:
                buffer = b""  # a line this long is not a listening line


def _drain_sync(stdout: IO[bytes], stop: threading.Event) -> None:
    """Read and drop stdout until its end or `stop`, then close it (this thread owns it now)."""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(stdout.fileno(), selectors.EVENT_READ)
            while not stop.is_set():
                if selector.select(_DRAIN_POLL) and not os.read(stdout.fileno(), _CHUNK):
                    return
    except (OSError, ValueError):
        return
    finally:
        stdout.close()


__all__ = ["DRAIN_GRACE", "ChildProcess", "ChildStartError"]
