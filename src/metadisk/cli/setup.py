"""`metadisk setup`: get an access grant into the CLI's config.

Either import a grant someone gave you (``--grant``), or log in to a bridge (registering first
with ``--register``), pick or make a project, make an API key, and derive the root encryption
key from a passphrase with the project's salt (Argon2id, `metadisk.core.keys.derive_root_key`).
The same passphrase and project give the same root key on any machine, so another machine can
set up and read the same files; the passphrase itself is never stored or sent. The project's
passphrase verifier at the bridge (`metadisk.client.passphrase`) refuses a wrong passphrase
before anything is made or saved; an imported grant is checked against it as far as it can be.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Annotated

import typer

from metadisk.cli import config as cfg
from metadisk.cli import grants
from metadisk.cli.accounts import cache_session, run_accounts
from metadisk.cli.context import current, stderr
from metadisk.cli.errors import EXIT_REFUSED, CliError, UsageError
from metadisk.cli.login import read_secret
from metadisk.client import (
    AccessDenied,
    BridgeAccounts,
    BridgeAPI,
    BridgeUnavailable,
    Checked,
    Conflict,
    Unauthenticated,
    WrongPassphrase,
    check_with_key,
    check_with_session,
)
from metadisk.core.encoding import b64decode
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant, check_bridge_url
from metadisk.core.keys import derive_root_key, passphrase_verifier
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess
from metadisk.wire.api.accounts import Project, Session


def register(app: typer.Typer) -> None:
    """Add `setup` to the root app."""
    app.command()(setup)


def setup(
    bridge_url: Annotated[
        str | None, typer.Argument(help="The bridge, e.g. http://127.0.0.1:7777.")
    ] = None,
    grant: Annotated[
        str | None, typer.Option(help="Import this access grant instead of logging in.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Account email (prompted if missing).")] = None,
    register: Annotated[bool, typer.Option(help="Create the account first.")] = False,
    project: Annotated[str, typer.Option(help="Project to use; made if it does not exist.")] = (
        "default"
    ),
    key_name: Annotated[
        str | None, typer.Option(help="Name of the new API key (default: cli@HOSTNAME).")
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(metavar="VAR", help="Read the account password from this variable."),
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(metavar="VAR", help="Read the encryption passphrase from this variable."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a grant that is already set up.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(help="Make the grant of this API key (from the bridge console) instead."),
    ] = None,
    project_salt: Annotated[
        str | None, typer.Option(help="The project's salt, with --api-key (the console shows it).")
    ] = None,
) -> None:
    """Set up the CLI: log in to a bridge and make an access grant, or import one."""
    context = current()
    existing = context.config()
    if existing.grant is not None and not force:
        raise UsageError(
            f"{context.config_dir / cfg.CONFIG_FILE} already holds a grant "
            "(add --force to replace it)"
        )
    notes = stderr()
    if grant is not None:
        if bridge_url is not None:
            raise UsageError("give a BRIDGE_URL or --grant, not both")
        try:
            parsed = AccessGrant.parse(grant.strip())
        except DecodeError as exc:
            raise UsageError(f"not an access grant: {exc}") from exc
        checked = _check_grant(parsed)
        config = cfg.CliConfig(parsed.serialize(), None, existing.client, "metadisk setup --grant")
        path = cfg.save(context.config_dir, config)
        for label, value in grants.describe(parsed):
            notes.print(f"{label:<11} {value}", soft_wrap=True)
        notes.print(f"{'passphrase':<11} {checked}", soft_wrap=True)
        typer.echo(f"saved the grant to {path}")
        return

    if api_key is not None:
        _import_key(bridge_url, api_key, project_salt, passphrase_env, existing)
        return

    if bridge_url is None:
        bridge_url = typer.prompt("Bridge URL")
    bridge_url = bridge_url.strip().rstrip("/")
    try:
        check_bridge_url(bridge_url)
    except DecodeError as exc:
        raise UsageError(f"bridge URL {bridge_url!r}: {exc}") from exc
    if email is None:
        email = typer.prompt("Email")
    password = read_secret("Password", password_env, confirm=register)
    # From the environment, read the passphrase now: a script missing it fails before making
    # an API key it would then not use. A person is asked later, after the explanation.
    passphrase = read_secret("", passphrase_env) if passphrase_env is not None else None
    name = key_name or f"cli@{socket.gethostname()}"

    async def choose_project(api: BridgeAccounts) -> tuple[Session, Project]:
        if register:
            await api.register(email, password)
        try:
            session = await api.login(email, password)
        except Unauthenticated as exc:
            hint = "" if register else " (new here? add --register)"
            raise UsageError(f"cannot log in as {email}: {exc.message}{hint}") from exc
        chosen = next((p for p in await api.projects() if p.name == project), None)
        if chosen is None:
            chosen = await api.create_project(project)
            notes.print(f"made project {project!r}")
        return session, chosen

    session, chosen = run_accounts(bridge_url, choose_project)

    if passphrase is None:
        notes.print(
            "Your files are encrypted with a key made from a passphrase. It never leaves this "
            "machine: keep it safe, without it nobody (not even you) can read your files.",
            soft_wrap=True,
        )
        passphrase = read_secret("Encryption passphrase", None, confirm=True)
    try:
        root_key = derive_root_key(passphrase, chosen.salt)
    except ValueError as exc:
        raise UsageError(f"cannot derive the root key: {exc}") from exc

    # The key is made only once the passphrase is known right: a wrong one leaves nothing behind.
    async def make_key(api: BridgeAccounts) -> str:
        try:
            if await check_with_session(api, chosen, root_key) is Checked.STORED:
                notes.print("stored the passphrase verifier: other setups will check against it")
        except WrongPassphrase as exc:
            raise CliError(str(exc), status=EXIT_REFUSED) from exc
        return (await api.create_api_key(chosen.id, name)).api_key

    api_key = run_accounts(bridge_url, make_key, token=session.token)
    made = AccessGrant(bridge_url, APIKey.parse(api_key), EncryptionAccess(root_key=root_key))
    account = cfg.Account(bridge_url, email, chosen.id)
    path = cfg.save(
        context.config_dir,
        cfg.CliConfig(made.serialize(), account, existing.client, "metadisk setup"),
    )
    cache_session(context.config_dir, bridge_url, email, session)
    typer.echo(f"set up {email} on {bridge_url}, project {project!r}, API key {name!r}: {path}")


def _import_key(
    bridge_url: str | None,
    api_key: str,
    salt: str | None,
    passphrase_env: str | None,
    existing: cfg.CliConfig,
) -> None:
    """A grant of an API key made elsewhere (the bridge console) and a passphrase typed here."""
    if bridge_url is None or salt is None:
        raise UsageError("--api-key needs BRIDGE_URL and --project-salt")
    bridge_url = bridge_url.strip().rstrip("/")
    try:
        check_bridge_url(bridge_url)
        key = APIKey.parse(api_key.strip())
        salt_bytes = b64decode(salt.strip())
    except DecodeError as exc:
        raise UsageError(f"cannot use the API key: {exc}") from exc
    if passphrase_env is None:
        stderr().print(
            "Your files are encrypted with a key made from this project's passphrase. It never "
            "leaves this machine.",
            soft_wrap=True,
        )
    passphrase = read_secret("Encryption passphrase", passphrase_env, confirm=True)
    try:
        root_key = derive_root_key(passphrase, salt_bytes)
    except ValueError as exc:
        raise UsageError(f"cannot derive the root key: {exc}") from exc

    async def check() -> Checked:
        # An unrestricted key may store the verifier when the project has none (a project made
        # in the console has none until its first setup): later setups are then checked.
        api = BridgeAPI(bridge_url, key.serialize())
        try:
            found = await check_with_key(api, root_key)
            if found is Checked.UNSET and not key.caveats:
                await api.set_passphrase_verifier(passphrase_verifier(root_key))
                return Checked.STORED
            return found
        finally:
            await api.aclose()

    try:
        checked = asyncio.run(check())
    except (WrongPassphrase, Conflict) as exc:
        raise CliError("wrong passphrase for this project", status=EXIT_REFUSED) from exc
    except (BridgeUnavailable, Unauthenticated, AccessDenied) as exc:
        raise CliError(f"cannot use the API key at {bridge_url}: {exc}") from exc
    made = AccessGrant(bridge_url, key, EncryptionAccess(root_key=root_key))
    context = current()
    config = cfg.CliConfig(made.serialize(), None, existing.client, "metadisk setup --api-key")
    path = cfg.save(context.config_dir, config)
    stderr().print(f"{'passphrase':<11} {checked.value}", soft_wrap=True)
    typer.echo(f"saved the grant of the API key to {path}")


def _check_grant(grant: AccessGrant) -> str:
    """Check an imported grant at its bridge as far as it can be; what was found, in words.

    A grant with the root key is checked against the project's verifier. A restricted grant
    holds only folder keys, derived one way from the root key, so its passphrase cannot be
    checked; asking for the verifier still proves its API key genuine and not revoked.
    """
    root_key = grant.encryption.root_key

    async def check() -> Checked | None:
        api = BridgeAPI(grant.bridge_url, grant.api_key.serialize())
        try:
            if root_key is None:
                await api.passphrase_verifier()
                return None
            return await check_with_key(api, root_key)
        finally:
            await api.aclose()

    try:
        checked = asyncio.run(check())
    except WrongPassphrase as exc:
        raise CliError(str(exc), status=EXIT_REFUSED) from exc
    except BridgeUnavailable as exc:
        # Importing offline still works; the grant's first use will meet the bridge.
        return f"not checked: the bridge cannot be reached ({exc.code})"
    if checked is Checked.MATCHED:
        return "checked: the root key matches the project's verifier"
    if checked is Checked.UNSET:
        return "not checked: the project has no verifier yet (the owner's next setup stores it)"
    return "not checked: a restricted grant holds folder keys, not the root key it is made from"
