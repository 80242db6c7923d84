"""The farmer dashboard in Chromium, against a real network: a bridge and farmer processes on
127.0.0.1, data uploaded and read back with the library, so that the figures are not zeros.

The page's figures are compared with the farmer's status endpoint (``metadisk farmer status``
reads the same JSON); a page that another name or origin reaches is refused.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from metadisk.client import Project
from metadisk.devnet.farmer import FarmerProcess
from metadisk.runtime.web import SECURITY_HEADERS, human_size
from metadisk.wire.dataplane.contract import STATUS, NodeReport
from tests.browser.conftest import ARGS, CHROMIUM
from tests.e2e.harness import SMALL, BackgroundNetwork, background_network, wait_for

MiB = 1 << 20
SPACE = ("allocated", "used", "free", "trash", "pieces")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    """Four farmers holding an uploaded object, which was read back once (egress)."""
    with background_network(tmp_path_factory.mktemp("dash-network"), farmers=4) as running:
        tenant = running.tenant()
        with Project.open(tenant.grant, config=SMALL) as project:
            project.create_bucket("dash")
            data = os.urandom(3 * MiB)
            project.upload("dash", "photos/one.bin", data)
            project.upload("dash", "photos/two.bin", os.urandom(MiB // 2))
            sink = io.BytesIO()
            project.download("dash", "photos/one.bin", sink)
            assert sink.getvalue() == data
        yield running


def status(farmer: FarmerProcess) -> NodeReport:
    """The farmer's status endpoint, as `metadisk farmer status` asks it."""
    listen = json.loads((farmer.data_dir / "listen.json").read_text())
    with urllib.request.urlopen(listen["local_url"] + STATUS, timeout=10) as answer:
        return NodeReport.model_validate_json(answer.read())


def figures(report: NodeReport) -> dict[str, Any]:
    """What the page shows of a report (all of it but the uptime, which moves)."""
    shown: dict[str, Any] = {name: getattr(report, name) for name in SPACE}
    shown["bandwidth-in"] = sum(u.bandwidth_in for u in report.bridges.values())
    shown["bandwidth-out"] = sum(u.bandwidth_out for u in report.bridges.values())
    shown["days"] = {
        d.day: (d.bandwidth_in, d.bandwidth_out)
        for d in report.days
        if d.bandwidth_in or d.bandwidth_out
    }
    return shown


def page_figures(page: Any) -> dict[str, Any]:
    """The same figures read off the page: each stat's exact value and its visible text."""
    shown: dict[str, Any] = {}
    for name in (*SPACE, "bandwidth-in", "bandwidth-out"):
        block = "space-" + name if name in SPACE else name
        dd = page.locator(f"#{block} dd")
        value = int(dd.get_attribute("data-value"))
        text = dd.inner_text().strip()
        assert text == (f"{value:,}" if name == "pieces" else human_size(value)), (name, text)
        shown[name] = value
    shown["days"] = {}
    rows = page.locator("#days tbody tr")
    for n in range(rows.count()):
        row = rows.nth(n)
        cells = row.locator("td")
        shown["days"][row.get_attribute("data-day")] = (
            int(cells.nth(0).get_attribute("data-value")),
            int(cells.nth(1).get_attribute("data-value")),
        )
    return shown


def busiest(network: BackgroundNetwork) -> FarmerProcess:
    """The farmer that sent the most (a download reads a few farmers' pieces, not every one)."""

    def sent(farmer: FarmerProcess) -> tuple[int, int]:
        report = status(farmer)
        return sum(u.bandwidth_out for u in report.bridges.values()), report.pieces

    return max(network.farmers, key=sent)


