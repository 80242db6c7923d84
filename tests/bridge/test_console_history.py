"""The console's usage history (`usage_days`) and the caveats of keys made in the console."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from metadisk.bridge.common import month_period
from metadisk.bridge.config import AccountsConfig, BridgeConfig, DatabaseConfig
from metadisk.bridge.console.history import DAY
from metadisk.bridge.console.keys import KeyForm, setup_command
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.metainfo import MetainfoStore
from metadisk.bridge.peer import Bridge
from metadisk.core.identity import Identity
from metadisk.core.macaroon import AccessDenied, APIKey, Op, Request

NOW = 1_800_000_000


@pytest.fixture
async def bridge(fresh_database: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path,
        database=DatabaseConfig(fresh_database),
        accounts=AccountsConfig(argon2_time_cost=1, argon2_memory_kib=8),
    )
    peer = Bridge(config, Identity.generate(), clock=lambda: NOW)
    peer.migrate()
    yield peer
    await peer.aclose()


def _set_storage(bridge: Bridge, project_id: str, stored: int) -> None:
    statement = update(t.projects).where(t.projects.c.id == project_id)
    bridge.db.write(lambda conn: conn.execute(statement.values(used_storage=stored)))


async def test_a_row_a_day_written_by_the_worker_chore(bridge: Bridge) -> None:
    accounts = bridge.api.accounts
    user = accounts.register("h@example.org", "password1", NOW)
    project = accounts.create_project(user, "p", None, NOW)
    history = bridge.worker.history
    assert bridge.worker.history_chore in bridge.worker.chores

    _set_storage(bridge, project.id, 100)
    assert history.record_all(NOW) == 1
    _set_storage(bridge, project.id, 300)
    history.record_all(NOW + 60)  # the same day: its row is replaced, not added
    _set_storage(bridge, project.id, 700)
    history.record_all(NOW + DAY)
    days = history.days(project.id, NOW + DAY)
    assert [(d.day, d.storage_bytes) for d in days] == [
        (NOW // DAY, 300),
        (NOW // DAY + 1, 700),
    ]
    # Older than the span: not shown.
    assert [d.day for d in history.days(project.id, NOW + 40 * DAY)] == []
    totals = history.totals(NOW)
    assert (totals.users, totals.projects, totals.storage_bytes) == (1, 1, 700)


async def test_the_console_records_the_project_it_shows(bridge: Bridge) -> None:
    accounts = bridge.api.accounts
    user = accounts.register("s@example.org", "password1", NOW)
    project = accounts.create_project(user, "p", None, NOW)
    _set_storage(bridge, project.id, 4096)
    usage = bridge.api.history  # the API process's own
    live = MetainfoStore(bridge.db).project_usage(project.id, month_period(NOW))
    assert live is not None
    usage.record(project.id, live, NOW)
    (day,) = usage.days(project.id, NOW)
    assert day.storage_bytes == 4096


@given(
    access=st.sampled_from(["full", "read", "write"]),
    bucket=st.sampled_from(["", "photos"]),
    days=st.sampled_from(["", "1", "30"]),
)
def test_a_console_key_allows_what_its_form_said(access: str, bucket: str, days: str) -> None:
    root, secret = APIKey.generate()
    form = KeyForm.parse({"name": "k", "access": access, "bucket": bucket, "days": days}, NOW)
    key = APIKey.parse(form.restrict(root.serialize()))

    def allowed(op: Op, where: str, at: int = NOW) -> bool:
        try:
            key.check(secret, Request(op, where, "", at))
        except AccessDenied:
            return False
        return True

    assert allowed(Op.READ, "photos") == (access != "write")
    assert allowed(Op.WRITE, "photos") == (access != "read")
    assert allowed(Op.DELETE, "photos") == (access == "full")
    assert allowed(Op.LIST, "other") == (bucket == "")
    assert allowed(Op.LIST, "photos", NOW + 31 * DAY) == (days == "")


def test_key_form_refusals_and_the_setup_command() -> None:
    for fields in ({"name": ""}, {"name": "k", "access": "root"}, {"name": "k", "days": "0"}):
        with pytest.raises(ValueError):
            KeyForm.parse(fields, NOW)
    command = setup_command("http://127.0.0.1:1", "mdk1abc", "-2FsdA")
    assert command == "metadisk setup http://127.0.0.1:1 --api-key=mdk1abc --project-salt=-2FsdA"
