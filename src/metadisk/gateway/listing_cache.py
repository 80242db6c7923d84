"""The names under a prefix, decrypted and in S3's order, for ListObjects.

Object names reach the bridge encrypted, one component at a time, so the bridge's order is the
order of ciphertexts. S3 clients need keys in UTF-8 byte order (``aws s3 sync`` walks a listing
beside a sorted local tree), so a listing reads every name in the folder it covers, decrypts
and sorts them, then cuts the page. A first page always reads afresh (a listing shows every
write made before it); the pages that continue it, for `TTL` seconds, cut from the same
snapshot, so paging through a big folder reads it once, not once per page.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from metadisk.client import AsyncProject, ObjectInfo

TTL = 30.0
MAX_SNAPSHOTS = 16
PAGE = 1000


def utf8_order(item: ObjectInfo) -> bytes:
    return item.key.encode("utf-8", "surrogatepass")


class ListingCache:
    """Snapshots of folder listings, keyed by credential, bucket, folder and depth."""

    def __init__(self) -> None:
        self._snapshots: OrderedDict[tuple[str, str, str, bool], tuple[float, list[ObjectInfo]]]
        self._snapshots = OrderedDict()

    async def names(
        self,
        project: AsyncProject,
        access_key: str,
        bucket: str,
        prefix: str,
        *,
        slash_delimited: bool,
        continuing: bool,
    ) -> Sequence[ObjectInfo]:
        """Every object under `prefix` (and, if `slash_delimited`, the folders one level
        down as prefix entries), sorted by UTF-8 key."""
        folder = prefix[: prefix.rfind("/") + 1]
        key = (access_key, bucket, folder, slash_delimited)
        now = time.monotonic()
        cached = self._snapshots.get(key)
        if continuing and cached is not None and now - cached[0] < TTL:
            items = cached[1]
        else:
            items = []
            cursor: str | None = None
            while True:
                page = await project.list_page(
                    bucket, folder, recursive=not slash_delimited, cursor=cursor, limit=PAGE
                )
                items.extend(page.items)
                if page.cursor is None:
                    break
                cursor = page.cursor
            items.sort(key=utf8_order)
            self._snapshots[key] = (now, items)
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > MAX_SNAPSHOTS:
                self._snapshots.popitem(last=False)
        return [item for item in items if item.key.startswith(prefix)]
