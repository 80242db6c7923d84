"""Fixtures for the client tests: offloads, in-memory farmers and the pipeline's bridge double."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from metadisk.client.offload import Offload
from metadisk.core.erasure import LOCAL
from metadisk.core.identity import Identity
from tests.client.doubles import MemoryFarmers, PipelineBridge


@pytest_asyncio.fixture
async def offload() -> AsyncIterator[Offload]:
    """Threads: unit tests need no worker processes (one test covers those on its own)."""
    pool = Offload(processes=False, workers=2)
    yield pool
    await pool.aclose()


@pytest.fixture
def bridge_identity() -> Identity:
    return Identity.generate()


@pytest.fixture
def farmers(bridge_identity: Identity) -> MemoryFarmers:
    """Thirteen in-memory farmers: ten for a LOCAL segment and three spares."""
    return MemoryFarmers(13, bridge_identity)


@pytest.fixture
def bridge(farmers: MemoryFarmers, bridge_identity: Identity) -> PipelineBridge:
    return PipelineBridge(list(farmers.farmers), LOCAL, bridge_identity)
