"""Fixtures: a bridge identity, real farmer processes on ephemeral loopback ports, and an
in-process peer on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from metadisk.core.identity import Identity
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.peer import Peer, running
from tests.farmer.helpers import Bridge, Clock, make_config


@pytest.fixture
def bridge() -> Bridge:
    return Bridge.new()


@pytest_asyncio.fixture
async def farmer(
    tmp_path_factory: pytest.TempPathFactory, bridge: Bridge
) -> AsyncIterator[FarmerProcess]:
    """A farmer process trusting `bridge`, with 256 MiB allocated."""
    async with farmer_process(
        tmp_path_factory.mktemp("farmer") / "data",
        [bridge.trusted],
        allocated=256 << 20,
        checkin_interval=3600,
    ) as process:
        yield process


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand."""
    return Clock()


@pytest_asyncio.fixture
async def peer(tmp_path: Path, bridge: Bridge, clock: Clock) -> AsyncIterator[Peer]:
    """A real peer in the test's event loop (HTTP on an ephemeral port), chores paused."""
    async with running(
        make_config(tmp_path, bridge.trusted), Identity.generate(), clock=clock
    ) as p:
        for chore in p.chores:
            chore.pause()
        yield p
