"""Fixtures of the gateway tests: one network and one gateway per test worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import BackgroundNetwork, background_network
from tests.gateway.harness import S3World, boto3_client, fresh_bucket_name, start_world


@pytest.fixture(scope="session")
def s3_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    with background_network(tmp_path_factory.mktemp("s3-network"), farmers=6) as running:
        yield running


@pytest.fixture(scope="session")
def world(
    s3_network: BackgroundNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3World]:
    made = start_world(tmp_path_factory.mktemp("gateway"), s3_network.tenant())
    try:
        yield made
    finally:
        made.gateway.stop_sync()


@pytest.fixture
def s3(world: S3World) -> Any:
    return boto3_client(world)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = fresh_bucket_name()
    s3.create_bucket(Bucket=name)
    return name
