"""The bridge's account API for the CLI (blocking), and the cached login.

Commands do their account calls through `run_accounts`: the library's `BridgeAccounts` on a
short-lived event loop, so error answers and an unreachable bridge are the library's
`BridgeError` classes (same codes, same exit statuses as every other command).

Logging in costs the bridge an Argon2 hash, so the session token is cached in the config dir
(``session.json``, 0600) until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from metadisk.cli.config import SESSION_FILE, write_private
from metadisk.client import BridgeAccounts
from metadisk.wire.api.accounts import Session

T = TypeVar("T")

_EARLY = 60  # seconds before expiry a cached session stops being used


def run_accounts(
    bridge_url: str, work: Callable[[BridgeAccounts], Awaitable[T]], *, token: str | None = None
) -> T:
    """Run `work` on the account API of `bridge_url` (with the session `token`), blocking.

    Example::

        session = run_accounts(url, lambda accounts: accounts.login(email, password))
        keys = run_accounts(url, lambda accounts: accounts.api_keys(project_id), token=...)
    """

    async def run() -> T:
        accounts = BridgeAccounts(bridge_url, token=token)
        try:
            return await work(accounts)
        finally:
            await accounts.aclose()

    return asyncio.run(run())


def cached_session(
    config_dir: Path, bridge_url: str, email: str, now: Callable[[], float] = time.time
) -> Session | None:
    """The cached login for this bridge and email, if it is still good for a while."""
    try:
        raw = json.loads((config_dir / SESSION_FILE).read_text())
        if raw["bridge_url"] != bridge_url or raw["email"] != email:
            return None
        session = Session(token=str(raw["token"]), expires_at=int(raw["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return session if session.expires_at - _EARLY > now() else None


def cache_session(config_dir: Path, bridge_url: str, email: str, session: Session) -> None:
    record = {
        "bridge_url": bridge_url,
        "email": email,
        "token": session.token,
        "expires_at": session.expires_at,
    }
    write_private(config_dir / SESSION_FILE, json.dumps(record) + "\n")


def forget_session(config_dir: Path) -> None:
    (config_dir / SESSION_FILE).unlink(missing_ok=True)
