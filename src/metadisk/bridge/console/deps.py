"""What the console's routes use of the API process, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request

from metadisk.bridge.accounts.hashing import HashingPool
from metadisk.bridge.accounts.service import AccountsService
from metadisk.bridge.config import ServerConfig
from metadisk.bridge.console.history import UsageHistory
from metadisk.bridge.health.service import HealthService
from metadisk.bridge.http import Runner
from metadisk.bridge.metainfo.db import ProjectUsage
from metadisk.bridge.ratelimit import Limit, RateLimiter
from metadisk.bridge.repair.db import RepairDB

MAX_FORM = 16 * 1024  # the console's forms are small; the edge caps every body anyway


@dataclass(frozen=True)
class ConsoleDeps:
    """The services the console's pages read and change (the JSON API's own)."""

    accounts: AccountsService
    hashing: HashingPool
    usage: Callable[[str, int], ProjectUsage | None]  # (project id, month period)
    history: UsageHistory
    health: HealthService
    repair: RepairDB
    limiter: RateLimiter  # the edge's: a console login spends the same tokens as an API login
    server: ServerConfig
    clock: Callable[[], int]
    run: Runner

    @property
    def login_limit(self) -> Limit:
        return Limit("login", self.server.login_rate, self.server.login_burst)

    @property
    def failure_limit(self) -> Limit:
        s = self.server
        return Limit("login-failure", s.login_failure_rate, s.login_failure_burst)

    @property
    def account_limit(self) -> Limit:
        return Limit("account", self.server.account_rate, self.server.account_burst)


async def form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST, one value a field (the first)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
