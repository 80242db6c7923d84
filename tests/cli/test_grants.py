"""Restricting and describing grants offline: durations, operations, folders, no secrets shown."""

from __future__ import annotations

import base64
import os

import pytest

from metadisk.cli.errors import UsageError
from metadisk.cli.grants import Allowed, describe, parse_duration, restrict
from metadisk.cli.remote import RemotePath
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import AccessDenied, APIKey, Op, Request
from metadisk.core.paths import EncryptionAccess


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10", "1x", "h", "-1h", "0s", "1h 30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def owner() -> tuple[AccessGrant, bytes]:
    key, secret = APIKey.generate()
    grant = AccessGrant("http://127.0.0.1:7777", key, EncryptionAccess(root_key=os.urandom(32)))
    return grant, secret


def test_restrict_to_folders_narrows_keys_and_caveats() -> None:
    grant, secret = owner()
    shared = restrict(
        grant, [RemotePath("photos", "2024/")], Allowed.from_flags(readonly=True, write=False)
    )
    assert shared.encryption.root_key is None
    assert [(k.bucket, k.path) for k in shared.encryption.path_keys] == [("photos", "2024")]
    prefix = shared.encryption.path_keys[0].encrypted_path + "/"
    shared.api_key.check(secret, Request(Op.READ, "photos", prefix + "x", 100))
    for op, bucket, path, reason in [
        (Op.WRITE, "photos", prefix + "x", "op-denied"),
        (Op.READ, "photos", "other", "path-denied"),
        (Op.READ, "music", prefix + "x", "path-denied"),
    ]:
        with pytest.raises(AccessDenied) as denied:
            shared.api_key.check(secret, Request(op, bucket, path, 100))
        assert denied.value.reason == reason


def test_restrict_without_folders_keeps_keys_and_limits_time() -> None:
    grant, secret = owner()
    limited = restrict(grant, [], Allowed(), not_before=100, not_after=200)
    assert limited.encryption == grant.encryption
    limited.api_key.check(secret, Request(Op.READ, "b", "x", 150))
    for now, reason in ((99, "not-yet-valid"), (201, "expired")):
        with pytest.raises(AccessDenied) as denied:
            limited.api_key.check(secret, Request(Op.READ, "b", "x", now))
        assert denied.value.reason == reason
    with pytest.raises(AccessDenied) as denied:
        limited.api_key.check(secret, Request(Op.WRITE, "b", "x", 150))
    assert denied.value.reason == "op-denied"
    with pytest.raises(UsageError, match="expire before"):
        restrict(grant, [], Allowed(), not_before=200, not_after=100)
    with pytest.raises(UsageError, match="exclude"):
        Allowed.from_flags(readonly=True, write=True)


def test_description_shows_reach_but_no_secret() -> None:
    grant, _ = owner()
    shared = restrict(
        grant,
        [RemotePath("photos", "2024")],
        Allowed.from_flags(readonly=False, write=True),
        not_after=2_000_000_000,
    )
    text = "\n".join(f"{label} {value}" for label, value in describe(shared))
    assert "only md://photos/2024/" in text
    assert "key for md://photos/2024/" in text
    assert "2033-05-18 03:33:20 UTC" in text
    assert "read, write, list, delete" in text
    path_key = shared.encryption.path_keys[0].key
    root_key = grant.encryption.root_key
    assert root_key is not None
    for secret in (path_key, root_key, shared.api_key.tail):
        assert secret.hex() not in text
        assert base64.urlsafe_b64encode(secret).decode().rstrip("=") not in text
    full = "\n".join(value for _, value in describe(grant))
    assert "root key (every bucket and path)" in full
