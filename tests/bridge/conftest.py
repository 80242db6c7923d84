"""Fixtures: a real bridge process per test module (on SQLite, and again on PostgreSQL), farmer
doubles checked in with it, and tenants (user, project, root API key) per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from metadisk.bridge.config import sqlite_url
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.postgres import POSTGRES_ENV, postgres_database
from tests.bridge.helpers import Api, FarmerFleet, Tenant, checkin_all

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The module bridge's farmers are doubles that store nothing: an audit would disqualify them
# whenever a module outlived the first audit cycle. A failed ping-back holds its check-in for
# the ping timeout (no timing oracle), so a short one keeps the modules that take nodes down
# quick.
DOUBLES_SETTINGS = {
    "health": {"audit_interval": 86400.0, "node_audit_interval": 86400.0},
    "nodes": {"ping_timeout": 1.0},
}


def postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        reason = (
            f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against "
            "(scripts/test starts a throwaway cluster when PostgreSQL is installed)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"in CI the PostgreSQL tests must run: {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(params=ENGINES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test alone: a SQLite file in its tmp dir, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_database(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture(scope="module", params=ENGINES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the default SQLite file in the data dir, else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"), database_url=database_url, settings=DOUBLES_SETTINGS
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fleet(bridge: BridgeProcess) -> Iterator[FarmerFleet]:
    farmers = FarmerFleet(10, bridge_public_key=bridge.public_key)
    yield farmers
    farmers.close()


@pytest.fixture
async def api(bridge: BridgeProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, bridge.url)


@pytest.fixture
async def tenant(api: Api) -> Tenant:
    return await Tenant.create(api)


@pytest.fixture
async def online(api: Api, fleet: FarmerFleet) -> FarmerFleet:
    """The fleet, checked in (again) so that every farmer is online for this test."""
    await checkin_all(api, fleet.farmers)
    return fleet
