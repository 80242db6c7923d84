"""`BridgeAPI`: the bridge's object plane for one API key (buckets, uploads, objects, listings,
downloads and revocations)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from metadisk.client.bridge_api._http import BridgeHttp, segment
from metadisk.client.errors import InvalidArgument
from metadisk.core.encoding import b64encode
from metadisk.core.identity import NodeId
from metadisk.core.messages import PieceReceipt
from metadisk.wire.api import buckets, objects, routes
from metadisk.wire.api.buckets import Bucket, BucketPage
from metadisk.wire.api.objects import (
    BeganUpload,
    Listing,
    Object,
    PendingUpload,
    PieceOutcome,
    ReportAccepted,
    SegmentCommit,
    SegmentOrders,
    SegmentRekey,
    UploadSummary,
)
from metadisk.wire.errors import describe_invalid

if TYPE_CHECKING:
    # The account API's models, imported by the calls that use them: listing and transfers
    # never do (each module of models costs start-up time).
    from metadisk.wire.api import accounts

B = TypeVar("B", bound=BaseModel)


class BridgeAPI:
    """The bridge's API for one API key: buckets, objects, uploads and downloads.

    Example::

        api = BridgeAPI("http://127.0.0.1:7000", api_key.serialize())
        bucket = await api.create_bucket("photos")
        await api.aclose()
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._http = BridgeHttp(url, api_key, session, timeout)

    @property
    def url(self) -> str:
        return self._http.url

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- keys

    async def passphrase_verifier(self) -> bytes | None:
        """The key's project's passphrase verifier (`metadisk.core.keys.passphrase_verifier`);
        None if none is stored yet. Any key of the project may read it, even a restricted one."""
        from metadisk.wire.api import accounts

        found = await self._http.parsed("GET", routes.VERIFIER, accounts.PassphraseVerifier)
        return found.verifier

    async def set_passphrase_verifier(self, verifier: bytes) -> None:
        """Store the verifier if none is yet (an unrestricted key only); `Conflict`
        (verifier-mismatch) if another is stored."""
        from metadisk.wire.api import accounts

        body = _body(accounts.NewVerifier, verifier=verifier)
        await self._http.call("PUT", routes.VERIFIER, body=body)

    async def revoke(self, api_key: str) -> None:
        """Revoke `api_key` (serialized): this API key or one restricted from it, and every key
        made from that."""
        from metadisk.wire.api import accounts

        body = _body(accounts.Revocation, api_key=api_key)
        await self._http.call("POST", routes.REVOCATIONS, body=body)

    async def usage(self) -> accounts.ProjectUsage:
        """The key's project: usage against its limits and what pending uploads reserve."""
        from metadisk.wire.api import accounts

        return await self._http.parsed("GET", routes.USAGE, accounts.ProjectUsage)

    # -- buckets

    async def create_bucket(self, name: str, profile: str | None = None) -> Bucket:
        body = _body(buckets.NewBucket, name=name, profile=profile)
        return await self._http.parsed("POST", routes.BUCKETS, Bucket, body=body)

    async def list_buckets(self, cursor: str = "", limit: int = 1000) -> BucketPage:
        params = {"cursor": cursor, "limit": str(limit)}
        return await self._http.parsed("GET", routes.BUCKETS, BucketPage, params=params)

    async def get_bucket(self, name: str) -> Bucket:
        return await self._http.parsed("GET", _bucket_path(routes.BUCKET, name), Bucket)

    async def delete_bucket(self, name: str, *, force: bool = False) -> None:
        params = {"force": "true" if force else "false"}
        await self._http.call("DELETE", _bucket_path(routes.BUCKET, name), params=params)

    # -- uploads

    async def begin_object(self, bucket: str, key: str) -> BeganUpload:
        path = _bucket_path(routes.BUCKET_UPLOADS, bucket)
        body = _body(objects.BeginObject, key=key)
        return await self._http.parsed("POST", path, BeganUpload, body=body)

    async def begin_segment(
        self, stream_id: str, index: int, encrypted_size: int, piece_size: int
    ) -> SegmentOrders:
        body = _body(
            objects.BeginSegment,
            index=index,
            encrypted_size=encrypted_size,
            piece_size=piece_size,
        )
        path = routes.SEGMENTS.format(stream_id=_stream(stream_id))
        return await self._http.parsed("POST", path, SegmentOrders, body=body)

    async def replace_pieces(
        self, stream_id: str, index: int, piece_numbers: Sequence[int], node_ids: Sequence[NodeId]
    ) -> SegmentOrders:
        body = _body(
            objects.Replacement, piece_numbers=list(piece_numbers), node_ids=list(node_ids)
        )
        path = routes.SEGMENT_REPLACEMENTS.format(stream_id=_stream(stream_id), index=index)
        return await self._http.parsed("POST", path, SegmentOrders, body=body)

    async def commit_segment(
        self,
        stream_id: str,
        index: int,
        receipts: Sequence[PieceReceipt],
        plain_size: int,
        encrypted_metadata: bytes,
        outcomes: Sequence[PieceOutcome] = (),
    ) -> SegmentCommit:
        """Commit a segment's pieces; `outcomes` tells the bridge how each piece transfer
        went, to score the farmers by."""
        body = _body(
            objects.CommitSegment,
            receipts=[b64encode(receipt.encode()) for receipt in receipts],
            plain_size=plain_size,
            encrypted_metadata=encrypted_metadata,
            outcomes=list(outcomes),
        )
        path = routes.SEGMENT_COMMIT.format(stream_id=_stream(stream_id), index=index)
        return await self._http.parsed("POST", path, SegmentCommit, body=body)

    async def commit_object(
        self, stream_id: str, encrypted_metadata: bytes, segments: Sequence[int] | None = None
    ) -> Object:
        """Commit the upload; with `segments`, as those committed segments only (the others
        are dropped), else as all of them, 0, 1, 2, ..."""
        listed = None if segments is None else list(segments)
        body = _body(objects.CommitObject, encrypted_metadata=encrypted_metadata, segments=listed)
        path = routes.UPLOAD_COMMIT.format(stream_id=_stream(stream_id))
        return await self._http.parsed("POST", path, Object, body=body)

    async def abort_upload(self, stream_id: str) -> None:
        await self._http.call("DELETE", routes.UPLOAD.format(stream_id=_stream(stream_id)))

    async def get_upload(self, stream_id: str) -> PendingUpload:
        """A pending upload and its committed segments (to resume it); `NotFound` with code
        ``upload-not-found`` once it is committed, aborted or reclaimed."""
        path = routes.UPLOAD.format(stream_id=_stream(stream_id))
        return await self._http.parsed("GET", path, PendingUpload)

    async def list_uploads(self, bucket: str, key: str) -> tuple[UploadSummary, ...]:
        """The pending uploads to a key, oldest first (to resume one whose stream id was lost)."""
        path = _bucket_path(routes.BUCKET_UPLOADS, bucket)
        found = await self._http.parsed("GET", path, objects.UploadList, params={"key": key})
        return tuple(found.uploads)

    async def list_uploads_under(self, bucket: str, prefix: str) -> tuple[UploadSummary, ...]:
        """The pending uploads below an encrypted folder ("" or ending in "/"), oldest first."""
        path = _bucket_path(routes.BUCKET_UPLOADS, bucket)
        params = {"prefix": prefix}
        found = await self._http.parsed("GET", path, objects.UploadList, params=params)
        return tuple(found.uploads)

    async def put_inline(
        self, bucket: str, key: str, data: bytes, plain_size: int, encrypted_metadata: bytes
    ) -> Object:
        body = _body(
            objects.NewInlineObject,
            key=key,
            data=data,
            plain_size=plain_size,
            encrypted_metadata=encrypted_metadata,
        )
        path = _bucket_path(routes.OBJECTS, bucket)
        return await self._http.parsed("POST", path, Object, body=body)

    # -- objects

    async def get_object(self, bucket: str, key: str) -> Object:
        path = _bucket_path(routes.OBJECT, bucket)
        return await self._http.parsed("GET", path, Object, params={"key": key})

    async def delete_object(self, bucket: str, key: str) -> None:
        await self._http.call("DELETE", _bucket_path(routes.OBJECT, bucket), params={"key": key})

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        recursive: bool = False,
        cursor: str = "",
        limit: int = 1000,
    ) -> Listing:
        params = {
            "prefix": prefix,
            "recursive": "true" if recursive else "false",
            "cursor": cursor,
            "limit": str(limit),
        }
        path = _bucket_path(routes.OBJECTS, bucket)
        return await self._http.parsed("GET", path, Listing, params=params)

    async def download_segment(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str | None = None,
        *,
        exclude: Collection[int] = (),
    ) -> SegmentOrders:
        """GET order limits for k plus spare pieces of a segment; with `exclude`, for pieces
        other than those only (already fetched or found bad), possibly none."""
        params: list[tuple[str, str]] = [("key", key)]
        if stream_id is not None:
            params.append(("stream_id", stream_id))
        params.extend(("exclude", str(number)) for number in sorted(set(exclude)))
        path = routes.OBJECT_SEGMENT.format(bucket=segment(bucket), index=index)
        return await self._http.parsed("GET", path, SegmentOrders, params=params)

    async def report_segment(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str,
        outcomes: Sequence[PieceOutcome],
    ) -> ReportAccepted:
        """How a download's piece fetches of one segment went (bad pieces get audited)."""
        body = _body(objects.SegmentReport, key=key, stream_id=stream_id, outcomes=list(outcomes))
        path = routes.SEGMENT_REPORT.format(bucket=segment(bucket), index=index)
        return await self._http.parsed("POST", path, ReportAccepted, body=body)

    async def move_object(
        self,
        bucket: str,
        key: str,
        new_bucket: str,
        new_key: str,
        encrypted_metadata: bytes | None,
        segments: Sequence[SegmentRekey],
        *,
        copy: bool = False,
        stream_id: str | None = None,
    ) -> Object:
        """Move (or copy) an object without moving its data; the object at its new key.

        `segments` re-wraps every segment's metadata, each exactly once. `stream_id` pins the
        version those were made from: if another version is at the key by then, the bridge
        answers `Conflict` with code ``object-changed`` instead of storing mismatched keys.
        """
        body = _body(
            objects.Relocation,
            key=key,
            stream_id=stream_id,
            new_bucket=new_bucket,
            new_key=new_key,
            encrypted_metadata=encrypted_metadata,
            segments=list(segments),
        )
        path = _bucket_path(routes.OBJECT_COPY if copy else routes.OBJECT_MOVE, bucket)
        return await self._http.parsed("POST", path, Object, body=body)


def _body(kind: type[B], **fields: Any) -> B:
    """A request body; values the API would refuse are `InvalidArgument` before any I/O."""
    try:
        return kind(**fields)
    except ValidationError as exc:
        problems = describe_invalid(exc.errors())
        raise InvalidArgument(f"refused before sending: {problems}") from exc


def _bucket_path(route: str, bucket: str) -> str:
    return route.format(bucket=segment(bucket))


def _stream(stream_id: str) -> str:
    if len(stream_id) != 32 or stream_id.strip("0123456789abcdef"):
        raise InvalidArgument(f"{stream_id!r} is not a stream id (32 lowercase hex digits)")
    return stream_id
