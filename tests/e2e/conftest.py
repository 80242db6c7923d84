"""Fixtures of the end-to-end tests: one real network per test worker, a tenant per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.devnet.network import Tenant
from tests.e2e.harness import BackgroundNetwork, InProcessCli, background_network, write_config


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    """A bridge and ten farmers, shared by the tests that leave them running.

    Tests that kill or corrupt farmers make their own network (tests/e2e/test_failures.py).
    """
    with background_network(tmp_path_factory.mktemp("network"), farmers=10) as running:
        yield running


@pytest.fixture
def tenant(network: BackgroundNetwork) -> Tenant:
    """A fresh account, project, API key and full grant: tests never see each other's data."""
    return network.tenant()


@pytest.fixture
def config_dir(tmp_path: Path, tenant: Tenant) -> Path:
    return write_config(tmp_path / "config", tenant)


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str], config_dir: Path) -> InProcessCli:
    return InProcessCli(capfd, config_dir)
