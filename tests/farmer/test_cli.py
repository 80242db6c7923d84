"""`metadisk farmer setup|run` as a user runs them: real processes, one-line errors."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.devnet.farmer import FarmerProcess, prepare_farmer
from metadisk.farmer.setup import read_config, read_identity, write_config
from metadisk.wire.dataplane.tls import NodeIdentityCheck
from tests.farmer.helpers import NOWHERE, Bridge

CLI = [sys.executable, "-m", "metadisk.cli.farmer"]


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def assert_one_line_error(result: tuple[int, str, str], fragment: str) -> None:
    code, _, err = result
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert fragment in lines[0], err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "missing --data-dir"),
        (["--data-dir", "{d}"], "missing --allocate"),
        (["--data-dir", "{d}", "--allocate", "1GB"], "missing --bridge"),
        (["--data-dir", "{d}", "--allocate", "lots", "--bridge", NOWHERE], "not a size"),
        (["--data-dir", "{d}", "--allocate", "0", "--bridge", NOWHERE], "more than 0"),
        (["--data-dir", "{d}", "--allocate", "1GB", "--bridge", "ftp://x"], "not an http"),
        (["--data-dir", "{d}", "--allocate", "1GB", "--bridge", "zz@http://x"], "hex"),
        (
            ["--data-dir", "{d}", "--allocate", "1GB", "--bridge", NOWHERE, "--port", "70000"],
            "port",
        ),
        (
            [
                *("--data-dir", "{d}", "--allocate", "1GB", "--bridge", NOWHERE),
                *("--dashboard-port", "-1"),
            ],
            "dashboard-port",
        ),
        (
            ["--data-dir", "{d}", "--allocate", "1GB", "--bridge", NOWHERE, "--difficulty", "40"],
            "difficulty",
        ),
        (["--data-dir", "{d}", "--allocate", "1GB", "--bridge", NOWHERE], "unreachable"),
        (
            ["--data-dir", "{d}", "--allocate", "1GB", "--bridge", "ab" * 32 + "@" + NOWHERE],
            "--bridge-key",
        ),
        (
            ["--data-dir", "{d}", "--allocate", "1GB", "--bridge", NOWHERE, "--bridge-key", "!!"],
            "base64",
        ),
        (["--data-dir", "{d}", "--allocate", "900PiB", "--bridge", NOWHERE], "not a size"),
        (["--data-dir", "{d}", "--allocate", "1000000TB", "--bridge", NOWHERE], "free"),
        (
            [
                "--data-dir",
                "{d}",
                "--allocate",
                "1GB",
                "--bridge",
                NOWHERE,
                "--public-address",
                "x",
            ],
            "http",
        ),
    ],
)
async def test_setup_bad_args(tmp_path: Path, args: list[str], fragment: str) -> None:
    args = [arg.replace("{d}", str(tmp_path / "data")) for arg in args]
    assert_one_line_error(await cli("setup", *args), fragment)
    assert not (tmp_path / "data" / "identity.key").exists()


class FakeBridgeInfo:
    """``GET /v1/bridge`` of a bridge asking for a proof-of-work difficulty (a test double)."""

    def __init__(self, difficulty: int) -> None:
        self.identity = Identity.generate()
        self.difficulty = difficulty

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node_id": self.identity.node_id.hex(),
                "public_key": b64encode(self.identity.public_key),
                "difficulty": self.difficulty,
                "version": "0.1.0",
            }
        )


@pytest_asyncio.fixture
async def info_bridge() -> AsyncIterator[tuple[FakeBridgeInfo, str]]:
    fake = FakeBridgeInfo(difficulty=7)
    app = web.Application()
    app.router.add_get("/v1/bridge", fake.info)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_setup_meets_the_bridge_difficulty_then_runs(
    tmp_path: Path, info_bridge: tuple[FakeBridgeInfo, str]
) -> None:
    fake, url = info_bridge
    data_dir = tmp_path / "data"
    code, out, err = await cli(
        "setup", "--data-dir", str(data_dir), "--allocate", "50MiB", "--bridge", url + "/"
    )
    assert code == 0, err
    identity = read_identity(data_dir)
    assert identity.node_id.difficulty() >= 7
    assert identity.node_id.hex() in out
    assert (data_dir / "identity.key").stat().st_mode & 0o777 == 0o600
    config = read_config(data_dir)
    assert config.allocated == 50 << 20
    assert [(b.node_id, b.public_key, b.url) for b in config.bridges] == [
        (fake.identity.node_id, fake.identity.public_key, url)
    ]

    # a second setup refuses to overwrite
    again = await cli("setup", "--data-dir", str(data_dir), "--allocate", "1MB", "--bridge", url)
    assert_one_line_error(again, "--force")

    farmer = FarmerProcess(config, identity)
    await farmer.start()
    try:
        # `setup` makes a TLS node by default: its certificate is its node key
        assert farmer.url.startswith("https://")
        pinned = NodeIdentityCheck(identity.node_id)
        async with (
            aiohttp.ClientSession() as session,
            session.get(farmer.url + "/v1/node", ssl=pinned) as r,
        ):
            assert (await r.json())["node_id"] == identity.node_id.hex()
        assert (data_dir / "listen.json").exists()
        # the dashboard is plain HTTP on loopback, whatever the data plane speaks
        assert farmer.dashboard_url is not None
        assert farmer.dashboard_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(farmer.dashboard_url) as r:
            assert r.status == 200 and identity.node_id.hex() in await r.text()
    finally:
        assert await farmer.stop() == 0
    assert not (data_dir / "listen.json").exists()


async def test_setup_refuses_a_bridge_that_is_not_the_pinned_one(
    tmp_path: Path, info_bridge: tuple[FakeBridgeInfo, str]
) -> None:
    _, url = info_bridge
    pinned = Identity.generate().node_id.hex()
    result = await cli(
        "setup", "--data-dir", str(tmp_path), "--allocate", "1MB", "--bridge", f"{pinned}@{url}"
    )
    assert_one_line_error(result, "not the pinned")


async def test_setup_offline_with_pinned_bridge(tmp_path: Path) -> None:
    bridge = Identity.generate()
    code, _, err = await cli(
        "setup",
        "--data-dir",
        str(tmp_path / "data"),
        "--allocate",
        "1MB",
        "--bridge",
        f"{bridge.node_id.hex()}@{NOWHERE}",
        "--bridge-key",
        b64encode(bridge.public_key),
        "--difficulty",
        "3",
    )
    assert code == 0, err
    assert read_identity(tmp_path / "data").node_id.difficulty() >= 3
    assert read_config(tmp_path / "data").bridges[0].node_id == bridge.node_id


async def test_run_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert_one_line_error(await cli("run", "--data-dir", str(missing)), "does not exist")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert_one_line_error(await cli("run", "--data-dir", str(a_file)), "not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(await cli("run", "--data-dir", str(empty)), "farmer.toml")
    assert_one_line_error(await cli("run"), "missing --data-dir")

    config, _ = prepare_farmer(tmp_path / "data", [Bridge.new().trusted])
    assert_one_line_error(
        await cli("run", "--data-dir", str(config.data_dir), "--log-level", "loud"), "log-level"
    )
    config.config_path.write_text("allocated = [")
    assert_one_line_error(await cli("run", "--data-dir", str(config.data_dir)), "TOML")

    write_config(replace(config, allocated=10**18))
    assert_one_line_error(
        await cli("run", "--data-dir", str(config.data_dir)), "more than the disk"
    )

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        write_config(replace(config, port=port))
        assert_one_line_error(await cli("run", "--data-dir", str(config.data_dir)), "in use")

    write_config(config)
    config.identity_path.chmod(0o644)
    assert_one_line_error(await cli("run", "--data-dir", str(config.data_dir)), "chmod 600")
