"""The pipelines' coordinators over the bridge API.

`UploadPipeline` and `DownloadPipeline` ask a coordinator for order limits and report committed
segments (`upload.UploadCoordinator`, `download.DownloadCoordinator`); these implement those
protocols with `BridgeAPI` calls for one pending upload or one object version. How each piece
transfer went goes to the bridge with an upload's segment commit, and after each segment of a
download in a report of its own, sent in the background (`BackgroundReports`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.download import PieceSource
from metadisk.client.errors import BridgeError, ClientError
from metadisk.client.farmer_transport import PieceTarget
from metadisk.client.upload import CommittedSegment
from metadisk.core.erasure import ErasureCodec, RedundancyScheme
from metadisk.runtime.logs import event
from metadisk.wire.api.objects import PieceOutcome, SegmentOrders

log = logging.getLogger("metadisk.client.transfers")


class BridgeUploadCoordinator:
    """The pipeline's `UploadCoordinator` over the bridge API for one pending upload."""

    def __init__(self, bridge: BridgeAPI, stream_id: str, scheme: RedundancyScheme) -> None:
        self._bridge = bridge
        self._stream_id = stream_id
        self._codec = ErasureCodec(scheme.k, scheme.n)

    async def begin_segment(self, index: int, ciphertext_size: int) -> Sequence[PieceTarget]:
        piece_size = self._codec.piece_size(ciphertext_size)
        orders = await self._bridge.begin_segment(
            self._stream_id, index, ciphertext_size, piece_size
        )
        return _targets(orders)

    async def replace_pieces(
        self, index: int, failed: Sequence[PieceTarget]
    ) -> Sequence[PieceTarget]:
        orders = await self._bridge.replace_pieces(
            self._stream_id, index, [t.number for t in failed], []
        )
        return _targets(orders)

    async def commit_segment(self, segment: CommittedSegment) -> None:
        receipts = [segment.receipts[n] for n in sorted(segment.receipts)]
        await self._bridge.commit_segment(
            self._stream_id,
            segment.index,
            receipts,
            segment.plaintext_size,
            segment.encrypted_key,
            segment.outcomes,
        )


class BridgeDownloadCoordinator:
    """The pipeline's `DownloadCoordinator` over the bridge API for one object version."""

    def __init__(
        self,
        bridge: BridgeAPI,
        bucket: str,
        key: str,
        stream_id: str,
        reports: BackgroundReports | None = None,
    ) -> None:
        self._bridge = bridge
        self._bucket = bucket
        self._key = key
        self._stream_id = stream_id
        self._reports = reports

    async def download_segment(
        self, index: int, exclude: Collection[int] = ()
    ) -> Sequence[PieceSource]:
        orders = await self._bridge.download_segment(
            self._bucket, self._key, index, self._stream_id, exclude=exclude
        )
        return [
            PieceSource(o.piece_number, o.order_limit, o.address, o.piece_hash)
            for o in orders.order_limits
        ]

    def report_segment(self, index: int, outcomes: Sequence[PieceOutcome]) -> None:
        if self._reports is not None:
            self._reports.send(self._bucket, self._key, index, self._stream_id, outcomes)


class BackgroundReports:
    """Sends downloads' segment reports to the bridge in the background, best effort.

    A report never slows a download nor fails one: it is posted by a task of its own, and a
    failure is logged (debug) and forgotten. A bridge without the route (an older one answers
    404 ``not-found`` or 405) gets no more reports from this client. At most `most` reports
    wait at once; more are dropped, so a bridge that stopped answering costs nothing but them.

    A segment whose every fetch succeeded is reported only one time in `success_every` (the
    first, then every so many): each report is a bridge request, which measurably slowed reads
    of small objects, and latency samples need not be every one. Anything else is always told.
    """

    def __init__(self, bridge: BridgeAPI, *, most: int = 64, success_every: int = 8) -> None:
        self._bridge = bridge
        self._most = most
        self._success_every = max(1, success_every)
        self._successes = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.enabled = True

    def send(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str,
        outcomes: Sequence[PieceOutcome],
    ) -> None:
        if not self.enabled or not outcomes or len(self._tasks) >= self._most:
            return
        if all(o.outcome == "success" for o in outcomes):
            self._successes += 1
            if (self._successes - 1) % self._success_every:
                return
        task = asyncio.get_running_loop().create_task(
            self._post(bucket, key, index, stream_id, outcomes)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str,
        outcomes: Sequence[PieceOutcome],
    ) -> None:
        try:
            await self._bridge.report_segment(bucket, key, index, stream_id, outcomes)
        except BridgeError as exc:
            if (exc.status, exc.code) in ((404, "not-found"), (405, "method-not-allowed")):
                self.enabled = False  # a bridge without the route: stop sending
            event(log, logging.DEBUG, "segment report not sent", code=exc.code, segment=index)
        except ClientError as exc:
            event(log, logging.DEBUG, "segment report not sent", code=exc.code, segment=index)

    async def aclose(self, *, wait: float = 2.0) -> None:
        """Give reports still on their way `wait` seconds, then drop them."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=wait)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def _targets(orders: SegmentOrders) -> list[PieceTarget]:
    """Where each piece goes, with the farmer key its receipt must verify under.

    The bridge names each farmer's key in its PUT order limits; the upload checks that the key
    hashes to the order limit's node id, so a lying bridge cannot make a forged receipt count.
    """
    targets = []
    for order in orders.order_limits:
        if order.public_key is None:
            raise BridgeError(
                f"the order limit for piece {order.piece_number} names no farmer key",
                code="bad-response",
            )
        targets.append(
            PieceTarget(order.piece_number, order.order_limit, order.address, order.public_key)
        )
    return targets
