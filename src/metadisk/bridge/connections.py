"""The bridge's HTTP connections: a cap on how many are open, and on how long and how large a
request's headers may be.

uvicorn has neither a header-read timeout nor a connection cap (its ``limit_concurrency``
answers 503 only once headers are complete, so connections that never finish them are held
forever): a slowloris kept every socket of a process. This is uvicorn's httptools protocol (the
one it picks with ``uvicorn[standard]``) with those three checks added.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from metadisk.runtime.logs import event
from metadisk.wire.errors import error_body

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    max_header_bytes: int
    header_timeout: float
    refused: Callable[[str], None] = lambda code: None  # counts a refusal by its code


def raw_error(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error answer with the JSON envelope, closing the connection."""
    body = error_body(code, message)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def protocol_for(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``, bound to `limits`."""
    return type("EdgeProtocol", (EdgeProtocol,), {"limits": limits})


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a connection cap, a header timeout and a header cap.

    The header clock starts when the connection opens, and again with the first byte of each
    later request on it (between requests uvicorn's keep-alive timeout applies); it stops when
    the headers are complete.
    """

    limits: ConnectionLimits

    _refused = False
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport  # connection_lost closes it
            self._refuse(503, "busy", "too many open connections; try again shortly")
            return
        super().connection_made(transport)
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._header_timer is not None and not self.transport.is_closing():
            # Counted after parsing, so bytes past complete headers (a body) are not; what
            # httptools buffers of unfinished headers stays below the cap plus one read.
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                self._refuse(431, "headers-too-large", f"request headers over {limit} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_clock()

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        super().on_headers_complete()

    def _start_header_clock(self) -> None:
        if self._header_timer is None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._header_timed_out
            )

    def _stop_header_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        seconds = self.limits.header_timeout
        self._refuse(408, "timeout", f"request headers not complete within {seconds:g} s")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._stop_header_clock()
        if self.transport.is_closing():
            return
        # An answer still being written for an earlier request on this connection must not be
        # interleaved with this one: then the connection just closes.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(raw_error(status, code, message))
        self.transport.close()
        self.limits.refused(code)
        event(log, logging.INFO, "connection refused", status=status, code=code)
