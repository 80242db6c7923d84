"""Times as people read them in the CLI's tables: how long ago, not a unix number."""

from __future__ import annotations

import time

_STEPS = ((60, 1, "s"), (3600, 60, "min"), (2 * 86400, 3600, "h"))


def ago(moment: int | None, now: float) -> str:
    """``"12 s ago"``, ``"5 min ago"``, ``"3 h ago"``, ``"4 d ago"``; ``"never"`` for None."""
    if moment is None:
        return "never"
    seconds = int(now) - moment
    # Another machine's clock may run ahead of ours by a little: that is "now", not the future.
    if -60 < seconds < 1:
        return "just now"
    span = abs(seconds)
    for limit, unit, name in _STEPS:
        if span < limit:
            amount = f"{span // unit} {name}"
            break
    else:
        amount = f"{span // 86400} d"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def utc(moment: int) -> str:
    """``"2026-12-04 22:40:03 UTC"``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))
