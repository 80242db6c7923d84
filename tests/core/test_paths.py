"""Path encryption, path keys, and encryption access: round trips, vectors and every refusal."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.errors import AccessError, DecodeError, DecryptionError
from metadisk.core.paths import (
    KEY_SIZE,
    TAG_ENCRYPTION_ACCESS,
    EncryptionAccess,
    PathKey,
    bucket_root,
    decrypt_path,
    descend,
    encrypt_path,
    object_key,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "crypto.json").read_text("utf-8")
)
ROOT = bytes(range(32))
FULL = EncryptionAccess(ROOT, ())
BUCKET = "bucket"
ENCRYPTED = re.compile(r"[A-Za-z0-9_-]+")

component = st.text(st.characters(exclude_characters="/", exclude_categories=["Cs"]))
components = st.lists(component, min_size=1, max_size=6)
# A prefix a PathKey can name: components whose last one is not empty.
prefixes = st.lists(component, min_size=1, max_size=4).filter(lambda parts: parts[-1] != "")
buckets = st.text(
    st.characters(exclude_characters="/", exclude_categories=["Cs"]), min_size=1, max_size=20
)


def root() -> PathKey:
    return bucket_root(ROOT, BUCKET)


# --- encrypt / decrypt ----------------------------------------------------------------------


@given(components)
def test_path_round_trip(parts: list[str]) -> None:
    path = "/".join(parts)
    encrypted = encrypt_path(root(), path)
    pieces = encrypted.split("/")
    assert len(pieces) == len(parts)
    assert all(ENCRYPTED.fullmatch(piece) for piece in pieces)
    assert encrypt_path(root(), path) == encrypted  # deterministic
    assert decrypt_path(root(), encrypted) == path


@given(prefixes, components)
def test_hierarchy_is_consistent(prefix_parts: list[str], rest_parts: list[str]) -> None:
    prefix, rest = "/".join(prefix_parts), "/".join(rest_parts)
    full = f"{prefix}/{rest}"
    base = descend(root(), prefix)
    assert base.path == prefix
    assert base.encrypted_path == encrypt_path(root(), prefix)
    # The bridge can list a prefix by the encrypted prefix.
    assert encrypt_path(root(), full) == f"{base.encrypted_path}/{encrypt_path(base, rest)}"
    assert decrypt_path(base, encrypt_path(base, rest)) == rest
    assert object_key(base, rest) == object_key(root(), full)
    assert descend(root(), full + "/x").key == descend(base, rest + "/x").key


def test_empty_components_keep_their_place() -> None:
    seen = set()
    for path in ["", "/", "a", "a/", "/a", "a//b", "a/b", "//", "a/b/"]:
        encrypted = encrypt_path(root(), path)
        assert encrypted.count("/") == path.count("/")
        assert all(encrypted.split("/")), "an encrypted component is never empty"
        assert decrypt_path(root(), encrypted) == path
        seen.add(encrypted)
        seen.add(object_key(root(), path).hex())
    assert len(seen) == 18


def test_names_and_keys_differ_by_bucket_root_key_and_parent() -> None:
    other_bucket = bucket_root(ROOT, "other")
    other_root = bucket_root(bytes(32), BUCKET)
    assert len({root().key, other_bucket.key, other_root.key}) == 3
    for base in (other_bucket, other_root):
        assert encrypt_path(base, "a/b") != encrypt_path(root(), "a/b")
        assert object_key(base, "a/b") != object_key(root(), "a/b")
    # The same name under different parents encrypts differently.
    first, second = encrypt_path(root(), "x/x").split("/")
    assert first != second


def test_object_key_differs_from_path_key_of_the_same_path() -> None:
    assert object_key(root(), "a/b") != descend(root(), "a/b").key
    assert object_key(root(), "a/b") != object_key(root(), "a/b/")
    assert len(object_key(root(), "a")) == KEY_SIZE


def test_vectors() -> None:
    v = VECTORS["paths"]
    base = bucket_root(bytes.fromhex(v["root_key"]), v["bucket"])
    assert base.key.hex() == v["bucket_key"]
    for case in v["cases"]:
        assert encrypt_path(base, case["path"]) == case["encrypted"]
        assert decrypt_path(base, case["encrypted"]) == case["path"]
        assert object_key(base, case["path"]).hex() == case["object_key"]
    full = EncryptionAccess(bytes.fromhex(v["root_key"]), ())
    assert full.encode().hex() == v["full_access"]
    restricted = full.restrict(v["bucket"], v["restricted_prefix"])
    assert restricted.encode().hex() == v["restricted_access"]
    assert EncryptionAccess.decode(bytes.fromhex(v["restricted_access"])) == restricted


# --- refusals -------------------------------------------------------------------------------


@given(components)
def test_wrong_key_does_not_decrypt(parts: list[str]) -> None:
    encrypted = encrypt_path(root(), "/".join(parts))
    for base in (bucket_root(ROOT, "other"), bucket_root(bytes(32), BUCKET)):
        with pytest.raises(DecryptionError):
            decrypt_path(base, encrypted)


@given(component, st.data())
def test_tampered_component_does_not_decrypt(name: str, data: st.DataObject) -> None:
    sealed = bytearray(b64decode(encrypt_path(root(), name)))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        decrypt_path(root(), b64encode(bytes(sealed)))


def test_malformed_and_moved_components_do_not_decrypt() -> None:
    a, b = encrypt_path(root(), "a/b").split("/")
    x = encrypt_path(root(), "x")
    for bad in [
        f"{b}/{a}",  # reordered
        f"{a}/{x}",  # a top-level name moved below a
        f"{a}/{a}",
        f"{a}/",  # an empty encrypted component
        "",
        "not base64!",
        "AAAA",  # too short to hold the SIV
        a + "A",  # not canonical base64url
        f"{a}/{b}/{b}",
    ]:
        with pytest.raises(DecryptionError):
            decrypt_path(root(), bad)


def test_descend_refuses_an_empty_last_component() -> None:
    for relative in ["", "a/", "a//"]:
        with pytest.raises(ValueError):
            descend(root(), relative)
    assert descend(root(), "a//b").path == "a//b"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        bucket_root(bytes(31), BUCKET)
    for bucket in ["", "a/b", "\ud800"]:
        with pytest.raises(ValueError):
            bucket_root(ROOT, bucket)
    with pytest.raises(ValueError):
        encrypt_path(root(), "a/\ud800")


@pytest.mark.parametrize(
    "change",
    [
        {"path": "a/"},
        {"path": "a", "encrypted_path": ""},
        {"path": "", "encrypted_path": "AAAA"},
        {"path": "a/b"},  # one encrypted component for two names
        {"encrypted_path": "a+b"},
        {"encrypted_path": "abc/"},
        {"key": bytes(31)},
        {"bucket": ""},
        {"bucket": "a/b"},
    ],
)
def test_path_key_validates_itself(change: dict[str, Any]) -> None:
    good = descend(root(), "a")
    with pytest.raises(DecodeError):
        replace(good, **change)


def test_path_key_repr_hides_the_key() -> None:
    pk = descend(root(), "a")
    assert pk.key.hex() not in repr(pk) and repr(pk.key) not in repr(pk)
    assert ROOT.hex() not in repr(FULL) and repr(ROOT) not in repr(FULL)


# --- access: resolve, restrict, encode ------------------------------------------------------


@given(prefixes, components)
def test_restricted_access_derives_what_full_access_does(
    prefix_parts: list[str], rest_parts: list[str]
) -> None:
    prefix = "/".join(prefix_parts)
    full_path = f"{prefix}/{'/'.join(rest_parts)}"
    shared = FULL.restrict(BUCKET, prefix)
    base, rest = shared.resolve(BUCKET, full_path)
    full_base, full_rest = FULL.resolve(BUCKET, full_path)
    assert f"{base.path}/{rest}" == full_path and full_base.path == "" and full_rest == full_path
    assert object_key(base, rest) == object_key(full_base, full_rest)
    assert f"{base.encrypted_path}/{encrypt_path(base, rest)}" == encrypt_path(full_base, full_rest)


def test_restricted_access_cannot_reach_above_or_beside() -> None:
    shared = FULL.restrict(BUCKET, "a/b")
    for path in ["a", "a/b", "a/c", "a/c/x", "a/bb/x", "b/x", "", "x"]:
        with pytest.raises(AccessError):
            shared.resolve(BUCKET, path)
    with pytest.raises(AccessError):
        shared.resolve("other", "a/b/x")
    for prefix in ["", "a", "a/c", "a/bb", "b"]:
        with pytest.raises(AccessError):
            shared.restrict(BUCKET, prefix)
    with pytest.raises(AccessError):
        shared.restrict("other", "a/b")
    assert shared.resolve(BUCKET, "a/b/")[1] == ""  # the object "a/b/" is below the prefix


def test_restricted_access_holds_no_key_above_or_beside() -> None:
    encoded = FULL.restrict(BUCKET, "a/b").encode()
    above_or_beside = [
        ROOT,
        root().key,
        descend(root(), "a").key,
        descend(root(), "a/c").key,
        object_key(root(), "a/b"),
        object_key(root(), "a/c"),
    ]
    for secret in above_or_beside:
        assert secret not in encoded
    # Names beside the prefix stay opaque: a sibling's name does not decrypt under a/b's key.
    sibling = encrypt_path(descend(root(), "a"), "c")
    with pytest.raises(DecryptionError):
        decrypt_path(descend(root(), "a/b"), sibling)


def test_restrict_chains_and_trailing_slash() -> None:
    once = FULL.restrict(BUCKET, "a/b/c")
    twice = FULL.restrict(BUCKET, "a").restrict(BUCKET, "a/b/c")
    assert once == twice
    assert FULL.restrict(BUCKET, "a/b/") == FULL.restrict(BUCKET, "a/b")
    assert once.restrict(BUCKET, "a/b/c") == once
    with pytest.raises(ValueError):
        FULL.restrict(BUCKET, "/")
    with pytest.raises(ValueError):
        FULL.restrict(BUCKET, "a//")


def test_whole_bucket_access() -> None:
    bucket_only = FULL.restrict(BUCKET, "")
    assert bucket_only.path_keys == (root(),)
    assert bucket_only.resolve(BUCKET, "x/y") == (root(), "x/y")
    assert bucket_only.restrict(BUCKET, "") == bucket_only
    with pytest.raises(AccessError):
        bucket_only.resolve("other", "x")


def test_resolve_prefers_the_longest_prefix() -> None:
    a, ab = descend(root(), "a"), descend(root(), "a/b")
    access = EncryptionAccess(None, (a, ab))
    assert access.resolve(BUCKET, "a/b/c") == (ab, "c")
    assert access.resolve(BUCKET, "a/bc") == (a, "bc")
    assert access.resolve(BUCKET, "a/b") == (a, "b")


def access_strategy() -> st.SearchStrategy[EncryptionAccess]:
    path_key = st.builds(
        lambda root_key, bucket, parts: (
            descend(bucket_root(root_key, bucket), "/".join(parts))
            if parts
            else bucket_root(root_key, bucket)
        ),
        st.binary(min_size=32, max_size=32),
        buckets,
        st.one_of(st.just([]), prefixes),
    )
    return st.builds(
        EncryptionAccess,
        st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
        st.lists(path_key, max_size=4, unique_by=lambda pk: (pk.bucket, pk.path)).map(tuple),
    )


@given(access_strategy())
def test_access_encoding_round_trip(access: EncryptionAccess) -> None:
    encoded = access.encode()
    assert encoded[:3] == bytes([TAG_ENCRYPTION_ACCESS, 1, 1])  # tag, version, cipher suite
    assert EncryptionAccess.decode(encoded) == access


@given(st.binary(max_size=200))
def test_access_decode_arbitrary_bytes(data: bytes) -> None:
    try:
        access = EncryptionAccess.decode(data)
    except DecodeError:
        return
    assert access.encode() == data


@given(access_strategy(), st.data())
def test_access_decode_rejects_truncation_and_trailing_bytes(
    access: EncryptionAccess, data: st.DataObject
) -> None:
    encoded = access.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        EncryptionAccess.decode(encoded[:cut])
    with pytest.raises(DecodeError):
        EncryptionAccess.decode(encoded + b"\x00")


def test_access_decode_rejects_malformed_fields() -> None:
    pk = descend(root(), "a")
    good = EncryptionAccess(None, (pk,)).encode()
    entry = good[8:]  # after tag, version, suite, root flag and the u32 count
    twice = good[:4] + (2).to_bytes(4, "big") + entry + entry
    bad_path = entry.replace(pk.encrypted_path.encode(), b"!" * len(pk.encrypted_path))
    bad = [
        bytes([TAG_ENCRYPTION_ACCESS + 1]) + good[1:],  # wrong message type
        good[:1] + b"\x02" + good[2:],  # unknown version
        good[:2] + b"\x02" + good[3:],  # unknown cipher suite
        good[:3] + b"\x02" + good[4:],  # root flag neither 0 nor 1
        good[:4] + b"\xff\xff\xff\xff" + entry,  # count beyond the entries
        twice,  # two keys for one prefix
        good[:8] + bad_path,  # an encrypted path that is not base64url
    ]
    for data in bad:
        with pytest.raises(DecodeError):
            EncryptionAccess.decode(data)
    with pytest.raises(DecodeError):
        EncryptionAccess(None, (pk, pk))
    with pytest.raises(DecodeError):
        EncryptionAccess(bytes(16), ())
