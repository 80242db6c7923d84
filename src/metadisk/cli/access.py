"""`metadisk access ...`: API keys at the bridge, and access grants on this machine.

``list``, ``create`` and ``revoke --key-id`` manage the project's root API keys and need the
account's login; ``restrict`` and ``inspect`` work offline on grants; ``revoke GRANT`` revokes a
grant made from the configured one (a share you gave out) with the configured API key alone.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Annotated

import typer

from metadisk.cli import grants
from metadisk.cli.context import current, stderr
from metadisk.cli.errors import UsageError
from metadisk.cli.login import require_account, with_account
from metadisk.cli.remote import parse_remote
from metadisk.client import BridgeAPI
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import APIKey

app = typer.Typer(
    help="Manage API keys and access grants.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


def register(root: typer.Typer) -> None:
    """Add `metadisk access` to the root app."""
    root.add_typer(app, name="access")


PasswordEnv = Annotated[
    str | None,
    typer.Option(metavar="VAR", help="Read the account password from this variable."),
]


@app.command("list")
def list_keys(password_env: PasswordEnv = None) -> None:
    """List the project's API keys (ids and names; the keys themselves are never shown)."""
    context = current()
    loaded = context.config()
    account = require_account(loaded.account, context.config_dir)
    project_id = account.project_id
    keys = with_account(context.config_dir, account, password_env, lambda a: a.api_keys(project_id))
    for key in keys:
        created = datetime.datetime.fromtimestamp(key.created_at)
        typer.echo(f"{key.key_id}  {created:%Y-%m-%d %H:%M}  {key.name}")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. the machine it is for.")],
    password_env: PasswordEnv = None,
) -> None:
    """Make a new API key and print a grant with it and the configured encryption keys."""
    context = current()
    loaded = context.config()
    account = require_account(loaded.account, context.config_dir)
    grant = loaded.access_grant(context.config_dir)
    project_id = account.project_id
    made = with_account(
        context.config_dir, account, password_env, lambda a: a.create_api_key(project_id, name)
    )
    key = APIKey.parse(made.api_key)
    typer.echo(AccessGrant(grant.bridge_url, key, grant.encryption).serialize())
    stderr().print(f"made API key {made.key_id} ({name})")


@app.command()
def restrict(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Folders to keep (md://bucket or md://bucket/folder); none: all."),
    ] = None,
    grant: Annotated[
        str | None, typer.Option(help="The grant to restrict (default: the configured one).")
    ] = None,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Read and list only (the default).")
    ] = False,
    write: Annotated[bool, typer.Option("--write", help="Also upload, replace, delete.")] = False,
    expires: Annotated[str | None, typer.Option(help="Lifetime, e.g. 24h or 7d.")] = None,
    not_before: Annotated[
        str | None, typer.Option(help="Valid only after this delay from now, e.g. 1h.")
    ] = None,
) -> None:
    """Print a narrower grant (offline): fewer folders, operations or a limited time."""
    source = _grant(grant)
    folders = [parse_remote(p) for p in paths or []]
    allowed = grants.Allowed.from_flags(readonly=readonly, write=write)
    now = int(time.time())
    start = now + grants.parse_duration(not_before) if not_before else None
    end = (start or now) + grants.parse_duration(expires) if expires else None
    narrowed = grants.restrict(source, folders, allowed, not_before=start, not_after=end)
    typer.echo(narrowed.serialize())


@app.command()
def inspect(
    grant: Annotated[
        str | None, typer.Argument(help="A grant (default: the configured one).")
    ] = None,
) -> None:
    """Show what a grant reaches and allows (decoded here; secrets are never shown)."""
    for label, value in grants.describe(_grant(grant)):
        typer.echo(f"{label:<11} {value}")


@app.command()
def revoke(
    target: Annotated[
        str | None,
        typer.Argument(help="A grant or API key made from the configured grant (a share)."),
    ] = None,
    key_id: Annotated[
        str | None, typer.Option(help="Delete the project's root API key with this id instead.")
    ] = None,
    password_env: PasswordEnv = None,
) -> None:
    """Revoke a shared grant (and all made from it), or delete a root API key by id."""
    context = current()
    loaded = context.config()
    if (target is None) == (key_id is None):
        raise UsageError("give a grant to revoke, or --key-id, but not both")
    if key_id is not None:
        account = require_account(loaded.account, context.config_dir)
        doomed = key_id.strip().lower()
        with_account(
            context.config_dir,
            account,
            password_env,
            lambda a: a.delete_api_key(account.project_id, doomed),
        )
        typer.echo(f"deleted API key {key_id}; grants made with it stop working now")
        return
    assert target is not None
    mine = loaded.access_grant(context.config_dir)
    text = target.strip()
    try:
        key = AccessGrant.parse(text).api_key if text.startswith("mdg") else APIKey.parse(text)
    except DecodeError as exc:
        raise UsageError(f"not a grant or API key: {exc}") from exc
    asyncio.run(_revoke(mine.bridge_url, mine.api_key.serialize(), key.serialize()))
    typer.echo(f"revoked API key {key.key_id.hex()} with {len(key.caveats)} caveat(s)")


def _grant(text: str | None) -> AccessGrant:
    if text is None:
        context = current()
        return context.config().access_grant(context.config_dir)
    try:
        return AccessGrant.parse(text.strip())
    except DecodeError as exc:
        raise UsageError(f"not an access grant: {exc}") from exc


async def _revoke(bridge_url: str, api_key: str, target: str) -> None:
    api = BridgeAPI(bridge_url, api_key)
    try:
        await api.revoke(target)
    finally:
        await api.aclose()
