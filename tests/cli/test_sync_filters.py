"""`metadisk sync`'s --include/--exclude globs (rclone-like) and its stored mtime format."""

from __future__ import annotations

import pytest

from metadisk.cli.errors import UsageError
from metadisk.cli.sync import Filters, _format_mtime, _parse_mtime


def test_an_unanchored_glob_matches_the_end_of_a_path_at_a_slash() -> None:
    logs = Filters([], ["*.log"])
    assert not logs.wants("a.log")
    assert not logs.wants("deep/er/b.log")
    assert logs.wants("a.log.txt")
    named = Filters([], ["b/c.txt"])
    assert not named.wants("a/b/c.txt")
    assert named.wants("ab/c.txt")  # "b/" must start a component


def test_a_leading_slash_anchors_at_the_top_and_stars_stay_in_a_component() -> None:
    top = Filters([], ["/top.txt"])
    assert not top.wants("top.txt")
    assert top.wants("dir/top.txt")
    one_level = Filters([], ["/dir/*"])
    assert not one_level.wants("dir/a")
    assert one_level.wants("dir/sub/a")
    every_level = Filters([], ["/dir/**"])
    assert not every_level.wants("dir/sub/a")


def test_excludes_win_and_includes_narrow() -> None:
    rules = Filters(["*.jpg", "*.png"], ["/private/**"])
    assert rules.wants("a/cat.jpg")
    assert rules.wants("dog.png")
    assert not rules.wants("notes.txt")
    assert not rules.wants("private/cat.jpg")
    assert Filters([], []).wants("anything/at/all")


def test_question_mark_is_one_character_not_a_slash() -> None:
    rules = Filters(["f?.txt"], [])
    assert rules.wants("f1.txt")
    assert not rules.wants("f12.txt")
    assert not rules.wants("f/.txt")


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(UsageError):
        Filters([""], [])


def test_mtimes_keep_nanoseconds_and_foreign_values_read_as_absent() -> None:
    ns = 1_733_000_000_123_456_789
    assert _format_mtime(ns) == "1733000000.123456789"
    assert _parse_mtime(_format_mtime(ns)) == ns
    assert _parse_mtime("1733000000") == 1_733_000_000 * 10**9
    assert _parse_mtime("1733000000.5") == 1_733_000_000_500_000_000
    assert _parse_mtime("yesterday") is None
    assert _parse_mtime(None) is None
