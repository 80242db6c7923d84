"""`metadisk gateway ...`: an S3-compatible endpoint on this machine.

``run`` serves S3 with the gateway's credential pairs (``gateway.toml`` in the config dir); the
first run makes a pair for the configured grant. ``credentials`` makes a pair for a grant (the
configured one, or a restricted one given with ``--grant``), adds it to the file and prints it.
Encryption happens in the gateway process, so the bridge and farmers still see only ciphertext.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from metadisk.cli.context import current, stderr
from metadisk.cli.errors import CliError, UsageError
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant

app = typer.Typer(
    help="Run an S3-compatible gateway on this machine (encryption stays here).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)

STATE_DIR = "gateway"

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The gateway's config file (default: gateway.toml in the CLI's config dir).",
    ),
]


def _paths(config: Path | None) -> tuple[Path, Path]:
    from metadisk.gateway.config import CONFIG_FILE

    path = config.expanduser().absolute() if config else current().config_dir / CONFIG_FILE
    return path, path.parent / STATE_DIR


@app.command()
def run(
    config: ConfigFile = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (0: any free one).", min=0, max=65535)
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(help="Also take virtual-host-style requests for BUCKET.DOMAIN."),
    ] = None,
) -> None:
    """Serve S3 until interrupted. The first run makes credentials for the configured grant.

    On a loopback address it also serves the web file manager under ``/-/``; it prints the
    URL to open (with this run's secret token).
    """
    import asyncio
    from dataclasses import replace

    from metadisk.gateway.config import ConfigError, load, new_credential, save, with_credential
    from metadisk.gateway.server import Gateway, serve
    from metadisk.runtime.net import BindError

    context = current()
    path, state = _paths(config)
    try:
        settings = load(path, os.environ, state_dir=state)
        if not settings.credentials:
            grant = context.config().access_grant(context.config_dir).serialize()
            made = new_credential(grant)
            settings = with_credential(settings, made)
            save(path, settings)
            stderr().print(
                f"made S3 credentials for the configured grant (kept in {path}):\n"
                f"  access key  {made.access_key}\n  secret key  {made.secret_key}"
            )
        changes: dict[str, object] = {}
        if host is not None:
            changes["host"] = host
        if port is not None:
            changes["port"] = port
        if domain is not None:
            changes["domain"] = domain
        settings = replace(settings, **changes)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}") from exc

    def ready(gateway: Gateway) -> None:
        stderr().print(f"S3 gateway    {gateway.url}")
        if gateway.files_url is not None:
            stderr().print(f"file manager  {gateway.files_url}", soft_wrap=True)
        else:
            stderr().print("file manager  off (served only when listening on a loopback address)")

    client = context.config().client.client_config()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(settings, client=client, on_ready=ready))
    except BindError as exc:
        raise CliError(f"cannot listen: {exc.message} (choose another with --port)") from exc


@app.command()
def credentials(
    grant: Annotated[
        str | None,
        typer.Option(
            help="The grant to serve, e.g. a restricted one from `metadisk access restrict` "
            "(- reads it from stdin; default: the configured grant)."
        ),
    ] = None,
    config: ConfigFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Make an S3 access key and secret for a grant and add them to the gateway's config.

    A restricted grant gives restricted credentials: S3 requests signed with them can do only
    what the grant allows. Restart a running gateway to serve the new pair.
    """
    from metadisk.gateway.config import ConfigError, load, new_credential, save, with_credential

    context = current()
    if grant == "-":
        grant = sys.stdin.readline().strip()
    if grant is None:
        grant = context.config().access_grant(context.config_dir).serialize()
    try:
        AccessGrant.parse(grant)
    except (DecodeError, ValueError) as exc:
        raise UsageError(f"--grant: not an access grant ({exc})") from exc
    path, state = _paths(config)
    try:
        settings = load(path, {}, state_dir=state)
        made = new_credential(grant)
        settings = with_credential(settings, made)
    except ConfigError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    save(path, settings)
    endpoint = f"http://{settings.host}:{settings.port}"
    if as_json:
        fields = {
            "access_key": made.access_key,
            "secret_key": made.secret_key,
            "endpoint": endpoint,
            "region": settings.region,
        }
        typer.echo(json.dumps(fields))
        return
    typer.echo(f"access key  {made.access_key}")
    typer.echo(f"secret key  {made.secret_key}")
    typer.echo(f"endpoint    {endpoint}")
    stderr().print(f"added to {path}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gateway")
