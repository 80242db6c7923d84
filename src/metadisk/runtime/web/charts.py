"""SVG charts rendered on the server: a bar chart and a line chart, accessible and script-free.

Each chart is one ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that states every
value, so screen readers get the numbers, and no style attribute (the pages' CSP allows only the
stylesheet): colours come from classes in ``metadisk.css``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values, one per label; `css` names its colour class."""

    name: str
    values: Sequence[float]
    css: str = "series-a"


def _scale(series: Sequence[Series]) -> float:
    top = max((v for s in series for v in s.values), default=0.0)
    return top if top > 0 else 1.0


def _frame(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: Callable[[float], str],
    body: list[str],
) -> str:
    top = _scale(series)
    inner_h = HEIGHT - TOP - BOTTOM
    described = "; ".join(
        f"{s.name}: "
        + ", ".join(f"{label} {unit(v)}" for label, v in zip(labels, s.values, strict=False))
        for s in series
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(described) or 'no data'}</desc>",
    ]
    for step in range(5):
        value = top * step / 4
        y = TOP + inner_h - inner_h * step / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(unit(value))}</text>"
        )
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts += body
    for n, s in enumerate(series):
        x = LEFT + n * 150
        parts.append(
            f'<rect class="{escape(s.css)}" x="{x}" y="{HEIGHT - 12}" width="10" height="10"/>'
        )
        parts.append(f'<text class="legend" x="{x + 14}" y="{HEIGHT - 3}">{escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Grouped bars: one group per label, one bar per series."""
    top = _scale(series)
    inner_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = slot * 0.8 / max(len(series), 1)
    body = []
    for n, s in enumerate(series):
        for i, value in enumerate(s.values):
            h = inner_h * max(value, 0) / top
            x = LEFT + slot * i + slot * 0.1 + width * n
            body.append(
                f'<rect class="{escape(s.css)}" x="{x:.1f}" y="{TOP + inner_h - h:.1f}" '
                f'width="{width:.1f}" height="{h:.1f}"><title>{escape(labels[i])}: '
                f"{escape(unit(value))}</title></rect>"
            )
    return _frame(title, labels, series, unit, body)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """One line per series over the labels."""
    top = _scale(series)
    inner_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    body = []
    for s in series:
        points = " ".join(
            f"{LEFT + slot * (i + 0.5):.1f},{TOP + inner_h - inner_h * max(v, 0) / top:.1f}"
            for i, v in enumerate(s.values)
        )
        body.append(f'<polyline class="line {escape(s.css)}" points="{points}"/>')
    return _frame(title, labels, series, unit, body)
