"""`Project`: the blocking face of `AsyncProject`, for scripts and the CLI.

It is not a second implementation: every call runs the async project on a private event loop in
a background thread (as starlette's TestClient does with an anyio portal) and waits for the
result, so the sync API keeps all of the async one's parallelism. Iterators are driven one step
at a time through the same loop. Progress callbacks run on that loop's thread.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, BinaryIO, TypeVar

from metadisk.client.project import AsyncProject, ClientConfig
from metadisk.client.records import (
    Bucket,
    ObjectInfo,
    ObjectPage,
    PartWritten,
    PendingUploadInfo,
    Permissions,
)
from metadisk.client.segmenter import UploadSource
from metadisk.client.upload import ProgressCallback
from metadisk.core.grant import AccessGrant, SharePrefix
from metadisk.wire.api.accounts import ProjectUsage

T = TypeVar("T")


class _Portal:
    """An event loop on its own thread; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="metadisk-client", daemon=True
        )
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a sync Project cannot be used from its own callbacks")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or any error here) while waiting: stop the work on the loop too.
            future.cancel()
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.call(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                self.call(aclose())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class Project:
    """The blocking client API: `AsyncProject`'s methods, run on a private event loop thread.

    Example::

        with Project.open(grant) as project:
            project.create_bucket("photos")
            project.upload("photos", "2024/cat.jpg", "cat.jpg", content_type="image/jpeg")
            for item in project.list_objects("photos", "2024/"):
                print(item.key, item.size)
            project.download("photos", "2024/cat.jpg", "copy.jpg")
    """

    def __init__(self, project: AsyncProject, portal: _Portal) -> None:
        self._project = project
        self._portal = portal
        self._closed = False

    @classmethod
    def open(
        cls, grant: str | AccessGrant, *, config: ClientConfig | None = None, **kwargs: Any
    ) -> Project:
        """Open a project from an access grant string (``mdg1...``)."""
        portal = _Portal()
        try:
            project = portal.call(AsyncProject.open(grant, config=config, **kwargs))
        except BaseException:
            portal.close()
            raise
        return cls(project, portal)

    def close(self) -> None:
        """Close connections and workers, and stop the event loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._portal.call(self._project.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def grant(self) -> AccessGrant:
        return self._project.grant

    def create_bucket(self, name: str, *, profile: str | None = None) -> Bucket:
        return self._portal.call(self._project.create_bucket(name, profile=profile))

    def get_bucket(self, name: str) -> Bucket:
        return self._portal.call(self._project.get_bucket(name))

    def list_buckets(self) -> list[Bucket]:
        return self._portal.call(self._project.list_buckets())

    def delete_bucket(self, name: str, *, force: bool = False) -> None:
        self._portal.call(self._project.delete_bucket(name, force=force))

    def upload(
        self,
        bucket: str,
        path: str,
        source: UploadSource | Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        resume_dir: str | os.PathLike[str] | None = None,
        size: int | None = None,
    ) -> ObjectInfo:
        """See `AsyncProject.upload`; a (sync) iterable of bytes is accepted too."""
        if _is_plain_iterable(source):
            source = _iterate_in_thread(iter(source))  # type: ignore[arg-type]
        return self._portal.call(
            self._project.upload(
                bucket,
                path,
                source,  # type: ignore[arg-type]
                content_type=content_type,
                metadata=metadata,
                progress=progress,
                resume_dir=resume_dir,
                size=size,
            )
        )

    def download(
        self,
        bucket: str,
        path: str,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        return self._portal.call(
            self._project.download(
                bucket, path, destination, offset=offset, length=length, progress=progress
            )
        )

    def stream(
        self,
        bucket: str,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Iterator[bytes]:
        """The object's plaintext chunk by chunk; close the iterator if you stop early."""
        return self._portal.iterate(
            self._project.stream(bucket, path, offset=offset, length=length, progress=progress)
        )

    def stat(self, bucket: str, path: str) -> ObjectInfo:
        return self._portal.call(self._project.stat(bucket, path))

    def list_page(
        self,
        bucket: str,
        prefix: str = "",
        *,
        recursive: bool = False,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        return self._portal.call(
            self._project.list_page(bucket, prefix, recursive=recursive, cursor=cursor, limit=limit)
        )

    def list_objects(
        self, bucket: str, prefix: str = "", *, recursive: bool = False
    ) -> Iterator[ObjectInfo]:
        return self._portal.iterate(self._project.list_objects(bucket, prefix, recursive=recursive))

    def delete(self, bucket: str, path: str) -> None:
        self._portal.call(self._project.delete(bucket, path))

    def usage(self) -> ProjectUsage:
        return self._portal.call(self._project.usage())

    def list_uploads(self, bucket: str, prefix: str = "") -> list[PendingUploadInfo]:
        return self._portal.call(self._project.list_uploads(bucket, prefix))

    def abort_upload(self, stream_id: str) -> None:
        self._portal.call(self._project.abort_upload(stream_id))

    def move(self, bucket: str, path: str, new_bucket: str, new_path: str) -> ObjectInfo:
        return self._portal.call(self._project.move(bucket, path, new_bucket, new_path))

    def copy(
        self,
        bucket: str,
        path: str,
        new_bucket: str,
        new_path: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        return self._portal.call(
            self._project.copy(
                bucket, path, new_bucket, new_path, content_type=content_type, metadata=metadata
            )
        )

    def begin_upload(self, bucket: str, path: str) -> str:
        return self._portal.call(self._project.begin_upload(bucket, path))

    def upload_part(
        self,
        bucket: str,
        path: str,
        upload_id: str,
        source: UploadSource | Iterable[bytes],
        *,
        first_index: int,
        size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PartWritten:
        """See `AsyncProject.upload_part`; a (sync) iterable of bytes is accepted too."""
        if _is_plain_iterable(source):
            source = _iterate_in_thread(iter(source))  # type: ignore[arg-type]
        return self._portal.call(
            self._project.upload_part(
                bucket,
                path,
                upload_id,
                source,  # type: ignore[arg-type]
                first_index=first_index,
                size=size,
                progress=progress,
            )
        )

    def commit_upload(
        self,
        bucket: str,
        path: str,
        upload_id: str,
        segments: Sequence[int],
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        checksum: bytes | None = None,
    ) -> ObjectInfo:
        return self._portal.call(
            self._project.commit_upload(
                bucket,
                path,
                upload_id,
                segments,
                content_type=content_type,
                metadata=metadata,
                checksum=checksum,
            )
        )

    def share(
        self,
        prefixes: Sequence[SharePrefix | tuple[str, str]],
        permissions: Permissions | None = None,
        *,
        not_before: datetime.datetime | int | None = None,
        not_after: datetime.datetime | int | None = None,
    ) -> str:
        return self._project.share(
            prefixes, permissions, not_before=not_before, not_after=not_after
        )


def _is_plain_iterable(source: object) -> bool:
    if isinstance(source, str | bytes | bytearray | memoryview | os.PathLike):
        return False
    if hasattr(source, "read") or hasattr(source, "__aiter__"):
        return False
    return hasattr(source, "__iter__")


async def _iterate_in_thread(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    # The caller's iterator may block (a generator reading a socket): never on the loop.
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, iterator, done)
        if chunk is done:
            return
        yield chunk  # type: ignore[misc]
