"""Sizes in one unit family: bytes exact, or binary units (KiB, MiB, GiB), never kB or MB."""

from __future__ import annotations

import pytest

from metadisk.cli import units


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * 1024**2, "3.0 MiB"),
        (5 * 1024**3 + 1, "5.0 GiB"),
        (2 * 1024**4, "2.0 TiB"),
        (1 << 62, "4.0 EiB"),
    ],
)
def test_human_sizes_use_binary_units(count: int, shown: str) -> None:
    assert units.size(count, human=True) == shown


def test_exact_sizes_are_plain_bytes() -> None:
    assert units.size(1536, human=False) == "1536"
