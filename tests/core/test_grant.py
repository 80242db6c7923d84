"""Access grants: round trips, sharing narrows both halves, fixed vectors, malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.encoding import Writer, b64encode
from metadisk.core.errors import AccessError, DecodeError, DecryptionError
from metadisk.core.grant import (
    GRANT_PREFIX,
    MAX_GRANT_BYTES,
    TAG_ACCESS_GRANT,
    AccessGrant,
    SharePrefix,
    check_bridge_url,
)
from metadisk.core.keys import decrypt_metadata, encrypt_metadata
from metadisk.core.macaroon import (
    KEY_PREFIX,
    AccessDenied,
    AllowedPath,
    APIKey,
    Caveat,
    Op,
    Request,
)
from metadisk.core.paths import (
    EncryptionAccess,
    PathKey,
    bucket_root,
    decrypt_path,
    descend,
    encrypt_path,
    object_key,
)
from tests.core.test_macaroon import caveats as random_caveats
from tests.core.test_macaroon import restricted

VECTORS = Path(__file__).parent / "vectors" / "access.json"
SECRET = bytes(range(32))
ROOT_KEY = bytes(range(64, 96))
API_ROOT = APIKey.new(SECRET, bytes(range(16)))
URL = "https://bridge.example:7777/api"
GRANT = AccessGrant(URL, API_ROOT, EncryptionAccess(ROOT_KEY, ()))
NOW = 1_800_000_000


def enc(bucket: str, path: str) -> str:
    """How the bridge sees `path`, computed from the root key."""
    return encrypt_path(bucket_root(ROOT_KEY, bucket), path)


def allows(grant: AccessGrant, op: Op, bucket: str | None, path: str | None) -> bool:
    encrypted = None if path is None or bucket is None else enc(bucket, path) if path else ""
    try:
        grant.api_key.check(SECRET, Request(op, bucket, encrypted, NOW))
    except AccessDenied:
        return False
    return True


def real_object_key(bucket: str, path: str) -> bytes:
    return object_key(bucket_root(ROOT_KEY, bucket), path)


# --- sharing -----------------------------------------------------------------------------------

SHARED = GRANT.share([SharePrefix("photos", "a/b")], not_after=NOW + 60)


def test_share_restricts_the_api_key_to_the_encrypted_folder() -> None:
    (caveat,) = SHARED.api_key.caveats
    folder = descend(bucket_root(ROOT_KEY, "photos"), "a/b").encrypted_path
    assert caveat == Caveat(
        disallow_writes=True,
        disallow_deletes=True,
        allowed_paths=(AllowedPath("photos", folder + "/"),),
        not_after=NOW + 60,
    )
    assert SHARED.api_key.expires_at == NOW + 60
    assert SHARED.api_key.allowed_buckets() == frozenset({"photos"})
    assert SHARED.bridge_url == URL


def test_shared_key_allows_only_the_folder_and_the_given_ops() -> None:
    assert allows(SHARED, Op.READ, "photos", "a/b/c")
    assert allows(SHARED, Op.LIST, "photos", "a/b/c/d")
    assert allows(SHARED, Op.LIST, "photos", "a/b")  # the folder itself
    assert not allows(SHARED, Op.WRITE, "photos", "a/b/c")
    assert not allows(SHARED, Op.DELETE, "photos", "a/b/c")
    assert not allows(SHARED, Op.READ, "photos", "a/b")  # keyed by "a": not shared
    assert not allows(SHARED, Op.READ, "photos", "a/c")
    assert not allows(SHARED, Op.READ, "photos", "a/bc/d")
    assert not allows(SHARED, Op.LIST, "photos", "a")
    assert not allows(SHARED, Op.LIST, "photos", "")
    assert not allows(SHARED, Op.READ, "docs", "a/b/c")
    assert not allows(SHARED, Op.DELETE, "photos", None)
    assert allows(SHARED, Op.LIST, None, None)


def test_shared_encryption_holds_only_the_folder_key() -> None:
    assert SHARED.encryption.root_key is None
    assert SHARED.encryption.path_keys == (descend(bucket_root(ROOT_KEY, "photos"), "a/b"),)
    base, rest = SHARED.encryption.resolve("photos", "a/b/c/file")
    assert object_key(base, rest) == real_object_key("photos", "a/b/c/file")
    assert decrypt_path(base, enc("photos", "a/b/c/file").split("/", 2)[2]) == "c/file"


@pytest.mark.parametrize("path", ["a/c/file", "a/bc/file", "a/b", "x", "a/file"])
def test_shared_keys_cannot_decrypt_a_sibling_path(path: str) -> None:
    with pytest.raises(AccessError):
        SHARED.encryption.resolve("photos", path)
    # The recipient's best guesses with the key it has do not open the sibling.
    (held,) = SHARED.encryption.path_keys
    encrypted, wrapped = encrypt_metadata(real_object_key("photos", path), b"secret metadata")
    for guess in {path, path.rsplit("/", 1)[-1], "c/file", "file"}:
        with pytest.raises(DecryptionError):
            decrypt_metadata(object_key(held, guess), encrypted, wrapped)
    with pytest.raises(DecryptionError):
        decrypt_path(held, enc("photos", path).rsplit("/", 1)[-1])
    with pytest.raises(AccessError):
        SHARED.encryption.resolve("docs", "a/b/c")


@pytest.mark.parametrize(
    "prefix",
    [
        SharePrefix("photos", "a"),  # above
        SharePrefix("photos"),  # the whole bucket
        SharePrefix("photos", "a/c"),  # sibling
        SharePrefix("photos", "a/bc"),  # sibling sharing a name prefix
        SharePrefix("docs", "a/b"),  # other bucket
    ],
)
def test_share_refuses_prefixes_above_its_reach(prefix: SharePrefix) -> None:
    with pytest.raises(AccessError):
        SHARED.share([prefix])
    with pytest.raises(AccessError):  # one bad prefix spoils the whole share
        SHARED.share([SharePrefix("photos", "a/b/c"), prefix])


def test_resharing_narrows_further() -> None:
    deeper = SHARED.share([SharePrefix("photos", "a/b/c/")], list=False, not_after=NOW + 10)
    assert deeper.encryption.path_keys == (descend(bucket_root(ROOT_KEY, "photos"), "a/b/c"),)
    assert len(deeper.api_key.caveats) == 2
    assert allows(deeper, Op.READ, "photos", "a/b/c/d")
    assert not allows(deeper, Op.LIST, "photos", "a/b/c/d")
    assert not allows(deeper, Op.READ, "photos", "a/b/x")
    assert deeper.api_key.expires_at == NOW + 10
    # Asking for a later expiry than the parent's does not extend it.
    assert SHARED.share(
        [SharePrefix("photos", "a/b/c")], not_after=NOW + 999
    ).api_key.expires_at == (NOW + 60)


def test_share_refuses_ops_the_grant_does_not_have() -> None:
    with pytest.raises(AccessError):
        SHARED.share([SharePrefix("photos", "a/b/c")], write=True)
    with pytest.raises(AccessError):
        SHARED.share([SharePrefix("photos", "a/b/c")], delete=True)
    write_only = GRANT.share([SharePrefix("photos")], read=False, list=False, write=True)
    with pytest.raises(AccessError):
        write_only.share([SharePrefix("photos", "a")])  # default asks for read and list
    write_only.share([SharePrefix("photos", "a")], read=False, list=False, write=True)


def test_share_refuses_prefixes_its_api_key_does_not_reach() -> None:
    # Keys for everything, but an API key already limited to "docs": sharing "photos" is refused.
    limited = AccessGrant(
        URL, API_ROOT.restrict(Caveat(allowed_paths=(AllowedPath("docs"),))), GRANT.encryption
    )
    with pytest.raises(AccessError):
        limited.share([SharePrefix("photos", "a")])
    assert limited.share([SharePrefix("docs", "a")]).api_key.allowed_buckets() == {"docs"}


def test_share_of_whole_buckets_and_several_prefixes() -> None:
    shared = GRANT.share(
        [SharePrefix("docs"), SharePrefix("photos", "a"), SharePrefix("photos", "a/")],
        write=True,
        delete=True,
    )
    assert [(pk.bucket, pk.path) for pk in shared.encryption.path_keys] == [
        ("docs", ""),
        ("photos", "a"),
    ]
    assert shared.api_key.caveats[0].allowed_paths == (
        AllowedPath("docs", ""),
        AllowedPath("photos", enc("photos", "a") + "/"),
    )
    assert allows(shared, Op.DELETE, "docs", None)  # a whole bucket, its bucket-level ops too
    assert not allows(shared, Op.DELETE, "photos", None)
    assert allows(shared, Op.WRITE, "docs", "any/thing")
    assert allows(shared, Op.WRITE, "photos", "a/x")
    assert shared.encryption.resolve("docs", "any/thing")[0].path == ""


def test_share_needs_a_prefix() -> None:
    with pytest.raises(ValueError):
        GRANT.share([])


@pytest.mark.parametrize("args", [("", ""), ("photos", "a//"), ("photos", 3), (None, "")])
def test_invalid_share_prefixes(args: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError):
        SharePrefix(*args)


NAMES = ["a", "b", "ab"]
folders = st.lists(st.sampled_from(NAMES), max_size=3).map("/".join)
share_prefixes = st.lists(
    st.builds(SharePrefix, st.sampled_from(["photos", "docs"]), folders), min_size=1, max_size=3
)


@st.composite
def narrower(draw: st.DrawFn, prefixes: list[SharePrefix]) -> list[SharePrefix]:
    """Prefixes within `prefixes`: each extends one of them by zero or more components."""
    result = []
    for _ in range(draw(st.integers(1, 3))):
        base = draw(st.sampled_from(prefixes))
        extra = draw(st.lists(st.sampled_from(NAMES), max_size=2))
        result.append(SharePrefix(base.bucket, "/".join([base.folder, *extra]).strip("/")))
    return result


@given(st.data(), share_prefixes, st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
def test_shared_grants_never_reach_above(
    data: st.DataObject, first: list[SharePrefix], components: list[str]
) -> None:
    once = GRANT.share(first)
    second = data.draw(narrower(first))
    twice = once.share(second)
    path = "/".join(components)
    for bucket in ("photos", "docs"):
        try:
            base, rest = twice.encryption.resolve(bucket, path)
        except AccessError:
            assert not allows(twice, Op.READ, bucket, path)
            continue
        # Whatever the twice-shared keys open, the parent grant opened too, with the same key,
        # and the path lies in a folder shared the second time.
        assert object_key(base, rest) == real_object_key(bucket, path)
        once.encryption.resolve(bucket, path)
        assert any(
            p.bucket == bucket and (p.folder == "" or path.startswith(p.folder + "/"))
            for p in second
        )
        assert allows(twice, Op.READ, bucket, path) and allows(once, Op.READ, bucket, path)
    assert twice.encryption.root_key is None


@given(share_prefixes, share_prefixes)
def test_sharing_outside_reach_is_refused(
    first: list[SharePrefix], second: list[SharePrefix]
) -> None:
    once = GRANT.share(first)

    def within(p: SharePrefix) -> bool:
        return any(
            q.bucket == p.bucket and (q.folder == "" or f"{p.folder}/".startswith(q.folder + "/"))
            for q in first
        )

    if all(within(p) for p in second):
        once.share(second)
    else:
        with pytest.raises(AccessError):
            once.share(second)


@given(
    share_prefixes,
    st.sampled_from(["photos", "docs"]),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=4),
)
def test_api_key_and_keys_of_a_share_agree(
    prefixes: list[SharePrefix], bucket: str, components: list[str]
) -> None:
    shared = GRANT.share(prefixes)
    path = "/".join(components)
    try:
        shared.encryption.resolve(bucket, path)
        decryptable = True
    except AccessError:
        decryptable = False
    assert allows(shared, Op.READ, bucket, path) == decryptable


# --- bridge URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:7000", "https://bridge.example/api/v1", "http://[::1]:8080/", "http://b"],
)
def test_valid_bridge_urls(url: str) -> None:
    check_bridge_url(url)
    assert (
        AccessGrant.parse(AccessGrant(url, API_ROOT, GRANT.encryption).serialize()).bridge_url
        == url
    )


@pytest.mark.parametrize(
    "url",
    [
        "",
        "bridge.example",
        "ftp://bridge.example",
        "javascript:alert(1)",
        "http://",
        "http:///path",
        "https://user:pw@bridge.example",
        "https://user@bridge.example",
        "https://bridge.example?x=1",
        "https://bridge.example/?",
        "https://bridge.example#frag",
        "https://bridge.example:99999",
        "https://bridge.example:port",
        "https://bridge.example:0",
        "https://[::1",
        " https://bridge.example",
        "https://bridge example",
        "https://brücke.example",
        "https://bridge.example/\n",
        "https://" + "a" * 2048,
        b"https://bridge.example",
    ],
)
def test_invalid_bridge_urls(url: Any) -> None:
    with pytest.raises(DecodeError):
        check_bridge_url(url)
    with pytest.raises(DecodeError):
        AccessGrant(url, API_ROOT, GRANT.encryption)


# --- serialization -----------------------------------------------------------------------------

urls = st.sampled_from(["http://127.0.0.1:7000", "https://bridge.example/api", "http://[::1]:1"])


@given(urls, st.lists(random_caveats, max_size=3), st.one_of(st.none(), share_prefixes))
def test_grant_round_trips(
    url: str, chain: list[Caveat], prefixes: list[SharePrefix] | None
) -> None:
    encryption = GRANT.encryption if prefixes is None else GRANT.share(prefixes).encryption
    grant = AccessGrant(url, restricted(API_ROOT, *chain), encryption)
    text = grant.serialize()
    assert text.startswith(GRANT_PREFIX) and text.isascii() and text.isprintable()
    assert AccessGrant.parse(text) == grant


def test_repr_shows_no_keys() -> None:
    text = repr(SHARED)
    assert SHARED.api_key.tail.hex() not in text and ROOT_KEY.hex() not in text
    assert SHARED.encryption.path_keys[0].key.hex() not in text and URL in text


def grant_body(
    url: bytes = URL.encode(), key: bytes | None = None, access: bytes | None = None
) -> bytes:
    w = Writer().u8(TAG_ACCESS_GRANT).u8(1).blob(url)
    w.blob(API_ROOT.encode() if key is None else key)
    w.blob(GRANT.encryption.encode() if access is None else access)
    return w.getvalue()


def grant_token(body: bytes) -> str:
    return GRANT_PREFIX + b64encode(body)


GOOD = SHARED.serialize()
BAD_GRANTS = {
    "empty": "",
    "api key instead": API_ROOT.serialize(),
    "key prefix": KEY_PREFIX + GOOD[len(GRANT_PREFIX) :],
    "future prefix": "mdg2" + GOOD[len(GRANT_PREFIX) :],
    "bad base64": GOOD[:-2] + "*=",
    "truncated text": GOOD[:-5],
    "truncated body": grant_token(SHARED.encode()[:-1]),
    "trailing bytes": grant_token(SHARED.encode() + b"\x00"),
    "wrong tag": grant_token(b"\x21" + SHARED.encode()[1:]),
    "future version": grant_token(SHARED.encode()[:1] + b"\x02" + SHARED.encode()[2:]),
    "huge url length": grant_token(Writer().u8(TAG_ACCESS_GRANT).u8(1).u32(0xFFFFFFF0).getvalue()),
    "huge key length": grant_token(
        Writer().u8(TAG_ACCESS_GRANT).u8(1).text(URL).u32(0xFFFFFFF0).getvalue()
    ),
    "bad url inside": grant_token(grant_body(url=b"ftp://bridge.example")),
    "invalid utf-8 url": grant_token(grant_body(url=b"http://\xff")),
    "bad api key inside": grant_token(grant_body(key=API_ROOT.encode()[:-1])),
    "grant as api key": grant_token(grant_body(key=GRANT.encode())),
    "bad access inside": grant_token(grant_body(access=GRANT.encryption.encode()[:-1])),
    "empty access": grant_token(grant_body(access=b"")),
    "too long": GRANT_PREFIX + "A" * (MAX_GRANT_BYTES * 4 // 3 + 8),
}


@pytest.mark.parametrize("name", sorted(BAD_GRANTS))
def test_malformed_grants_are_refused(name: str) -> None:
    with pytest.raises(DecodeError):
        AccessGrant.parse(BAD_GRANTS[name])


def test_malformed_grant_builders_make_good_grants_by_default() -> None:
    assert AccessGrant.parse(grant_token(grant_body())) == AccessGrant(
        URL, API_ROOT, GRANT.encryption
    )


@given(st.data())
def test_modified_bytes_never_give_a_valid_wider_grant(data: st.DataObject) -> None:
    raw = bytearray(SHARED.encode())
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    try:
        grant = AccessGrant.decode(bytes(raw))
    except DecodeError:
        return
    # It parsed: then it is a different grant, and whatever changed cannot gain access. A changed
    # key or caveat fails the HMAC; changed path keys only open less (wrong keys decrypt nothing).
    assert grant != SHARED
    if grant.api_key != SHARED.api_key:
        with pytest.raises(AccessDenied):
            grant.api_key.tails(SECRET)
    assert grant.encryption.root_key is None


# --- fixed vectors -----------------------------------------------------------------------------


def test_fixed_vectors() -> None:
    v = json.loads(VECTORS.read_text())["grant"]
    api = json.loads(VECTORS.read_text())["api_key"]
    key = APIKey.new(bytes.fromhex(api["secret"]), bytes.fromhex(api["key_id"]))
    root = AccessGrant(v["bridge_url"], key, EncryptionAccess(bytes.fromhex(v["root_key"]), ()))
    assert root.serialize() == v["root_grant"]
    share = v["share"]
    shared = root.share(
        [SharePrefix(p["bucket"], p["prefix"]) for p in share["prefixes"]],
        read=share["read"],
        write=share["write"],
        list=share["list"],
        delete=share["delete"],
        not_before=share["not_before"],
        not_after=share["not_after"],
    )
    assert [p.encrypted_prefix for p in shared.api_key.caveats[-1].allowed_paths] == share[
        "encrypted_prefixes"
    ]
    assert shared.api_key.tail.hex() == share["tail"]
    assert shared.serialize() == share["serialized"]
    assert AccessGrant.parse(share["serialized"]) == shared


def test_encode_refuses_grants_that_parse_would_refuse() -> None:
    huge = tuple(PathKey("photos", f"{i}" * 60_000, "A" * 60_000, bytes(32)) for i in range(1, 10))
    grant = AccessGrant(URL, API_ROOT, EncryptionAccess(None, huge))
    assert len(grant.encryption.encode()) > 1 << 20
    with pytest.raises(ValueError):
        grant.serialize()
