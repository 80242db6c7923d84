"""Sizes as the CLI prints them: exact bytes, or one binary unit family (KiB, MiB, GiB, ...)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size(count: int, *, human: bool) -> str:
    """``"1536"``, or with `human` ``"1.5 KiB"`` (always powers of 1024, never kB or MB)."""
    if not human:
        return str(count)
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
