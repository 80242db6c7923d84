"""How the CLI's tables say when something happened."""

from __future__ import annotations

import pytest

from metadisk.cli.humanize import ago, utc

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        (None, "never"),
        (NOW, "just now"),
        (NOW + 30, "just now"),  # a bridge's clock a little ahead of ours
        (NOW - 1, "1 s ago"),
        (NOW - 59, "59 s ago"),
        (NOW - 60, "1 min ago"),
        (NOW - 3599, "59 min ago"),
        (NOW - 3600, "1 h ago"),
        (NOW - 47 * 3600, "47 h ago"),
        (NOW - 2 * 86400, "2 d ago"),
        (NOW - 400 * 86400, "400 d ago"),
        (NOW + 600, "in 10 min"),
    ],
)
def test_ago(moment: int | None, shown: str) -> None:
    assert ago(moment, NOW) == shown


def test_utc() -> None:
    assert utc(NOW) == "2027-01-15 08:00:00 UTC"
