"""API key secrets at rest, against real bridge processes: the database alone rebuilds no key,
raw secrets of an older database are wrapped on start and keep working, and every process of a
database must load the same key-encryption key (KEK)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import insert, select

from metadisk.bridge.config import DatabaseConfig, sqlite_url
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.core.macaroon import APIKey
from metadisk.devnet.bridge import BridgeProcess, BridgeStartError
from tests.bridge.helpers import Api, Tenant

KEK_FILE = "api-keys.kek"


def stored_keys(url: str) -> dict[bytes, tuple[str, bytes]]:
    """What anyone holding the database (or a backup of it) reads: key id -> project, secret."""
    db = Database(DatabaseConfig(url))
    try:
        k = t.api_keys.c
        rows = db.read(lambda conn: conn.execute(select(k.key_id, k.project_id, k.secret)).all())
    finally:
        db.close()
    return {bytes(key_id): (project_id, bytes(secret)) for key_id, project_id, secret in rows}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def started(bridge: BridgeProcess) -> BridgeProcess:
    await asyncio.to_thread(bridge.start)
    return bridge


async def status(session: aiohttp.ClientSession, bridge: BridgeProcess, key: str) -> int:
    reply = await Api(session, bridge.url).call("GET", "/v1/buckets", token=key)
    return reply.status


async def test_the_database_alone_rebuilds_no_api_key(
    fresh_database: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    bridge = await started(BridgeProcess(tmp_path / "bridge", database_url=fresh_database))
    try:
        tenant = await Tenant.create(Api(session, bridge.url))
        assert await status(session, bridge, tenant.api_key) == 200
        stolen = stored_keys(fresh_database)
        key_id = APIKey.parse(tenant.api_key).key_id
        assert key_id in stolen
        # What the attacker did: the column as the root secret of a macaroon.
        for stolen_id, (_, secret) in stolen.items():
            forged = APIKey.new(secret, stolen_id).serialize()
            reply = await Api(session, bridge.url).call("GET", "/v1/buckets", token=forged)
            assert (reply.status, reply.code) == (401, "invalid-api-key")
        assert await status(session, bridge, tenant.api_key) == 200
    finally:
        await asyncio.to_thread(bridge.stop)


async def test_raw_secrets_of_an_older_database_keep_working_and_are_wrapped(
    fresh_database: str, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "bridge"
    bridge = await started(BridgeProcess(data_dir, database_url=fresh_database))
    try:
        tenant = await Tenant.create(Api(session, bridge.url))
    finally:
        await asyncio.to_thread(bridge.stop)
    # A key made by a bridge from before wrapping: its raw secret in the column.
    raw, old_id = os.urandom(32), os.urandom(16)
    db = Database(DatabaseConfig(fresh_database))
    try:
        db.write(
            lambda conn: conn.execute(
                insert(t.api_keys).values(
                    key_id=old_id,
                    project_id=tenant.project_id,
                    name="old",
                    secret=raw,
                    created_at=1,
                )
            )
        )
    finally:
        db.close()
    old_key = APIKey.new(raw, old_id).serialize()

    await started(bridge)
    try:
        assert await status(session, bridge, old_key) == 200
        assert await status(session, bridge, tenant.api_key) == 200
        rows = stored_keys(fresh_database)
        assert rows[old_id][1] != raw and raw not in rows[old_id][1]
        assert all(len(secret) != 32 for _, secret in rows.values())
    finally:
        await asyncio.to_thread(bridge.stop)
    # Wrapping again is a no-op: the rows stay as they are and the keys keep working.
    await started(bridge)
    try:
        assert stored_keys(fresh_database) == rows
        assert await status(session, bridge, old_key) == 200
    finally:
        await asyncio.to_thread(bridge.stop)


async def test_a_process_with_another_kek_refuses_to_start(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "bridge"
    bridge = await started(BridgeProcess(data_dir))
    try:
        await Tenant.create(Api(session, bridge.url))
    finally:
        await asyncio.to_thread(bridge.stop)
    kek = (data_dir / KEK_FILE).read_text().strip()
    assert len(kek) == 64
    assert stat.S_IMODE((data_dir / KEK_FILE).stat().st_mode) == 0o600

    other = BridgeProcess(data_dir, name="other", env={"METADISK_BRIDGE_DATABASE_KEK": "ab" * 32})
    with pytest.raises(BridgeStartError):
        await asyncio.to_thread(other.start, timeout=30)
    lines = [line for line in other.log_tail().splitlines() if "KEK" in line]
    assert lines and "same KEK" in lines[-1], other.log_tail()
    assert "ab" * 32 not in other.log_tail()  # the KEK itself is never printed

    # The same KEK from the environment: works, whatever the file says.
    same = BridgeProcess(data_dir, name="same", env={"METADISK_BRIDGE_DATABASE_KEK": kek})
    await started(same)
    await asyncio.to_thread(same.stop)


async def test_a_kek_from_the_environment_leaves_no_file(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "bridge"
    kek = os.urandom(32)
    bridge = await started(BridgeProcess(data_dir, env={"METADISK_BRIDGE_DATABASE_KEK": kek.hex()}))
    try:
        tenant = await Tenant.create(Api(session, bridge.url))
        assert await status(session, bridge, tenant.api_key) == 200
    finally:
        await asyncio.to_thread(bridge.stop)
    assert not (data_dir / KEK_FILE).exists()
    # The secret is stored wrapped under that KEK, bound to its row.
    from metadisk.bridge.auth.kek import KeyWrap, UnwrapError

    key_id = APIKey.parse(tenant.api_key).key_id
    project_id, stored = stored_keys(sqlite_url(data_dir))[key_id]
    KeyWrap(kek, "test").unwrap(key_id, project_id, stored)
    with pytest.raises(UnwrapError):
        KeyWrap(kek, "test").unwrap(os.urandom(16), project_id, stored)
