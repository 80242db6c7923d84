"""Parsing md:// paths: the shapes accepted, and one clear error for each mistake."""

from __future__ import annotations

import pytest

from metadisk.cli.errors import UsageError
from metadisk.cli.remote import RemotePath, parse_bucket, parse_object, parse_remote


@pytest.mark.parametrize(
    ("text", "bucket", "key", "folder"),
    [
        ("md://photos", "photos", "", ""),
        ("md://photos/", "photos", "", ""),
        ("md://photos/cat.jpg", "photos", "cat.jpg", "cat.jpg/"),
        ("md://photos/2024/", "photos", "2024/", "2024/"),
        ("md://photos/2024/cat.jpg", "photos", "2024/cat.jpg", "2024/cat.jpg/"),
        ("md://photos/é t/ü", "photos", "é t/ü", "é t/ü/"),
    ],
)
def test_accepted(text: str, bucket: str, key: str, folder: str) -> None:
    path = parse_remote(text)
    assert (path.bucket, path.key, path.folder) == (bucket, key, folder)
    assert path.is_folder == (key == "" or key.endswith("/"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("photos/cat.jpg", "md://bucket/key"),
        ("s3://photos/cat.jpg", "md://bucket/key"),
        ("md:/photos", "md://bucket/key"),
        ("md://", "no bucket"),
        ("md:///cat.jpg", "no bucket"),
        ("md://my photos/x", "no spaces"),
        ("md://photos//cat.jpg", "empty path component"),
        ("md://photos/a//", "empty path component"),
        ("md://photos/../secret", "'..'"),
        ("md://photos/./x", "'.'"),
    ],
)
def test_refused(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace(".", r"\.")) as caught:
        parse_remote(text)
    assert caught.value.status == 2
    assert "\n" not in str(caught.value)


def test_objects_buckets_and_joins() -> None:
    assert parse_object("md://b/x/y") == RemotePath("b", "x/y")
    with pytest.raises(UsageError, match="not an object"):
        parse_object("md://b/x/")
    with pytest.raises(UsageError, match="not an object"):
        parse_object("md://b")
    assert parse_bucket("md://b") == "b"
    assert parse_bucket("md://b/") == "b"
    with pytest.raises(UsageError, match="not a bucket"):
        parse_bucket("md://b/x")
    assert RemotePath("b").join("a/c.txt") == RemotePath("b", "a/c.txt")
    assert RemotePath("b", "dir").join("c.txt") == RemotePath("b", "dir/c.txt")
    assert RemotePath("b", "dir/").join("c.txt") == RemotePath("b", "dir/c.txt")
    assert str(RemotePath("b", "dir/c.txt")) == "md://b/dir/c.txt"
    assert str(RemotePath("b")) == "md://b"
    assert RemotePath("b", "dir/c.txt").name == "c.txt"