def test_the_dashboard_shows_what_the_status_endpoint_says(
    network: BackgroundNetwork, context: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    farmer = busiest(network)
    assert farmer.dashboard_url is not None
    before = status(farmer)
    assert before.pieces > 0 and before.used > 0
    assert figures(before)["bandwidth-in"] > 0 and figures(before)["bandwidth-out"] > 0

    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))  # CSP refusals land here
    page.on("pageerror", lambda error: problems.append(str(error)))
    for _ in range(5):  # audits may move a figure between two reads: read until it holds still
        answer = page.goto(farmer.dashboard_url)
        assert answer is not None and answer.status == 200
        shown = page_figures(page)
        after = status(farmer)
        if figures(before) == figures(after):
            break
        before = after
    assert shown == figures(before)
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name.lower()] == value

    assert page.locator("#node-id").inner_text() == farmer.node_id
    assert page.locator("#node-address dd").inner_text() == farmer.url
    # The bridge answered for this node: its scores, flags and uptime are on the row.
    bridge_id = next(iter(before.bridges))
    row = page.locator(f'tr[data-bridge="{bridge_id}"]')
    assert row.locator('[data-field="audit_score"]').inner_text() == "1.000"
    assert float(row.locator('[data-field="online_score"]').inner_text()) > 0
    assert row.locator('[data-field="disqualified"]').inner_text() == "no"
    assert row.locator('[data-field="suspended"]').inner_text() == "no"
    assert row.locator('[data-field="vetted"]').inner_text().startswith(("yes", "no"))
    assert row.locator('[data-field="uptime"]').count() == 1
    assert page.locator("#node-checkin dd").inner_text() != "never"
    chart = page.locator("#bandwidth svg[role=img]")
    today = before.days[-1]
    described = chart.locator("desc").text_content() or ""
    assert f"{today.day[5:]} {human_size(today.bandwidth_in)}" in described.split("; ")[0]
    assert f"{today.day[5:]} {human_size(today.bandwidth_out)}" in described.split("; ")[1]
    summary = page.locator("details summary")
    summary.focus()
    page.keyboard.press("Enter")  # the table of days opens from the keyboard
    assert page.locator("details").get_attribute("open") is not None
    screenshot(page, "dashboard-overview")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "dashboard-phone")
    assert problems == []


def test_the_page_refreshes_its_figures_in_place(network: BackgroundNetwork, context: Any) -> None:
    farmer = busiest(network)
    assert farmer.dashboard_url is not None
    page = context.new_page()
    page.goto(farmer.dashboard_url)
    page.locator("#live").evaluate("live => { live.dataset.stale = 'yes'; }")
    shown = int(page.locator("#space-used dd").get_attribute("data-value"))
    with Project.open(network.tenant().grant, config=SMALL) as project:
        project.create_bucket("more")
        project.upload("more", "three.bin", os.urandom(MiB))
    # The script fetches the page again every 15 s (or when the tab shows again) and swaps the
    # figures in; nudge it through the visibility event rather than wait.
    wait_for(lambda: status(farmer).used != shown or None, "the new upload reached this farmer", 30)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#space-used dd")).not_to_have_attribute(
        "data-value", str(shown), timeout=10_000
    )
    assert int(page.locator("#space-used dd").get_attribute("data-value")) == status(farmer).used
    assert page.locator("#live").get_attribute("data-stale") == "yes"  # swapped inside, no reload


@contextlib.contextmanager
def attacker_page() -> Iterator[str]:
    """A plain page on another loopback port, reached by another name: another site's origin."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title><p>another site"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://rebind.test:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_foreign_host_or_origin_is_refused(network: BackgroundNetwork, browser: Any) -> None:
    farmer = network.farmers[0]
    assert farmer.dashboard_url is not None
    port = farmer.dashboard_url.rstrip("/").rsplit(":", 1)[1]
    # DNS rebinding: a name of the attacker's resolving to 127.0.0.1. The browser sends that name
    # as Host, and the dashboard refuses it.
    rebound = browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"]
    )
    try:
        page = rebound.new_page()
        answer = page.goto(f"http://rebind.test:{port}/")
        assert answer is not None and answer.status == 403
        assert "Host header" in page.content()
        assert farmer.node_id not in page.content()
        # And a page of another origin (on loopback too) that fetches the dashboard: the
        # request carries its Origin and is refused, not merely unreadable to that page.
        # (The route passes the browser's request on as it is, to see the server's answer; a
        # route's answer skips the browser's CORS check, so the page's own view proves nothing.)
        answered: list[tuple[str | None, int]] = []

        def through(route: Any) -> None:
            response = route.fetch()
            answered.append((route.request.all_headers().get("origin"), response.status))
            route.fulfill(response=response)

        with attacker_page() as attacker:
            page.goto(attacker)
            page.route(farmer.dashboard_url, through)
            page.evaluate("url => fetch(url).catch(() => null)", farmer.dashboard_url)
        assert answered == [(attacker.rstrip("/"), 403)]
    finally:
        rebound.close()
    # The same request from the loopback origin itself is answered.
    with urllib.request.urlopen(farmer.dashboard_url, timeout=10) as answer:
        assert answer.status == 200
    request = urllib.request.Request(farmer.dashboard_url, headers={"Origin": "http://evil.test"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
