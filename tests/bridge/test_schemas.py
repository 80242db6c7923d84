"""The hot endpoints' hand-built JSON matches their published pydantic models exactly."""

from __future__ import annotations

from metadisk.bridge.metainfo import schemas as s
from metadisk.bridge.metainfo.db import ListedObject, ObjectInfo, SegmentInfo
from metadisk.bridge.metainfo.service import Listing, ListItem
from metadisk.core.erasure import LOCAL


def test_object_json_is_the_model() -> None:
    segment = SegmentInfo(0, 4000, 3900, 1000, LOCAL, b"wrapped key")
    for info in (
        ObjectInfo(b"\x01" * 16, "b", "a/b", 7, 4000, 3900, 1, b"meta", None, [segment]),
        ObjectInfo(b"\x02" * 16, "b", "c", 8, 3, 0, 0, None, b"abc", []),
    ):
        assert s.object_json(info) == s.ObjectOut.of(info).model_dump(mode="json")
        assert s.ObjectOut.model_validate(s.object_json(info)) == s.ObjectOut.of(info)


def test_listing_json_is_the_model() -> None:
    listing = Listing(
        [
            ListItem("a/", True, None),
            ListItem("b", False, ListedObject("b", b"\x03" * 16, 9, 10, 5, b"m")),
            ListItem("c", False, ListedObject("c", b"\x04" * 16, 9, 10, 5, None)),
        ],
        "c",
    )
    dumped = s.ListingOut.of(listing).model_dump(mode="json")
    built = s.listing_json(listing)
    # Prefix items leave the object fields out; the model fills them with nulls.
    for item in built["items"]:
        for field in s.ListItemOut.model_fields:
            item.setdefault(field, None)
    assert built == dumped
