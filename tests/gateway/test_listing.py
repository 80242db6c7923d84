"""S3 listing semantics: pages, common prefixes, markers, uploads, parts and tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.gateway.listing import (
    Entry,
    Part,
    Upload,
    decode_token,
    encode_token,
    page,
    page_parts,
    page_uploads,
    resume_after,
    sort_key,
)
from metadisk.gateway.s3errors import S3Error

WHEN = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
# A small alphabet makes shared prefixes and delimiters common; the top code point and a
# multi-byte letter check the prefix bounds and the UTF-8 order.
NAMES = st.text(alphabet="ab/.é\U0010ffff", min_size=1, max_size=6)
DELIMITERS = st.sampled_from([None, "", "/", "a", "b/", "\U0010ffff"])
PREFIXES = st.text(alphabet="ab/é\U0010ffff", max_size=2)


def _entries(names: list[str] | set[str]) -> list[Entry]:
    return [Entry(name, len(name), "e", WHEN) for name in sorted(set(names))]


def _reference(
    names: list[str], prefix: str, delimiter: str | None, after: str | None
) -> list[str]:
    """The whole listing, written the obvious way: keys as they are, prefixes as ``P:...``."""
    results: list[str] = []
    for name in sorted(set(names)):
        if not name.startswith(prefix) or (after is not None and name <= after):
            continue
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if after is not None and after.startswith(common):
                continue
            if f"P:{common}" not in results:
                results.append(f"P:{common}")
        else:
            results.append(name)
    # A common prefix sorts where its first key sorts, which is its own place.
    return sorted(results, key=lambda r: r[2:] if r.startswith("P:") else r)


def _flat(result_page: object) -> list[str]:
    assert hasattr(result_page, "contents")
    assert hasattr(result_page, "common_prefixes")
    merged = [e.key for e in result_page.contents] + [f"P:{p}" for p in result_page.common_prefixes]
    return sorted(merged, key=lambda r: r[2:] if r.startswith("P:") else r)


def _all_pages(
    entries: list[Entry], prefix: str, delimiter: str | None, max_keys: int
) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    for _ in range(len(entries) + 2):
        result = page(entries, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)
        assert result.key_count <= max_keys
        seen.extend(_flat(result))
        if not result.is_truncated:
            assert result.next_marker is None
            return seen
        assert result.key_count == max_keys
        # The marker is the last key or common prefix returned; the v2 token resumes there too.
        last = seen[-1]
        assert result.next_marker == (last[2:] if last.startswith("P:") else last)
        assert result.next_marker is not None
        after = decode_token(encode_token(result.next_marker))
    raise AssertionError("paging did not end")


@given(
    names=st.lists(NAMES, max_size=25),
    prefix=PREFIXES,
    delimiter=DELIMITERS,
    max_keys=st.integers(1, 6),
)
def test_paging_through_all_pages_reproduces_the_one_page_listing(
    names: list[str], prefix: str, delimiter: str | None, max_keys: int
) -> None:
    entries = _entries(names)
    whole = page(entries, prefix=prefix, delimiter=delimiter, max_keys=1000)
    assert not whole.is_truncated
    expected = _reference(names, prefix, delimiter, None)
    assert _flat(whole) == expected
    paged = _all_pages(entries, prefix, delimiter, max_keys)
    assert paged == expected
    assert len(set(paged)) == len(paged)  # nothing repeated, each common prefix once


@given(
    names=st.lists(NAMES, max_size=25),
    prefix=PREFIXES,
    delimiter=DELIMITERS,
    after=st.one_of(st.none(), NAMES),
)
def test_a_marker_skips_what_sorts_at_or_before_it(
    names: list[str], prefix: str, delimiter: str | None, after: str | None
) -> None:
    result = page(_entries(names), prefix=prefix, delimiter=delimiter, after=after)
    assert _flat(result) == _reference(names, prefix, delimiter, after)


@given(names=st.lists(st.text(max_size=8), max_size=30))
def test_str_order_is_the_utf8_byte_order_s3_lists_in(names: list[str]) -> None:
    names = [n for n in names if not any(0xD800 <= ord(c) <= 0xDFFF for c in n)]
    assert sorted(names) == sorted(names, key=sort_key)


def _keys(names: list[str]) -> list[Entry]:
    return _entries(names)


S3_TESTS_KEYS = ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"]


@pytest.mark.parametrize(
    ("prefix", "max_keys", "pages"),
    [
        ("", 1, [(["asdf"], [], "asdf"), ([], ["boo/"], "boo/"), ([], ["cquux/"], None)]),
        ("", 2, [(["asdf"], ["boo/"], "boo/"), ([], ["cquux/"], None)]),
        ("boo/", 1, [(["boo/bar"], [], "boo/bar"), ([], ["boo/baz/"], None)]),
        ("boo/", 2, [(["boo/bar"], ["boo/baz/"], None)]),
    ],
)
def test_the_pages_s3_tests_expect_with_a_delimiter(
    prefix: str, max_keys: int, pages: list[tuple[list[str], list[str], str | None]]
) -> None:
    entries = _keys(S3_TESTS_KEYS)
    after: str | None = None
    for keys, prefixes, marker in pages:
        result = page(entries, prefix=prefix, delimiter="/", after=after, max_keys=max_keys)
        assert [e.key for e in result.contents] == keys
        assert list(result.common_prefixes) == prefixes
        assert result.is_truncated == (marker is not None)
        assert result.next_marker == marker
        after = marker


@pytest.mark.parametrize(
    ("delimiter", "keys", "prefixes"),
    [
        ("a", ["foo"], ["ba", "ca"]),
        ("\n", ["bar", "baz", "cab", "foo"], []),
        ("", ["bar", "baz", "cab", "foo"], []),
        (None, ["bar", "baz", "cab", "foo"], []),
        ("ab", ["bar", "baz", "foo"], ["cab"]),
    ],
)
def test_any_string_delimits(delimiter: str | None, keys: list[str], prefixes: list[str]) -> None:
    result = page(_keys(["bar", "baz", "cab", "foo"]), delimiter=delimiter)
    assert [e.key for e in result.contents] == keys
    assert list(result.common_prefixes) == prefixes


def test_markers_outside_the_keys_and_a_zero_page() -> None:
    entries = _keys(["bar", "baz", "foo", "quxx"])
    assert [e.key for e in page(entries, after="blah").contents] == ["foo", "quxx"]
    past = page(entries, after="zzz")
    assert (past.contents, past.is_truncated) == ((), False)
    assert [e.key for e in page(entries, after="\n").contents] == ["bar", "baz", "foo", "quxx"]
    zero = page(entries, max_keys=0)
    assert (zero.contents, zero.common_prefixes, zero.is_truncated, zero.next_marker) == (
        (),
        (),
        False,
        None,
    )
    with pytest.raises(ValueError, match="negative"):
        page(entries, max_keys=-1)


def test_a_prefix_that_ends_with_the_delimiter_lists_its_own_key() -> None:
    result = page(_keys(["asdf/"]), prefix="asdf/", delimiter="/")
    assert [e.key for e in result.contents] == ["asdf/"]
    assert result.common_prefixes == ()


def test_a_marker_inside_a_common_prefix_skips_the_prefix() -> None:
    entries = _keys(["a/1", "a/2", "a/3", "b"])
    assert _flat(page(entries, delimiter="/", after="a/2")) == ["b"]
    assert _flat(page(entries, delimiter="/", after="a/")) == ["b"]
    assert _flat(page(entries, delimiter="/", after="a")) == ["P:a/", "b"]
    assert _flat(page(entries, after="a/2")) == ["a/3", "b"]


UPLOAD_KEYS = st.text(alphabet="ab/", min_size=1, max_size=4)


@given(
    uploads=st.lists(st.tuples(UPLOAD_KEYS, st.sampled_from(["u1", "u2", "u3"])), max_size=20),
    delimiter=st.sampled_from([None, "/"]),
    max_uploads=st.integers(1, 5),
)
def test_paging_uploads_with_both_markers_loses_and_repeats_nothing(
    uploads: list[tuple[str, str]], delimiter: str | None, max_uploads: int
) -> None:
    items = [Upload(key, uid, WHEN) for key, uid in sorted(set(uploads))]
    whole = page_uploads(items, upload_id=lambda u: u.upload_id, delimiter=delimiter)
    seen: list[object] = []
    key_marker = id_marker = None
    for _ in range(len(items) + 2):
        result = page_uploads(
            items,
            upload_id=lambda u: u.upload_id,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=id_marker,
            max_uploads=max_uploads,
        )
        assert len(result.uploads) + len(result.common_prefixes) <= max_uploads
        seen.extend(result.uploads)
        seen.extend(result.common_prefixes)
        if not result.is_truncated:
            break
        key_marker, id_marker = result.next_key_marker, result.next_upload_id_marker
    assert sorted(seen, key=repr) == sorted([*whole.uploads, *whole.common_prefixes], key=repr)
    assert len(seen) == len(set(seen))
    if delimiter is None:
        assert whole.uploads == tuple(items)


def test_the_upload_id_marker_counts_only_for_its_key() -> None:
    items = [Upload(k, u, WHEN) for k, u in [("a", "1"), ("a", "2"), ("b", "1")]]
    by_id = page_uploads(
        items, upload_id=lambda u: u.upload_id, key_marker="a", upload_id_marker="1"
    )
    assert [(u.key, u.upload_id) for u in by_id.uploads] == [("a", "2"), ("b", "1")]
    by_key = page_uploads(items, upload_id=lambda u: u.upload_id, key_marker="a")
    assert [(u.key, u.upload_id) for u in by_key.uploads] == [("b", "1")]
    alone = page_uploads(items, upload_id=lambda u: u.upload_id, upload_id_marker="1")
    assert len(alone.uploads) == 3
    first = page_uploads(items, upload_id=lambda u: u.upload_id, max_uploads=1)
    assert (first.next_key_marker, first.next_upload_id_marker) == ("a", "1")


@given(count=st.integers(0, 30), marker=st.integers(0, 35), max_parts=st.integers(0, 8))
def test_parts_page_after_the_marker(count: int, marker: int, max_parts: int) -> None:
    parts = [Part(n, 5, "e", WHEN) for n in range(1, count + 1)]
    result = page_parts(parts, part_number_marker=marker, max_parts=max_parts)
    after_marker = [n for n in range(1, count + 1) if n > marker]
    expected = after_marker[:max_parts]
    assert [p.part_number for p in result.parts] == expected
    assert result.is_truncated == (max_parts > 0 and len(after_marker) > max_parts)
    assert result.next_part_number_marker == (expected[-1] if result.is_truncated else None)


@given(name=st.text(min_size=1).filter(lambda n: not any(0xD800 <= ord(c) <= 0xDFFF for c in n)))
def test_continuation_tokens_round_trip_and_stay_url_safe(name: str) -> None:
    token = encode_token(name)
    assert decode_token(token) == name
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in token)


@pytest.mark.parametrize("token", ["!!", "a", "abc$", "_w", "x" * 5000, "//8", "gA"])
def test_a_token_not_ours_is_an_invalid_argument(token: str) -> None:
    with pytest.raises(S3Error) as caught:
        decode_token(token)
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status == 400
    assert caught.value.fields["ArgumentName"] == "continuation-token"


def test_where_a_v2_listing_resumes() -> None:
    assert decode_token("") is None
    assert resume_after(None, None) is None
    assert resume_after("", "") is None
    assert resume_after("bar", None) == "bar"
    assert resume_after("bar", encode_token("foo")) == "foo"
    assert resume_after("bar", "") == "bar"
