"""The pipelines' coordinators over the bridge API.

`UploadPipeline` and `DownloadPipeline` ask a coordinator for order limits and report committed
segments (`upload.UploadCoordinator`, `download.DownloadCoordinator`); these implement those
protocols with `BridgeAPI` calls for one pending upload or one object version.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.download import PieceSource
from metadisk.client.errors import BridgeError
from metadisk.client.upload import CommittedSegment, PieceTarget
from metadisk.core.erasure import ErasureCodec, RedundancyScheme
from metadisk.wire.api.objects import SegmentOrders


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
        )


class BridgeDownloadCoordinator:
    """The pipeline's `DownloadCoordinator` over the bridge API for one object version."""

    def __init__(self, bridge: BridgeAPI, bucket: str, key: str, stream_id: str) -> None:
        self._bridge = bridge
        self._bucket = bucket
        self._key = key
        self._stream_id = stream_id

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
