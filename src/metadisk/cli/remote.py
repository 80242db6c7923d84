"""Remote paths as users type them: ``md://bucket``, ``md://bucket/key``, ``md://bucket/folder/``.

Only the shape is checked when parsing (scheme, a bucket, no empty path components): a name that
breaks the bucket rules simply names no bucket. `check_bucket_name` holds a new name (``mb``) to
the wire contract's rule, the one the bridge enforces, so a bad name is told in our own words
rather than as the bridge's request-validation text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metadisk.cli.errors import UsageError
from metadisk.wire.fields import BUCKET_PATTERN, MAX_BUCKET_NAME, MIN_BUCKET_NAME

_BUCKET = re.compile(BUCKET_PATTERN)
BUCKET_RULES = (
    f"{MIN_BUCKET_NAME} to {MAX_BUCKET_NAME} characters of lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit, with no '..'"
)

SCHEME = "md://"


@dataclass(frozen=True, slots=True)
class RemotePath:
    """A bucket and a key within it: "" is the bucket itself, a trailing "/" a folder."""

    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    @property
    def is_folder(self) -> bool:
        """Whether this names a folder (the bucket, or a key ending in "/")."""
        return self.key == "" or self.key.endswith("/")

    @property
    def folder(self) -> str:
        """The listing prefix of this path taken as a folder: "" or ``"a/b/"``."""
        if self.key == "" or self.key.endswith("/"):
            return self.key
        return self.key + "/"

    def join(self, relative: str) -> RemotePath:
        """The object `relative` (a "/"-separated path) inside this path taken as a folder."""
        return RemotePath(self.bucket, self.folder + relative)

    @property
    def name(self) -> str:
        """The last component of the key ("" for a bucket or folder)."""
        return self.key.rsplit("/", 1)[-1]


def is_remote(text: str) -> bool:
    return text.startswith(SCHEME)


def parse_remote(text: str) -> RemotePath:
    """Parse ``md://bucket[/key]``; `UsageError` (one line) for anything else."""
    if not is_remote(text):
        raise UsageError(f"not a remote path: {text!r} (remote paths look like md://bucket/key)")
    rest = text[len(SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UsageError(f"no bucket in {text!r} (remote paths look like md://bucket/key)")
    if any(ch.isspace() for ch in bucket):
        raise UsageError(f"a bucket name has no spaces: {text!r}")
    components = key.split("/")
    if key.endswith("/"):
        components = components[:-1]
    if key and any(part == "" for part in components):
        raise UsageError(f"empty path component in {text!r} (no '//' or leading '/')")
    if any(part in (".", "..") for part in components):
        raise UsageError(f"'.' and '..' are not path components in {text!r}")
    return RemotePath(bucket, key)


def check_bucket_name(name: str) -> None:
    """`UsageError` naming the rules unless `name` is a valid bucket name."""
    if MIN_BUCKET_NAME <= len(name) <= MAX_BUCKET_NAME and _BUCKET.fullmatch(name):
        return
    shown = name if len(name) <= 20 else f"{name[:20]}... ({len(name)} characters)"
    raise UsageError(f"{shown!r} is not a valid bucket name: a bucket name is {BUCKET_RULES}")


def parse_object(text: str) -> RemotePath:
    """A path that must name one object (``md://bucket/key``, no trailing "/")."""
    path = parse_remote(text)
    if path.is_folder:
        raise UsageError(f"{text!r} names a bucket or folder, not an object")
    return path


def parse_bucket(text: str) -> str:
    """A path that must name a bucket only (``md://bucket``)."""
    path = parse_remote(text)
    if path.key:
        raise UsageError(f"{text!r} is not a bucket (buckets look like md://name)")
    return path.bucket
