"""The client library's tuning: `ClientConfig` and the settings it is made of.

Apart from the pipelines they tune, so that a front end can build a configuration (and open a
project, and list) without importing the transfer pipelines, the worker processes or the data
plane's client: `metadisk ls` moves no piece. Each setting is also importable from the module
it tunes (`metadisk.client.upload.UploadConfig`, ...); `metadisk.client` is the public way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from metadisk.client.segmenter import SegmentSizing
from metadisk.wire.dataplane.config import PieceClientConfig

# The data plane's timeouts and connection limits, as the client's transport uses them.
TransportConfig = PieceClientConfig


@dataclass(frozen=True, slots=True)
class LongTail:
    """When a piece still in flight counts as far slower than its segment's finished pieces:
    after `factor` times their median latency, and never before `floor` seconds.

    Nothing is a laggard before some piece has finished: until then only the transport's
    timeouts bound a transfer.
    """

    factor: float = 4.0
    floor: float = 1.0

    def __post_init__(self) -> None:
        if not (self.factor >= 1 and self.floor >= 0):
            raise ValueError("need factor >= 1 and floor >= 0")

    def after(self, finished: Sequence[float]) -> float | None:
        """Seconds in flight from which a piece is a laggard; None while nothing finished."""
        if not finished:
            return None
        import statistics  # here: fractions, decimal and random cost ~25 ms of start-up

        return max(self.floor, self.factor * statistics.median(finished))


# On loopback a piece takes 0.05-0.5 s. A second before replacing an upload's laggard (or
# hedging a download's), and three before giving up on one no other farmer can take (failing
# its segment), keep healthy farmers out of it; on slower links the factors set the pace.
REPLACE_LAGGARDS = LongTail(factor=4.0, floor=1.0)
ABANDON_LAGGARDS = LongTail(factor=10.0, floor=3.0)


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """Tuning of the upload pipeline.

    `segments_in_flight` bounds the buffers held (being read, encoded or sent); at most
    `segments_uploading` of them are on the wire at once, so a segment's slow tail overlaps the
    next one's start. `max_replacements` caps the pieces replaced per segment (None: n). A piece
    the segment needs that lags `replace_laggards` behind the pieces stored (or went to a
    suspect farmer) gets a replacement farmer while it goes on; past `abandon_laggards`, with
    no replacement to be had, it is given up, so that a segment the network cannot store fails
    within seconds (None: wait for the transport's timeouts).
    """

    segments_in_flight: int = 3
    segments_uploading: int = 2
    max_replacements: int | None = None
    replace_laggards: LongTail | None = REPLACE_LAGGARDS
    abandon_laggards: LongTail | None = ABANDON_LAGGARDS

    def __post_init__(self) -> None:
        if not 1 <= self.segments_uploading < self.segments_in_flight:
            raise ValueError("need 1 <= segments_uploading < segments_in_flight")


@dataclass(frozen=True, slots=True)
class DownloadConfig:
    """Tuning of downloads: hedged fetches per segment, and segments fetched ahead.

    `extra_pieces` more than k pieces are fetched, the slowest cancelled once k are good, so a
    hung or slow farmer among them costs little. They start when the other pieces are late:
    as long after the first piece ended as that piece took (`_SegmentFetch.hedge_time`), or
    `hedge_delay` seconds after the fetches began if none ended (None: with the others).
    Started at once they halved loopback throughput on a busy machine (see docs/client.md).
    A fetch lagging `hedge_laggards` behind the finished ones is no longer counted on: another
    source starts (None: only the transport's timeouts end it).
    """

    extra_pieces: int = 2
    read_ahead: int = 2
    hedge_delay: float | None = 1.0
    hedge_laggards: LongTail | None = REPLACE_LAGGARDS

    def __post_init__(self) -> None:
        if self.extra_pieces < 0 or self.read_ahead < 1:
            raise ValueError("need extra_pieces >= 0 and read_ahead >= 1")
        if self.hedge_delay is not None and self.hedge_delay < 0:
            raise ValueError("need hedge_delay >= 0")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Tuning of an `AsyncProject`; the defaults suit a laptop and `metadisk up`.

    ``processes`` picks where encryption and erasure coding run: worker processes over shared
    memory (True), threads (False) or by platform (None); ``workers`` how many. A farmer that
    hangs, stalls or refuses connections is avoided by every transfer of the project for
    ``suspect_for`` seconds after its last such failure (`farmer_transport.Suspects`).
    """

    sizing: SegmentSizing = field(default_factory=SegmentSizing)
    upload: UploadConfig = field(default_factory=UploadConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    processes: bool | None = None
    workers: int | None = None
    bridge_timeout: float = 60.0
    suspect_for: float = 120.0
