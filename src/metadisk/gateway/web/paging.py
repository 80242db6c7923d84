"""A folder for the web page, a page at a time, in the bridge's own order.

Names reach the bridge encrypted, so its order is the order of ciphertexts and no sorted page of
a big folder can be had without reading the whole folder first (what the S3 listing does,
`gateway.listing_cache`). The page does not need S3's order, so it reads one bridge page per web
page (`PAGE` names: one round trip and `PAGE` names to decrypt, whatever the folder's size) and
hands the bridge's cursor on for the next one. Within a page, folders come first, then files,
each sorted by name; across pages the order is the bridge's, which looks arbitrary but is
stable. A filter keeps the names containing its text (case-insensitive); it reads further bridge
pages until a page is full or `SCAN` names were read, then offers to go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from metadisk.client import AsyncProject, ObjectInfo

PAGE = 200
SCAN = 5000


@dataclass(frozen=True, slots=True)
class Page:
    """Folders and files of one web page, and the cursor of the next (None: the last)."""

    folders: tuple[ObjectInfo, ...]
    files: tuple[ObjectInfo, ...]
    cursor: str | None
    scanned: int


def name_of(item: ObjectInfo, prefix: str) -> str:
    """The name shown in the folder: the key without the folder, without a trailing '/'."""
    return item.key[len(prefix) :].rstrip("/")


async def folder_page(
    project: AsyncProject,
    bucket: str,
    prefix: str,
    *,
    cursor: str | None = None,
    text: str = "",
    page: int = PAGE,
) -> Page:
    """One web page of the folder `prefix` ("" or ending in "/") of `bucket`."""
    wanted = text.casefold()
    found: list[ObjectInfo] = []
    scanned = 0
    while True:
        part = await project.list_page(bucket, prefix, cursor=cursor, limit=page)
        scanned += len(part.items)
        cursor = part.cursor
        for item in part.items:
            if item.key == prefix:  # the folder's own marker (an empty folder's object)
                continue
            if wanted in name_of(item, prefix).casefold():
                found.append(item)
        if cursor is None or not wanted or len(found) >= page or scanned >= SCAN:
            break
    folders = sorted((i for i in found if i.is_prefix), key=lambda i: i.key)
    files = sorted((i for i in found if not i.is_prefix), key=lambda i: i.key)
    return Page(tuple(folders), tuple(files), cursor, scanned)
