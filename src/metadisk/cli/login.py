"""Asking for secrets (hidden prompts, or environment variables for scripts) and logging in.

A secret is read from the environment variable named by ``--password-env`` or
``--passphrase-env`` when given (so scripts and tests never need a terminal), else prompted for
without echo. Secrets are never written anywhere by the CLI: not the password, not the
passphrase; only the root key derived from the passphrase ends up in the grant.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer

from metadisk.cli.accounts import cache_session, cached_session, forget_session, run_accounts
from metadisk.cli.config import Account
from metadisk.cli.errors import UsageError
from metadisk.client import BridgeAccounts, Unauthenticated

T = TypeVar("T")


def read_secret(prompt: str, env_var: str | None, *, confirm: bool = False) -> str:
    """A secret from `env_var` if named, else from a hidden prompt (typed twice if `confirm`)."""
    if env_var is not None:
        value = os.environ.get(env_var)
        if not value:
            raise UsageError(f"environment variable {env_var} is not set or empty")
        return value
    value = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    if not isinstance(value, str) or not value:
        raise UsageError(f"{prompt.lower()} must not be empty")
    return value


def with_account(
    config_dir: Path,
    account: Account,
    password_env: str | None,
    work: Callable[[BridgeAccounts], Awaitable[T]],
) -> T:
    """Run `work` logged in as `account`: with the cached session, or after a fresh login.

    A refused cached session changed nothing at the bridge, so `work` simply runs again after
    logging in; keep it to one call.
    """
    cached = cached_session(config_dir, account.bridge_url, account.email)
    if cached is not None:
        try:
            return run_accounts(account.bridge_url, work, token=cached.token)
        except Unauthenticated:  # expired early, or logged out at the bridge
            forget_session(config_dir)
    password = read_secret(f"Password for {account.email}", password_env)
    session = run_accounts(account.bridge_url, lambda api: api.login(account.email, password))
    cache_session(config_dir, account.bridge_url, account.email, session)
    return run_accounts(account.bridge_url, work, token=session.token)


def require_account(account: Account | None, config_dir: Path) -> Account:
    if account is None:
        raise UsageError(
            f"no account in {config_dir}: this needs a login "
            "(run 'metadisk setup BRIDGE_URL'; a grant imported with --grant has none)"
        )
    return account
