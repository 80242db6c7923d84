"""`metadisk gateway run` and `metadisk gateway credentials` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from metadisk.client import Permissions, Project
from metadisk.gateway.config import CONFIG_FILE, Credential, load
from metadisk.runtime.net import parse_listening
from tests.e2e.harness import CLI, SMALL, BackgroundNetwork, run_cli, write_config
from tests.gateway.harness import s3_client


def start_gateway(config_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*CLI, "--config-dir", str(config_dir), "gateway", "run", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert process.stdout is not None
    for line in process.stdout:
        listening = parse_listening(line)
        if listening is not None:
            return process, str(listening["url"])
    process.wait(10)
    assert process.stderr is not None
    raise AssertionError(f"the gateway did not start: {process.stderr.read()}")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return err


def test_first_run_makes_credentials_and_credentials_adds_restricted_ones(
    s3_network: BackgroundNetwork, tmp_path: Path
) -> None:
    tenant = s3_network.tenant()
    config_dir = write_config(tmp_path / "config", tenant)
    with Project.open(tenant.grant, config=SMALL) as project:
        project.create_bucket("photos")
        project.upload("photos", "2024/cat.jpg", b"meow")
        project.upload("photos", "private/diary", b"secret")
        shared = project.share([("photos", "2024")], Permissions(read=True, list=True))

    process, url = start_gateway(config_dir)
    try:
        saved = load(config_dir / CONFIG_FILE, {})
        assert (config_dir / CONFIG_FILE).stat().st_mode & 0o777 == 0o600
        (owner,) = saved.credentials
        assert owner.grant == tenant.grant
        objects = s3_client(url, owner).list_objects_v2(Bucket="photos")["Contents"]
        assert sorted(o["Key"] for o in objects) == ["2024/cat.jpg", "private/diary"]
    finally:
        said = stop(process)
    assert owner.access_key in said and owner.secret_key in said  # shown once, on the first run

    made = run_cli("gateway", "credentials", "--grant", shared, "--json", config_dir=config_dir)
    assert made.status == 0, made.err
    fields = json.loads(made.out)
    reader = Credential(fields["access_key"], fields["secret_key"], shared)
    assert [c.access_key for c in load(config_dir / CONFIG_FILE, {}).credentials] == [
        owner.access_key,
        reader.access_key,
    ]

    process, url = start_gateway(config_dir)
    try:
        client = s3_client(url, reader)
        assert client.get_object(Bucket="photos", Key="2024/cat.jpg")["Body"].read() == b"meow"
        with pytest.raises(ClientError) as refused:
            client.get_object(Bucket="photos", Key="private/diary")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        said = stop(process)
    assert reader.secret_key not in said  # made by `credentials`, which printed it


def test_credentials_refuses_what_is_not_a_grant(tmp_path: Path) -> None:
    made = run_cli("gateway", "credentials", "--grant", "not-a-grant", config_dir=tmp_path)
    assert made.status == 2
    assert made.error_line.startswith("error: --grant: not an access grant")


def test_a_port_in_use_is_one_line(s3_network: BackgroundNetwork, tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "config", s3_network.tenant())
    process, url = start_gateway(config_dir)
    try:
        port = url.rsplit(":", 1)[1]
        taken = run_cli("gateway", "run", "--port", port, config_dir=config_dir)
        assert taken.status == 1
        assert taken.error_line == (
            f"error: cannot listen: port {port} on 127.0.0.1 is in use (choose another with --port)"
        )
    finally:
        stop(process)
