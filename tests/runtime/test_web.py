"""The shared web pieces: headers, static files, templates and SVG charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.runtime import web
from metadisk.runtime.web.charts import Series, bar_chart, line_chart


def test_csp_allows_only_this_origin() -> None:
    policy = web.SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


def test_static_files_are_only_the_shared_ones() -> None:
    css, kind = web.static("metadisk.css")
    assert kind == "text/css" and b"--accent" in css
    for name in ("../__init__.py", "__init__.py", "missing.css", ".hidden.css", "a/b.css"):
        with pytest.raises(KeyError):
            web.static(name)


def test_a_roles_own_static_files_come_first_then_the_shared_ones() -> None:
    script, kind = web.static("files.js", "metadisk.gateway.web")
    assert kind == "text/javascript" and script
    assert web.static("metadisk.css", "metadisk.gateway.web") == web.static("metadisk.css")
    with pytest.raises(KeyError):
        web.static("files.js")  # not a shared file
    with pytest.raises(KeyError):
        web.static("../web/__init__.py", "metadisk.gateway.web")


def test_templates_escape_what_they_show() -> None:
    env = web.environment("metadisk.runtime.web")
    page = env.from_string(
        '{% extends "base.html" %}{% block main %}{{ name }}{% endblock %}'
    ).render(name="<script>alert(1)</script>", static_url="/static/")
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_sizes_read_as_the_cli_shows_them() -> None:
    assert [web.human_size(n) for n in (0, 1023, 1536, 5 << 30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
    ]


values = st.lists(st.floats(min_value=0, max_value=1e15, allow_nan=False), min_size=0, max_size=40)


@given(values, st.sampled_from([bar_chart, line_chart]))
def test_charts_are_valid_svg_stating_every_value(points: list[float], chart: object) -> None:
    labels = [f"d{i}" for i in range(len(points))]
    svg = chart("Egress <per day>", labels, [Series("egress", points)])  # type: ignore[operator]
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Egress <per day>"
    desc = root.find("{http://www.w3.org/2000/svg}desc")
    assert desc is not None and desc.text
    assert "style=" not in svg  # the CSP allows no inline style
