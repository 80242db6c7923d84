"""What the dashboard page shows, built from the node's report and the bridges' answers."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metadisk.core.identity import NodeId
from metadisk.farmer.config import TrustedBridge
from metadisk.farmer.dashboard.recent import Problem
from metadisk.farmer.standing import BridgeStanding
from metadisk.runtime.web import human_size
from metadisk.runtime.web.charts import Series, bar_chart
from metadisk.wire.api.nodes import NodeStanding
from metadisk.wire.dataplane.contract import BridgeUsage, NodeReport

CHART_DAYS = 14


@dataclass(frozen=True, slots=True)
class BridgeRow:
    """One trusted bridge's line: what this node holds for it and how it judges this node."""

    node_id: str
    url: str
    last_checkin: int | None
    usage: BridgeUsage | None
    standing: NodeStanding | None
    code: str | None
    message: str


def ago(moment: float | None, now: float) -> str:
    """``"12 s ago"``, ``"5 min ago"``, ``"3 h ago"``, ``"4 d ago"``; ``"never"`` for None."""
    if moment is None:
        return "never"
    seconds = int(now - moment)
    if seconds < 1:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def utc(moment: float) -> str:
    """``"2026-12-04 22:40:03 UTC"``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


def duration(seconds: float) -> str:
    """``"3 d 4 h"``, ``"5 h 12 min"``, ``"4 min 10 s"``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def bridge_rows(
    trusted: Sequence[TrustedBridge],
    report: NodeReport,
    answers: Sequence[BridgeStanding],
    last_checkin: Mapping[NodeId, int],
) -> list[BridgeRow]:
    """A row per trusted bridge, in the config's order."""
    by_id = {answer.bridge.node_id: answer for answer in answers}
    rows = []
    for bridge in trusted:
        answer = by_id.get(bridge.node_id)
        rows.append(
            BridgeRow(
                node_id=bridge.node_id.hex(),
                url=bridge.url,
                last_checkin=last_checkin.get(bridge.node_id),
                usage=report.bridges.get(bridge.node_id.hex()),
                standing=answer.standing if answer else None,
                code=answer.code if answer else "not-asked",
                message=answer.message if answer else "",
            )
        )
    return rows


def traffic_chart(report: NodeReport) -> str:
    """Bars of the last `CHART_DAYS` days' ingress and egress."""
    days = report.days[-CHART_DAYS:]
    return bar_chart(
        f"Bandwidth per day, last {len(days)} days (UTC)",
        [day.day[5:] for day in days],
        [
            Series("ingress", [float(day.bandwidth_in) for day in days], "series-a"),
            Series("egress", [float(day.bandwidth_out) for day in days], "series-b"),
        ],
        unit=human_size,
    )


def page_context(
    *,
    report: NodeReport,
    rows: Sequence[BridgeRow],
    problems: Sequence[Problem],
    standings_age: float | None,
    dashboard_url: str,
    now: float,
) -> dict[str, Any]:
    """The template's variables."""
    busy_days = [day for day in reversed(report.days) if day.bandwidth_in or day.bandwidth_out]
    return {
        "report": report,
        "rows": rows,
        "problems": problems,
        "chart": traffic_chart(report),
        "busy_days": busy_days,
        "total_in": sum(usage.bandwidth_in for usage in report.bridges.values()),
        "total_out": sum(usage.bandwidth_out for usage in report.bridges.values()),
        "standings_age": None if standings_age is None else int(standings_age),
        "dashboard_url": dashboard_url,
        "now": now,
        "ago": ago,
        "utc": utc,
        "duration": duration,
    }
