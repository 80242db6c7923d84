"""`PieceClientConfig`: the data-plane client's timeouts and limits, apart from the client so
that a configuration (the client library's `ClientConfig`) can name them without importing
aiohttp, the contract's models or the TLS pinning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PieceClientConfig:
    """Timeouts (seconds) and connection limits.

    There is no total timeout: a piece of any size may take long on a slow link, and the
    transfer pipelines cancel stragglers themselves. What is bounded is silence: connecting
    (`connect_timeout`), the wait for an answer to begin (`first_byte_timeout`; for a PUT,
    `answer_timeout` from its last byte, which leaves the farmer time to fsync), and any stretch
    of a transfer that moves no byte either way (`stall_timeout`). `read_timeout` is the socket
    read timeout underneath, a backstop.
    """

    connect_timeout: float = 3.0
    first_byte_timeout: float = 5.0
    stall_timeout: float = 5.0
    answer_timeout: float = 10.0
    read_timeout: float = 30.0
    max_connections: int = 512  # above n of any profile: one segment opens n at once

    def __post_init__(self) -> None:
        timeouts = (
            self.connect_timeout,
            self.first_byte_timeout,
            self.stall_timeout,
            self.answer_timeout,
            self.read_timeout,
        )
        if not all(t > 0 for t in timeouts):
            raise ValueError("every timeout must be positive")
