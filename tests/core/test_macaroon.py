"""Macaroon API keys: round trips, narrowing, fixed vectors, and one test per attack."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.encoding import Writer, b64decode, b64encode
from metadisk.core.errors import AccessError, DecodeError
from metadisk.core.macaroon import (
    KEY_PREFIX,
    MAX_KEY_BYTES,
    TAG_API_KEY,
    TAG_CAVEAT,
    AccessDenied,
    AllowedPath,
    APIKey,
    Caveat,
    Op,
    Request,
)

VECTORS = Path(__file__).parent / "vectors" / "access.json"
SECRET = bytes(range(32))
KEY_ID = bytes(range(100, 116))
ROOT = APIKey.new(SECRET, KEY_ID)
NOW = 1_800_000_000

# Small alphabets so that random requests often hit random restrictions.
buckets = st.sampled_from(["b1", "b2", "b3"])
paths = st.lists(st.sampled_from(["a", "b", "bc", "x"]), max_size=3).map("/".join)
folders = st.tuples(paths, st.booleans()).map(lambda p: p[0] + "/" if p[0] and p[1] else p[0])
times = st.one_of(st.none(), st.integers(NOW - 20, NOW + 20))
allowed_paths = st.builds(AllowedPath, buckets, folders)
caveats = st.builds(
    Caveat,
    disallow_reads=st.booleans(),
    disallow_writes=st.booleans(),
    disallow_lists=st.booleans(),
    disallow_deletes=st.booleans(),
    allowed_paths=st.lists(allowed_paths, max_size=3).map(tuple),
    not_before=times,
    not_after=times,
)
# Caveats with any legal field values, for encoding round trips.
wide_caveats = st.builds(
    Caveat,
    disallow_reads=st.booleans(),
    disallow_writes=st.booleans(),
    disallow_lists=st.booleans(),
    disallow_deletes=st.booleans(),
    allowed_paths=st.lists(
        st.builds(
            AllowedPath,
            st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 255),
            st.text(max_size=40),
        ),
        max_size=4,
    ).map(tuple),
    not_before=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    not_after=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
requests = st.builds(
    lambda op, bucket, path, now: Request(op, bucket, path if bucket else None, now),
    st.sampled_from(list(Op)),
    st.one_of(st.none(), buckets),
    st.one_of(st.none(), folders),
    st.integers(NOW - 25, NOW + 25),
)


def restricted(key: APIKey, *chain: Caveat) -> APIKey:
    for caveat in chain:
        key = key.restrict(caveat)
    return key


def allowed(key: APIKey, request: Request, secret: bytes = SECRET, **kwargs: Any) -> bool:
    try:
        key.check(secret, request, **kwargs)
    except AccessDenied:
        return False
    return True


def denial(key: APIKey, request: Request, secret: bytes = SECRET, **kwargs: Any) -> str:
    with pytest.raises(AccessDenied) as info:
        key.check(secret, request, **kwargs)
    assert info.value.code == "access-denied"
    return info.value.reason


def obj(op: Op, bucket: str, path: str, now: int = NOW) -> Request:
    return Request(op, bucket, path, now)


# --- round trips -------------------------------------------------------------------------------


@given(wide_caveats)
def test_caveat_encoding_round_trips(caveat: Caveat) -> None:
    assert Caveat.decode(caveat.encode()) == caveat


@given(st.lists(wide_caveats, max_size=4), st.binary(min_size=16, max_size=16))
def test_key_serialization_round_trips(chain: list[Caveat], key_id: bytes) -> None:
    key = restricted(APIKey.new(SECRET, key_id), *chain)
    text = key.serialize()
    assert text.startswith(KEY_PREFIX) and text.isascii() and text.isprintable()
    parsed = APIKey.parse(text)
    assert parsed == key
    assert parsed.tails(SECRET)[-1] == key.tail


def test_generate_uses_the_given_randomness() -> None:
    stream = iter([bytes([7]) * 32, bytes([8]) * 16])
    key, secret = APIKey.generate(lambda n: next(stream))
    assert secret == bytes([7]) * 32 and key.key_id == bytes([8]) * 16
    key.check(secret, Request(Op.WRITE, "b1", "a", NOW))


def test_new_refuses_short_secrets_and_bad_key_ids() -> None:
    with pytest.raises(ValueError):
        APIKey.new(b"short", KEY_ID)
    with pytest.raises(ValueError):
        APIKey.new(SECRET, b"\x00" * 15)


def test_repr_does_not_show_the_tail() -> None:
    assert ROOT.tail.hex() not in repr(ROOT) and KEY_ID.hex() in repr(ROOT)


# --- fixed vectors -----------------------------------------------------------------------------


def vector_caveat(fields: dict[str, Any]) -> Caveat:
    fields = dict(fields)
    fields["allowed_paths"] = tuple(AllowedPath(**p) for p in fields.get("allowed_paths", []))
    return Caveat(**fields)


def test_fixed_vectors() -> None:
    v = json.loads(VECTORS.read_text())["api_key"]
    secret, key_id = bytes.fromhex(v["secret"]), bytes.fromhex(v["key_id"])
    chain = [vector_caveat(c) for c in v["caveats"]]
    key = restricted(APIKey.new(secret, key_id), *chain)
    assert [c.encode().hex() for c in chain] == v["caveat_encodings"]
    assert [t.hex() for t in key.tails(secret)] == v["tails"]
    assert key.serialize() == v["serialized"]
    assert APIKey.parse(v["serialized"]) == key
    # The chain is plain HMAC-SHA256, so other implementations can follow it from the document.
    tail = hmac.new(secret, key_id, hashlib.sha256).digest()
    for caveat in chain:
        tail = hmac.new(tail, caveat.encode(), hashlib.sha256).digest()
    assert tail == key.tail


# --- semantics ---------------------------------------------------------------------------------


def test_root_key_allows_everything() -> None:
    for op in Op:
        for request in (Request(op, None, None, 0), Request(op, "b", None, 0), obj(op, "b", "p")):
            ROOT.check(SECRET, request)
    assert ROOT.allowed_buckets() is None and ROOT.expires_at is None and ROOT.not_before is None


@pytest.mark.parametrize("op", list(Op))
def test_disallowed_op_is_denied_and_others_are_not(op: Op) -> None:
    key = ROOT.restrict(Caveat(**{f"disallow_{op.value}s": True}))
    assert denial(key, obj(op, "b1", "a")) == "op-denied"
    assert denial(key, Request(op, None, None, NOW)) == "op-denied"
    for other in set(Op) - {op}:
        assert allowed(key, obj(other, "b1", "a"))
    assert not key.allows_op(op) and all(key.allows_op(o) for o in set(Op) - {op})


def test_time_window_is_inclusive() -> None:
    key = ROOT.restrict(Caveat(not_before=NOW, not_after=NOW + 10))
    assert denial(key, obj(Op.READ, "b", "p", NOW - 1)) == "not-yet-valid"
    assert allowed(key, obj(Op.READ, "b", "p", NOW))
    assert allowed(key, obj(Op.READ, "b", "p", NOW + 10))
    assert denial(key, obj(Op.READ, "b", "p", NOW + 11)) == "expired"
    assert isinstance(_raised(key, obj(Op.READ, "b", "p", NOW + 11)), AccessError)


def test_expiry_helpers_take_the_tightest_bound() -> None:
    key = restricted(
        ROOT, Caveat(not_after=NOW + 100, not_before=NOW - 5), Caveat(not_after=NOW + 50)
    )
    key = key.restrict(Caveat(not_before=NOW, not_after=NOW + 70))
    assert key.expires_at == NOW + 50 and key.not_before == NOW


def test_path_prefix_is_matched_on_component_boundaries() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a/b"),)))
    assert allowed(key, obj(Op.READ, "b1", "a/b"))
    assert allowed(key, obj(Op.WRITE, "b1", "a/b/c/d"))
    assert denial(key, obj(Op.READ, "b1", "a/bc")) == "path-denied"
    assert denial(key, obj(Op.READ, "b1", "a")) == "path-denied"
    assert denial(key, obj(Op.READ, "b1", "")) == "path-denied"
    assert denial(key, obj(Op.READ, "b2", "a/b")) == "path-denied"  # other bucket


def test_listing_is_allowed_only_within_an_allowed_prefix() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a/b"),)))
    assert allowed(key, obj(Op.LIST, "b1", "a/b"))
    assert allowed(key, obj(Op.LIST, "b1", "a/b/"))
    assert allowed(key, obj(Op.LIST, "b1", "a/b/c"))
    assert denial(key, obj(Op.LIST, "b1", "")) == "path-denied"  # the whole bucket
    assert denial(key, obj(Op.LIST, "b1", "a/")) == "path-denied"
    assert denial(key, obj(Op.LIST, "b1", "a/bc")) == "path-denied"


def test_folder_prefix_excludes_the_object_named_like_the_folder() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a/b/"),)))
    assert allowed(key, obj(Op.WRITE, "b1", "a/b/c"))
    assert allowed(key, obj(Op.LIST, "b1", "a/b/"))
    assert allowed(key, obj(Op.LIST, "b1", "a/b"))  # the folder itself, spelled without "/"
    for op in (Op.READ, Op.WRITE, Op.DELETE):
        assert denial(key, obj(op, "b1", "a/b")) == "path-denied"
    assert denial(key, obj(Op.LIST, "b1", "a")) == "path-denied"
    assert denial(key, obj(Op.LIST, "b1", "a/bc")) == "path-denied"
    assert denial(key, obj(Op.LIST, "b2", "a/b")) == "path-denied"
    assert denial(key, obj(Op.READ, "b1", "a/bc/d")) == "path-denied"


def test_reaches_is_path_coverage_by_every_restricted_caveat() -> None:
    key = restricted(
        ROOT,
        Caveat(allowed_paths=(AllowedPath("b1", "a/"), AllowedPath("b2"))),
        Caveat(disallow_writes=True),
    )
    assert key.reaches("b1", "a/x") and key.reaches("b1", "a/x/") and key.reaches("b2", "")
    assert not key.reaches("b1", "a") and not key.reaches("b1", "") and not key.reaches("b3", "")
    assert ROOT.reaches("any", "")
    narrower = key.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a/x/"),)))
    assert narrower.reaches("b1", "a/x/y") and not narrower.reaches("b2", "")


def test_every_path_restricted_caveat_must_cover_the_request() -> None:
    key = restricted(
        ROOT,
        Caveat(allowed_paths=(AllowedPath("b1", "a"),)),
        Caveat(allowed_paths=(AllowedPath("b1", "a/x"), AllowedPath("b2"))),
    )
    assert allowed(key, obj(Op.READ, "b1", "a/x/1"))
    assert denial(key, obj(Op.READ, "b1", "a/y")) == "path-denied"
    assert denial(key, obj(Op.READ, "b2", "a/x")) == "path-denied"
    assert key.allowed_buckets() == frozenset({"b1"})


def test_project_wide_calls_with_a_path_restricted_key_are_listing_only() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a"), AllowedPath("b2"))))
    assert allowed(key, Request(Op.LIST, None, None, NOW))
    for op in (Op.READ, Op.WRITE, Op.DELETE):
        assert denial(key, Request(op, None, None, NOW)) == "path-denied"
    assert key.allowed_buckets() == frozenset({"b1", "b2"})


def test_bucket_level_calls() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("part", "a"), AllowedPath("whole"))))
    for op in (Op.READ, Op.LIST):
        assert allowed(key, Request(op, "part", None, NOW))
        assert allowed(key, Request(op, "whole", None, NOW))
        assert denial(key, Request(op, "other", None, NOW)) == "path-denied"
    for op in (Op.WRITE, Op.DELETE):
        assert denial(key, Request(op, "part", None, NOW)) == "path-denied"
        assert allowed(key, Request(op, "whole", None, NOW))
        assert denial(key, Request(op, "other", None, NOW)) == "path-denied"


def test_caveats_without_paths_do_not_lift_path_restrictions() -> None:
    key = ROOT.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a"),)))
    key = key.restrict(Caveat(disallow_deletes=True))
    assert key.allowed_buckets() == frozenset({"b1"})
    assert denial(key, obj(Op.READ, "b1", "b")) == "path-denied"


def test_appending_a_broader_caveat_does_not_widen() -> None:
    narrow = ROOT.restrict(
        Caveat(
            disallow_writes=True,
            disallow_deletes=True,
            allowed_paths=(AllowedPath("b1", "a"),),
            not_after=NOW,
        )
    )
    wider = restricted(
        narrow,
        Caveat(),
        Caveat(allowed_paths=(AllowedPath("b1"), AllowedPath("b2"))),
        Caveat(not_before=0, not_after=2**64 - 1),
    )
    assert allowed(wider, obj(Op.READ, "b1", "a/1"))
    assert denial(wider, obj(Op.WRITE, "b1", "a/1")) == "op-denied"
    assert denial(wider, obj(Op.DELETE, "b1", "a/1")) == "op-denied"
    assert denial(wider, obj(Op.READ, "b1", "b")) == "path-denied"
    assert denial(wider, obj(Op.READ, "b2", "a")) == "path-denied"
    assert denial(wider, Request(Op.WRITE, "b1", None, NOW)) == "op-denied"
    assert denial(wider, obj(Op.READ, "b1", "a", NOW + 1)) == "expired"
    assert wider.allowed_buckets() == frozenset({"b1"}) and wider.expires_at == NOW


@given(st.lists(caveats, max_size=3), caveats, requests)
def test_restricting_only_narrows(chain: list[Caveat], extra: Caveat, request: Request) -> None:
    parent = restricted(ROOT, *chain)
    child = parent.restrict(extra)
    child_ok = allowed(child, request)
    assert child_ok == (allowed(parent, request) and _caveat_allows(extra, request))
    parent_buckets, child_buckets = parent.allowed_buckets(), child.allowed_buckets()
    if parent_buckets is not None:
        assert child_buckets is not None and child_buckets <= parent_buckets


@given(st.lists(caveats, min_size=1, max_size=3), requests)
def test_caveat_order_does_not_change_the_decision(chain: list[Caveat], request: Request) -> None:
    forward = allowed(restricted(ROOT, *chain), request)
    assert forward == allowed(restricted(ROOT, *reversed(chain)), request)


def _caveat_allows(caveat: Caveat, request: Request) -> bool:
    try:
        caveat.check(request)
    except AccessDenied:
        return False
    return True


def _raised(key: APIKey, request: Request) -> Exception:
    with pytest.raises(AccessError) as info:
        key.check(SECRET, request)
    return info.value


# --- attacks on the chain ----------------------------------------------------------------------

READ_ONLY = ROOT.restrict(Caveat(disallow_writes=True, disallow_deletes=True))
TWO = READ_ONLY.restrict(Caveat(allowed_paths=(AllowedPath("b1", "a"),)))
WRITE = obj(Op.WRITE, "b1", "a")


def test_wrong_secret_is_refused() -> None:
    assert denial(ROOT, obj(Op.READ, "b1", "a"), secret=bytes(32)) == "invalid-key"
    assert denial(TWO, obj(Op.READ, "b1", "a"), secret=SECRET[:-1] + b"\x00") == "invalid-key"
    with pytest.raises(AccessDenied):
        TWO.tails(bytes(32))


def test_tampered_caveat_bytes_are_refused() -> None:
    data = bytearray(READ_ONLY.encode())
    caveat_bytes = READ_ONLY.caveats[0].encode()
    at = data.index(caveat_bytes) + 2  # tag, version, then the disallow bits
    assert data[at] == 0x0A
    data[at] = 0x00  # clear "no writes" and "no deletes"
    tampered = APIKey.decode(bytes(data))
    assert tampered.caveats == (Caveat(),)
    assert denial(tampered, WRITE) == "invalid-key"


def test_removed_caveat_is_refused() -> None:
    for kept in ((), TWO.caveats[:1], TWO.caveats[1:]):
        stripped = APIKey(TWO.key_id, kept, TWO.tail)
        assert denial(stripped, obj(Op.READ, "b1", "a")) == "invalid-key"


def test_reordered_caveats_are_refused() -> None:
    swapped = APIKey(TWO.key_id, TWO.caveats[::-1], TWO.tail)
    assert denial(swapped, obj(Op.READ, "b1", "a")) == "invalid-key"


def test_forged_tails_are_refused() -> None:
    request = obj(Op.READ, "b1", "a")
    for tail in (bytes(32), READ_ONLY.tail, ROOT.tail, hashlib.sha256(TWO.tail).digest()):
        assert denial(APIKey(TWO.key_id, TWO.caveats, tail), request) == "invalid-key"
    # A caveat chained from a guessed tail instead of the real one.
    forged = APIKey(ROOT.key_id, (), bytes(32)).restrict(Caveat())
    assert denial(forged, request) == "invalid-key"


def test_other_key_id_is_refused() -> None:
    moved = APIKey(bytes(16), TWO.caveats, TWO.tail)
    assert denial(moved, obj(Op.READ, "b1", "a")) == "invalid-key"


def test_revoking_a_parent_revokes_its_descendants_only() -> None:
    sibling = READ_ONLY.restrict(Caveat(allowed_paths=(AllowedPath("b2"),)))
    request_b1, request_b2 = obj(Op.READ, "b1", "a"), obj(Op.READ, "b2", "a")
    revoke_parent = {READ_ONLY.tail}.__contains__
    assert denial(TWO, request_b1, revoked=revoke_parent) == "revoked"
    assert denial(sibling, request_b2, revoked=revoke_parent) == "revoked"
    assert denial(READ_ONLY, request_b1, revoked=revoke_parent) == "revoked"
    assert allowed(ROOT, request_b1, revoked=revoke_parent)
    revoke_child = {TWO.tail}.__contains__
    assert denial(TWO, request_b1, revoked=revoke_child) == "revoked"
    assert allowed(sibling, request_b2, revoked=revoke_child)
    assert allowed(READ_ONLY, request_b1, revoked=revoke_child)


def test_tails_are_the_whole_chain() -> None:
    tails = TWO.tails(SECRET)
    assert tails == [ROOT.tail, READ_ONLY.tail, TWO.tail]


@given(st.data())
def test_any_modified_byte_is_refused(data: st.DataObject) -> None:
    raw = bytearray(TWO.encode())
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    try:
        key = APIKey.decode(bytes(raw))
    except DecodeError:
        return
    with pytest.raises(AccessDenied):
        key.tails(SECRET)


# --- malformed input ---------------------------------------------------------------------------


def key_body(*, count: int | None = None, caveat: bytes | None = None, tail: bool = True) -> bytes:
    caveat = Caveat().encode() if caveat is None else caveat
    w = Writer().u8(TAG_API_KEY).u8(1).fixed(KEY_ID, 16).u16(1 if count is None else count)
    w.blob(caveat)
    if tail:
        w.fixed(bytes(32), 32)
    return w.getvalue()


NO_TIMES = b"\x00\x00"  # both presence flags clear


def caveat_body(*, bits: int = 0, count: int = 0, extra: bytes = NO_TIMES) -> bytes:
    return Writer().u8(TAG_CAVEAT).u8(1).u8(bits).u16(count).getvalue() + extra


def path_entry(bucket: bytes, prefix: bytes) -> bytes:
    return Writer().blob(bucket).blob(prefix).getvalue()


def token(body: bytes) -> str:
    return KEY_PREFIX + b64encode(body)


def _non_canonical(text: str) -> str:
    # A 52-byte body leaves 4 unused low bits in the last base64 character: set one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]


GOOD = TWO.serialize()
ROOT_BODY = ROOT.encode()
BAD_TEXTS = {
    "empty": "",
    "no prefix": GOOD[len(KEY_PREFIX) :],
    "wrong prefix": "mdg1" + GOOD[len(KEY_PREFIX) :],
    "future prefix": "mdk2" + GOOD[len(KEY_PREFIX) :],
    "bad base64": GOOD[:-3] + "!!!",
    "padding": GOOD + "==",
    "whitespace": GOOD + "\n",
    "non-canonical base64": _non_canonical(token(ROOT_BODY)),
    "non-ascii": GOOD + "\u00e9",
    "truncated text": GOOD[:-4],
    "truncated body": token(TWO.encode()[:-1]),
    "trailing bytes": token(TWO.encode() + b"\x00"),
    "wrong tag": token(bytes([TAG_CAVEAT]) + ROOT_BODY[1:]),
    "future version": token(ROOT_BODY[:1] + b"\x02" + ROOT_BODY[2:]),
    "huge caveat count": token(key_body(count=0xFFFF)),
    "caveat count past body": token(key_body(count=2)),
    "huge blob length": token(
        Writer().u8(TAG_API_KEY).u8(1).fixed(KEY_ID, 16).u16(1).u32(0xFFFFFFFF).getvalue()
        + bytes(32)
    ),
    "no tail": token(key_body(tail=False)),
    "caveat wrong tag": token(key_body(caveat=bytes([TAG_API_KEY]) + Caveat().encode()[1:])),
    "caveat future version": token(
        key_body(caveat=caveat_body()[:1] + b"\x02" + caveat_body()[2:])
    ),
    "unknown op bits": token(key_body(caveat=caveat_body(bits=0x10))),
    "huge path count": token(key_body(caveat=caveat_body(count=0xFFFF))),
    "path count past caveat": token(key_body(caveat=caveat_body(count=1))),
    "bad presence flag": token(key_body(caveat=caveat_body(extra=b"\x02"))),
    "time missing": token(key_body(caveat=caveat_body(extra=b"\x01\x00\x00"))),
    "caveat trailing bytes": token(key_body(caveat=caveat_body(extra=NO_TIMES + b"\x00"))),
    "empty bucket": token(
        key_body(caveat=caveat_body(count=1, extra=path_entry(b"", b"") + NO_TIMES))
    ),
    "invalid utf-8": token(
        key_body(caveat=caveat_body(count=1, extra=path_entry(b"\xff", b"") + NO_TIMES))
    ),
    "huge bucket": token(
        key_body(caveat=caveat_body(count=1, extra=path_entry(b"b" * 256, b"") + NO_TIMES))
    ),
    "too long": KEY_PREFIX + "A" * (MAX_KEY_BYTES * 4 // 3 + 8),
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_malformed_keys_are_refused(name: str) -> None:
    with pytest.raises(DecodeError):
        APIKey.parse(BAD_TEXTS[name])


def test_the_malformed_samples_differ_from_good_ones_only_where_named() -> None:
    # Guard against the table above passing because of an unrelated mistake in its builders.
    good_caveat = caveat_body(count=1, extra=path_entry(b"b", b"x") + b"\x01" + bytes(8) + b"\x00")
    assert Caveat.decode(good_caveat) == Caveat(
        allowed_paths=(AllowedPath("b", "x"),), not_before=0
    )
    assert APIKey.decode(key_body()) == APIKey(KEY_ID, (Caveat(),), bytes(32))
    assert APIKey.parse(token(ROOT_BODY)) == ROOT
    assert _non_canonical(token(ROOT_BODY)) != token(ROOT_BODY)
    assert b64decode(GOOD[len(KEY_PREFIX) :]) == TWO.encode()


@pytest.mark.parametrize("value", [b"mdk1", 42, None])
def test_parse_refuses_non_text(value: Any) -> None:
    with pytest.raises(DecodeError):
        APIKey.parse(value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: AllowedPath(""),
        lambda: AllowedPath("b" * 256),
        lambda: AllowedPath("b", "\ud800"),
        lambda: Caveat(not_before=-1),
        lambda: Caveat(not_after=2**64),
        lambda: Caveat(not_after=True),
        lambda: Caveat(allowed_paths=[AllowedPath("b")]),  # type: ignore[arg-type]
        lambda: APIKey(b"short", (), bytes(32)),
        lambda: APIKey(KEY_ID, (), b"short"),
        lambda: APIKey(KEY_ID, (Caveat(),) * 257, bytes(32)),
    ],
)
def test_invalid_fields_are_refused(build: Any) -> None:
    with pytest.raises(DecodeError):
        build()


def test_request_needs_a_bucket_for_a_path() -> None:
    with pytest.raises(ValueError):
        Request(Op.READ, None, "a", NOW)


def test_serialize_refuses_keys_that_parse_would_refuse() -> None:
    big = Caveat(allowed_paths=(AllowedPath("b", "p" * 4100),))
    key = APIKey(KEY_ID, (big,) * 256, bytes(32))
    assert len(key.encode()) > MAX_KEY_BYTES
    with pytest.raises(ValueError):
        key.serialize()
