"""The farmer's dashboard (farmer/dashboard) on an in-process peer, and what it needs: bandwidth
per day, the [dashboard] settings, the standing cache, the ring of recent problems.

The browser tests (tests/browser/test_dashboard.py) read the page against a whole network."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path

import aiohttp
import pytest

from metadisk.core.identity import Identity
from metadisk.devnet.farmer import FarmerProcess
from metadisk.farmer.config import LISTEN_FILE, DashboardConfig, config_from_toml, config_to_toml
from metadisk.farmer.dashboard.bridges import StandingCache
from metadisk.farmer.dashboard.recent import RecentProblems
from metadisk.farmer.db import FarmerDB
from metadisk.farmer.errors import SetupError
from metadisk.farmer.peer import Peer, running
from metadisk.farmer.usage.service import DAY, UsageService
from metadisk.runtime.web import SECURITY_HEADERS
from metadisk.wire.dataplane.contract import STATUS, NodeReport
from tests.farmer.helpers import Bridge, Clock, get, make_config, put


def _value(html: str, block: str) -> int:
    """The data-value of the stat with id `block`."""
    match = re.search(rf'id="{block}"><dt>[^<]*</dt><dd data-value="(\d+)"', html)
    assert match, f"no {block} on the page"
    return int(match.group(1))


async def _report(session: aiohttp.ClientSession, peer: Peer) -> NodeReport:
    async with session.get(peer.address + STATUS) as answer:
        assert answer.status == 200
        return NodeReport.model_validate_json(await answer.read())


async def test_the_page_shows_the_status_figures_and_carries_the_security_headers(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    assert peer.dashboard is not None
    node = peer.identity.node_id.hex()
    data = os.urandom(300_000)
    pid, _ = await put(session, peer.address, bridge, node, data, now=clock.now)
    await put(session, peer.address, bridge, node, os.urandom(50_000), now=clock.now)
    status, body, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
    assert (status, body) == (200, data)

    async with session.get(peer.dashboard.url) as answer:
        assert answer.status == 200
        assert answer.content_type == "text/html"
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value
        html = await answer.text()
    report = await _report(session, peer)
    assert report.pieces == 2 and report.used > 350_000
    for block, value in {
        "space-allocated": report.allocated,
        "space-used": report.used,
        "space-free": report.free,
        "space-trash": report.trash,
        "space-pieces": report.pieces,
        "bandwidth-in": 350_000,
        "bandwidth-out": 300_000,
    }.items():
        assert _value(html, block) == value, block
    today = report.days[-1]
    assert (today.bandwidth_in, today.bandwidth_out) == (350_000, 300_000)
    assert f'data-day="{today.day}"' in html
    assert report.node_id in html and report.address in html
    # The bridge is nowhere: its row says why there is no standing, and the page still answers.
    assert "[unreachable]" in html

    async with session.get(peer.dashboard.url + "static/dashboard.js") as answer:
        assert answer.status == 200 and answer.content_type == "text/javascript"
        assert (
            answer.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
        )
    async with session.get(peer.dashboard.url + "static/metadisk.css") as answer:
        assert answer.status == 200 and answer.content_type == "text/css"
    async with session.get(peer.dashboard.url + "static/..%2Ffarmer.db") as answer:
        assert answer.status == 404
    async with session.post(peer.dashboard.url) as answer:
        assert answer.status == 405  # nothing on the dashboard changes state


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"Origin": "SELF"}, True),
        ({"Host": "localhost:PORT"}, True),
        ({"Host": "evil.example:PORT"}, False),  # a DNS-rebinding page's own name
        ({"Host": "127.0.0.1:1"}, False),
        ({"Host": "127.0.0.1"}, False),
        ({"Host": ""}, False),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "http://127.0.0.1:1"}, False),
        ({"Origin": "https://SELFHOST"}, False),
        ({"Origin": "null"}, False),
    ],
)
async def test_requests_naming_another_host_or_origin_are_refused(
    peer: Peer, session: aiohttp.ClientSession, headers: dict[str, str], allowed: bool
) -> None:
    assert peer.dashboard is not None
    port = str(peer.dashboard.port)
    own = f"127.0.0.1:{port}"
    headers = {
        k: v.replace("SELFHOST", own).replace("SELF", f"http://{own}").replace("PORT", port)
        for k, v in headers.items()
    }
    for path in ("", "static/dashboard.js"):
        async with session.get(peer.dashboard.url + path, headers=headers) as answer:
            assert (answer.status == 200) is allowed, (headers, answer.status)
            assert answer.headers["X-Frame-Options"] == "DENY"


async def test_the_dashboard_is_not_on_the_data_plane(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    assert peer.dashboard is not None and peer.dashboard.port != peer.server.port
    async with session.get(peer.address + "/") as answer:
        assert answer.status == 404


async def test_the_page_lists_the_farmers_recent_warnings(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    assert peer.dashboard is not None
    logging.getLogger("metadisk.farmer.pieces").warning("disk <slow> on %s", "sdb")
    logging.getLogger("metadisk.farmer.pieces").info("not a problem")
    async with session.get(peer.dashboard.url) as answer:
        html = await answer.text()
    assert "disk &lt;slow&gt; on sdb" in html  # escaped, as everything shown
    assert "not a problem" not in html


async def test_a_disabled_dashboard_listens_nowhere(tmp_path: Path, bridge: Bridge) -> None:
    config = make_config(tmp_path, bridge.trusted, dashboard=DashboardConfig(enabled=False))
    async with running(config, Identity.generate()) as peer:
        assert peer.dashboard is None


async def test_bandwidth_is_kept_per_day_across_flushes_and_restarts(tmp_path: Path) -> None:
    clock = Clock()
    db = FarmerDB(tmp_path / "farmer.db")
    await db.open()
    try:
        usage = UsageService(db, clock=clock)
        a, b = b"a" * 32, b"b" * 32
        usage.record_in(a, 100)
        usage.record_out(b, 7)
        await usage.flush()
        usage.record_in(b, 20)  # not flushed yet: counted all the same
        clock.now += DAY
        usage.record_out(a, 5)
        days = await usage.days(3)
        today = int(clock.now // DAY)
        assert [(d.day, d.bandwidth_in, d.bandwidth_out) for d in days] == [
            (today - 2, 0, 0),
            (today - 1, 120, 7),
            (today, 0, 5),
        ]
        await usage.flush()
        again = UsageService(db, clock=clock)
        await again.load()
        assert await again.days(3) == days
        assert (
            again.snapshot()[a.hex()]["bandwidth_in"],
            again.snapshot()[b.hex()]["bandwidth_in"],
        ) == (100, 20)
        assert [d.bandwidth_in for d in await again.days(1)] == [0]
    finally:
        await db.close()


async def test_days_during_a_flush_count_each_byte_once(tmp_path: Path) -> None:
    db = FarmerDB(tmp_path / "farmer.db")
    await db.open()
    try:
        usage = UsageService(db)
        for _ in range(50):
            usage.record_in(b"a" * 32, 3)
            days, _ = await asyncio.gather(usage.days(1), usage.flush())
            flushed_first = (await asyncio.gather(usage.flush(), usage.days(1)))[1]
            assert days[-1].bandwidth_in == flushed_first[-1].bandwidth_in
        assert (await usage.days(1))[-1].bandwidth_in == 150
    finally:
        await db.close()


def test_the_dashboard_settings_round_trip_and_stay_on_loopback(tmp_path: Path) -> None:
    bridge = Bridge.new()
    config = make_config(tmp_path, bridge.trusted, dashboard=DashboardConfig(port=8081))
    text = config_to_toml(config)
    section = '[dashboard]\nenabled = true\nhost = "127.0.0.1"\nport = 8081\n'
    assert section in text
    assert config_from_toml(text, config.data_dir) == config
    assert config_from_toml(text.replace(section, ""), config.data_dir).dashboard == (
        DashboardConfig()
    )
    for bad in ('host = "0.0.0.0"', 'host = "localhost"', "port = 70000", "enabled = 1", "x = 1"):
        with pytest.raises(SetupError, match="dashboard"):
            config_from_toml(text.replace(section, f"[dashboard]\n{bad}\n"), config.data_dir)
    assert DashboardConfig(host="::1").host == "::1"
    with pytest.raises(ValueError, match="loopback"):
        DashboardConfig(host="192.168.1.2")


async def test_standings_are_cached_for_a_while(tmp_path: Path) -> None:
    moments = [100.0]
    cache = StandingCache(
        Identity.generate(),
        [Bridge.new().trusted],
        ttl=30,
        per_bridge=2,
        monotonic=lambda: moments[0],
    )
    first, second = await asyncio.gather(cache.get(), cache.get())
    assert cache.rounds == 1 and first == second
    assert first[0].code == "unreachable"
    moments[0] += 29
    await cache.get()
    assert cache.rounds == 1 and cache.refreshing is None
    moments[0] += 1
    # Old answers: shown at once, and one round (not one per load) asks again behind them.
    assert await asyncio.gather(cache.get(), cache.get()) == [first, first]
    refresh = cache.refreshing
    assert refresh is not None
    await refresh
    assert cache.rounds == 2 and cache.asked_at == moments[0]
    await cache.close()


def test_the_ring_keeps_the_latest_problems() -> None:
    ring = RecentProblems(keep=3)
    logger = logging.getLogger("metadisk.test.ring")
    ring.attach(logger.name)
    try:
        for n in range(5):
            logger.warning("problem %d", n)
        logger.info("fine")
    finally:
        ring.detach()
    logger.error("after detach")
    assert [p.message for p in ring.latest()] == ["problem 4", "problem 3", "problem 2"]


async def test_a_farmer_process_announces_its_dashboard_which_lists_its_failed_checkins(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    url = farmer.dashboard_url
    assert url is not None and url.startswith("http://127.0.0.1:")
    listen = json.loads((farmer.data_dir / LISTEN_FILE).read_text())
    assert listen["dashboard_url"] == url
    assert int(url.rsplit(":", 1)[1].rstrip("/")) != farmer.port
    # Its bridge is nowhere, so its first check-in failed with a warning: the page shows it.
    async with session.get(url) as answer:
        html = await answer.text()
    assert "check-in with http://127.0.0.1:9 failed" in html
    assert farmer.node_id in html


async def test_a_dashboard_port_in_use_is_a_setup_error(peer: Peer, tmp_path: Path) -> None:
    assert peer.dashboard is not None
    taken = DashboardConfig(port=peer.dashboard.port)
    (tmp_path / "second").mkdir()
    config = make_config(tmp_path / "second", Bridge.new().trusted, dashboard=taken)
    with pytest.raises(SetupError, match="dashboard") as raised:
        async with running(config, Identity.generate()):
            pass
    assert raised.value.code == "port-in-use"
