"""A recording TCP relay: what a man in the middle on the wire would see of a connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Relay:
    """Forwards every connection to `target` and keeps every byte each way."""

    port: int = 0
    upstream: bytearray = field(default_factory=bytearray)  # client -> server
    downstream: bytearray = field(default_factory=bytearray)  # server -> client
    connections: int = 0

    @property
    def seen(self) -> bytes:
        return bytes(self.upstream + self.downstream)


@contextlib.asynccontextmanager
async def relay(host: str, port: int) -> AsyncIterator[Relay]:
    """A relay on 127.0.0.1 (an ephemeral port, in `.port`) to `host`:`port`."""
    record = Relay()
    tasks: set[asyncio.Task[None]] = set()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, into: bytearray
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                into += chunk
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        for task in (
            asyncio.create_task(pump(reader, up_writer, record.upstream)),
            asyncio.create_task(pump(up_reader, writer, record.downstream)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    record.port = server.sockets[0].getsockname()[1]
    try:
        yield record
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
