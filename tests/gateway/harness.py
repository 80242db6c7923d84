"""The gateway tests' world: a real network, a real gateway process, and real S3 clients."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metadisk.client import Permissions, Project
from metadisk.devnet.gateway import GatewayProcess
from metadisk.devnet.network import Tenant
from metadisk.gateway.config import Credential, new_credential
from tests.e2e.harness import SMALL, SMALL_PIECES

# The gateway's library: small pieces (1 MiB segments) and threads, as the CLI tests use.
CLIENT_CONFIG = f"[client]\nprocesses = false\npiece_target = {SMALL_PIECES}\n"
SHARED_BUCKET = "shared"
SHARED_PREFIX = "open/"


@dataclass(frozen=True)
class S3World:
    """A running gateway and the credentials it serves."""

    gateway: GatewayProcess
    full: Credential  # the tenant's whole project
    reader: Credential  # read and list under SHARED_BUCKET/SHARED_PREFIX only
    writer: Credential  # read, list, write and delete under the same prefix only
    expired: Credential  # a grant whose time is over

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


def start_world(root: Path, tenant: Tenant) -> S3World:
    with Project.open(tenant.grant, config=SMALL) as project:
        project.create_bucket(SHARED_BUCKET)
        prefixes = [(SHARED_BUCKET, SHARED_PREFIX.rstrip("/"))]
        reader = project.share(prefixes, Permissions(read=True, list=True))
        writer = project.share(prefixes, Permissions(read=True, list=True, write=True, delete=True))
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
        expired = project.share(prefixes, Permissions(), not_after=past)
    credentials = [new_credential(g) for g in (tenant.grant, reader, writer, expired)]
    config_dir = root / "cli"
    config_dir.mkdir(mode=0o700)
    (config_dir / "config.toml").write_text(CLIENT_CONFIG)
    (config_dir / "config.toml").chmod(0o600)
    gateway = GatewayProcess(root / "gateway", credentials, config_dir=config_dir)
    gateway.start_sync()
    return S3World(gateway, *credentials)


def boto3_client(world: S3World, credential: Credential | None = None, **options: Any) -> Any:
    """A boto3 S3 client of `world`'s gateway (its full credential unless told otherwise)."""
    return s3_client(world.url, credential or world.full, **options)


def s3_client(url: str, credential: Credential, **options: Any) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",  # presigned URLs too (boto3 presigns with V2 otherwise)
        retries={"max_attempts": 1, "mode": "standard"},
        **options,
    )
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=credential.access_key,
        aws_secret_access_key=credential.secret_key,
        region_name="us-east-1",
        config=config,
    )


def fresh_bucket_name(stem: str = "t") -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"
