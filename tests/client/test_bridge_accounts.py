"""`BridgeAccounts` and `BridgeAPI.revoke` against a real bridge process (no farmers needed).

One bridge serves the module; every test registers its own account.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from metadisk.client import (
    BridgeError,
    BridgeUnavailable,
    ClientError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from metadisk.client.bridge_api import BridgeAccounts, BridgeAPI
from metadisk.core.macaroon import APIKey, Caveat
from metadisk.devnet.bridge import BridgeProcess, bridge_process
from metadisk.wire.api.accounts import Account, ApiKey, Project

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    with bridge_process(tmp_path_factory.mktemp("bridge")) as running:
        yield running


async def new_user(bridge: BridgeProcess) -> tuple[BridgeAccounts, str, str]:
    """A registered, logged-in account's client (closed by the caller), email and token."""
    accounts = BridgeAccounts(bridge.url)
    email = f"{os.urandom(6).hex()}@example.com"
    await accounts.register(email, PASSWORD)
    session = await accounts.login(email, PASSWORD)
    return accounts, email, session.token


async def raised(call: Awaitable[object]) -> BridgeError:
    with pytest.raises(BridgeError) as caught:
        await call
    return caught.value


async def test_accounts_projects_and_keys_round_trip(bridge: BridgeProcess) -> None:
    accounts = BridgeAccounts(bridge.url)
    try:
        email = f"{os.urandom(6).hex()}@example.com"
        account = await accounts.register(email, PASSWORD)
        assert isinstance(account, Account)
        assert account.email == email
        session = await accounts.login(email, PASSWORD)
        assert session.token
        assert session.expires_at > time.time()

        assert await accounts.projects() == ()
        project = await accounts.create_project("photos")
        assert isinstance(project, Project)
        assert project.name == "photos"
        assert len(project.salt) >= 16
        assert await accounts.projects() == (project,)

        made = await accounts.create_api_key(project.id, "laptop")
        assert APIKey.parse(made.api_key).key_id.hex() == made.key_id
        listed = ApiKey(key_id=made.key_id, name="laptop", created_at=made.created_at)
        assert await accounts.api_keys(project.id) == (listed,)
    finally:
        await accounts.aclose()

    # A cached session token works in a fresh client, as the CLI uses it.
    cached = BridgeAccounts(bridge.url, token=session.token)
    try:
        assert await cached.projects() == (project,)
        await cached.delete_api_key(project.id, made.key_id)
        assert await cached.api_keys(project.id) == ()
        gone = await raised(cached.delete_api_key(project.id, made.key_id))
        assert isinstance(gone, NotFound)
        assert gone.code == "api-key-not-found"
    finally:
        await cached.aclose()
    # The deleted key no longer works at all.
    api = BridgeAPI(bridge.url, made.api_key)
    try:
        refused = await raised(api.list_buckets())
        assert isinstance(refused, Unauthenticated)
    finally:
        await api.aclose()


REFUSED_IDS = [
    # A '/' reaches the bridge quoted, which decodes it and finds no such route.
    ("{}/api-keys/{}#", NotFound, "not-found"),
    ("{}/api-keys/{}?", NotFound, "not-found"),
    ("a/b", NotFound, "not-found"),
    # Anything else arrives as the one segment it was, and is not an id.
    ("{} ", BridgeError, "invalid-request"),
    ("a b", BridgeError, "invalid-request"),
    ("%2e%2e", BridgeError, "invalid-request"),
    ("ü", BridgeError, "invalid-request"),
    # URL normalization would drop or climb these: refused before sending.
    ("..", InvalidArgument, "invalid-argument"),
    (".", InvalidArgument, "invalid-argument"),
    ("", InvalidArgument, "invalid-argument"),
]


@pytest.mark.parametrize(("shape", "cls", "code"), REFUSED_IDS)
async def test_ids_are_always_one_path_segment(
    bridge: BridgeProcess, shape: str, cls: type[ClientError], code: str
) -> None:
    """An id that needs quoting never reaches another route: every call refuses it alike."""
    accounts, _, _ = await new_user(bridge)
    try:
        project = await accounts.create_project("p")
        kept = await accounts.create_api_key(project.id, "kept")
        bad = shape.format(project.id, kept.key_id)
        calls = [
            accounts.api_keys(bad),
            accounts.create_api_key(bad, "other"),
            accounts.delete_api_key(bad, kept.key_id),
            accounts.delete_api_key(project.id, bad),
        ]
        for call in calls:
            with pytest.raises(ClientError) as caught:
                await call
            assert (type(caught.value), caught.value.code) == (cls, code)
        # Nothing was made or deleted by the refused calls.
        assert [k.key_id for k in await accounts.api_keys(project.id)] == [kept.key_id]
    finally:
        await accounts.aclose()


async def test_error_answers_keep_the_bridges_code_and_status(bridge: BridgeProcess) -> None:
    accounts, email, _ = await new_user(bridge)
    stranger = BridgeAccounts(bridge.url, token="bogus")
    unknown = "0" * 32
    try:
        cases: list[tuple[Callable[[], Awaitable[object]], type[BridgeError], int, str]] = [
            (lambda: accounts.register(email, PASSWORD), Conflict, 409, "email-taken"),
            (lambda: accounts.register("x", PASSWORD), BridgeError, 400, "invalid-email"),
            (lambda: accounts.login(email, "wrong"), Unauthenticated, 401, "invalid-credentials"),
            (lambda: accounts.api_keys(unknown), NotFound, 404, "project-not-found"),
            (stranger.projects, Unauthenticated, 401, ""),
        ]
        for call, cls, status, code in cases:
            error = await raised(call())
            assert (type(error), error.status) == (cls, status), error
            assert error.code == code or not code
            assert error.message and "Traceback" not in error.message
    finally:
        await accounts.aclose()
        await stranger.aclose()


async def test_revoke_with_an_api_key(bridge: BridgeProcess) -> None:
    accounts, _, _ = await new_user(bridge)
    try:
        project = await accounts.create_project("p")
        root = (await accounts.create_api_key(project.id, "root")).api_key
        other = (await accounts.create_api_key(project.id, "other")).api_key
    finally:
        await accounts.aclose()
    shared = APIKey.parse(root).restrict(Caveat(disallow_writes=True)).serialize()
    owner = BridgeAPI(bridge.url, root)
    holder = BridgeAPI(bridge.url, shared)
    try:
        await holder.list_buckets()
        # A sibling key is not the caller's to revoke.
        sibling = await raised(owner.revoke(other))
        assert (type(sibling), sibling.code) == (PermissionDenied, "access-denied")

        await owner.revoke(shared)
        revoked = await raised(holder.list_buckets())
        assert isinstance(revoked, PermissionDenied)
        assert "revoked" in revoked.message
        await owner.list_buckets()  # the root key itself still works
    finally:
        await owner.aclose()
        await holder.aclose()


async def test_an_unreachable_bridge_is_one_connection_failure() -> None:
    accounts = BridgeAccounts("http://127.0.0.1:1")
    try:
        with pytest.raises(BridgeUnavailable) as caught:
            await accounts.login("ada@example.com", PASSWORD)
    finally:
        await accounts.aclose()
    error: ClientError = caught.value
    assert error.code == "connection-failed"
    assert error.message.startswith("cannot reach the bridge at http://127.0.0.1:1: ")
