"""Start-up stays light: what importing the command tree and running `metadisk ls` must not
import, checked in a fresh interpreter's `sys.modules` (no timing: bench/cli.py shows seconds)."""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import metadisk.client
import metadisk.client.bridge_api
import metadisk.wire.dataplane
from metadisk.cli import config as cfg
from metadisk.cli.main import COMMANDS, _build
from metadisk.core.grant import AccessGrant
from tests.cli.test_config import a_grant

# Every command's module but `ls`'s: the command tree imports none of them until it runs one.
OTHER_COMMANDS = sorted({f"metadisk.cli.{module}" for module in COMMANDS.values()} - {
    "metadisk.cli.listing"
})  # fmt: skip

# What `ls` has no use for: the transfer commands' plan and progress bars (Rich), the passphrase
# check, the blocking facade, the bridge's and farmer's code and their frameworks.
LS_NEVER = [
    *OTHER_COMMANDS,
    "metadisk.cli.transfers",
    "metadisk.cli.progress",
    "metadisk.cli.grants",
    "rich",
    "metadisk.client.passphrase",
    "metadisk.client.sync",
    "metadisk.bridge",
    "metadisk.farmer",
    "metadisk.devnet",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    # What the library imports where it is used, not at the top, as ls has no use for it:
    "argon2",  # a passphrase's key derivation (core.keys)
    "reed_solomon_leopard",  # erasure coding (core.erasure)
    "cryptography.hazmat.primitives.serialization",  # ssh, rsa, dsa...: not for Ed25519's raw bytes
    "metadisk.client.bridge_api.accounts",  # the account and node-directory clients
    "metadisk.wire.api.accounts",  # the account API's models (usage, keys, verifier)
    "metadisk.wire.api.nodes",  # the node directory's models
]

# The transfer pipelines and what they use: `AsyncProject` builds them on its first transfer, and
# a listing moves no piece.
LS_NO_PIPELINES = [
    "metadisk.client.transfers",
    "metadisk.client.upload",
    "metadisk.client.download",
    "metadisk.client.offload",
    "multiprocessing",  # the offload's worker processes
    # The farmers' data plane: its client, contract and TLS pinning (the package resolves its
    # names on first use; `ClientConfig` names `wire.dataplane.config` alone).
    "metadisk.wire.dataplane.client",
    "metadisk.wire.dataplane.contract",
    "metadisk.wire.dataplane.tls",
    "cryptography.x509",  # its TLS pinning: ~30 ms of regular expressions alone
    "statistics",  # the long-tail rules' median: fractions, decimal, random
]

RUN_CLI = "from metadisk.cli.main import main; status = main(sys.argv[1:])"


def _modules(code: str, *args: str) -> tuple[set[str], str, object]:
    """What a fresh interpreter has imported after running `code` (with `args` in sys.argv),
    its stderr, and the `status` that code left, if any."""
    probe = f"import json, sys\n{code}\n" + (
        'print(json.dumps({"status": globals().get("status"), "modules": sorted(sys.modules)}))'
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout.splitlines()[-1])
    return set(found["modules"]), done.stderr, found["status"]


def _loaded(modules: set[str], name: str) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


@pytest.fixture
def refusing_bridge() -> Iterator[str]:
    """A loopback address whose port is bound but not listening: every connection is refused."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{reserved.getsockname()[1]}"


@pytest.fixture(params=[["ls"], ["ls", "md://photos/2024/"]], ids=["buckets", "folder"])
def ls_modules(request: pytest.FixtureRequest, tmp_path: Path, refusing_bridge: str) -> set[str]:
    """What `metadisk ls` imported, run as far as its request to the bridge."""
    config_dir = tmp_path / "config"
    parsed = AccessGrant.parse(a_grant())
    grant = AccessGrant(refusing_bridge, parsed.api_key, parsed.encryption).serialize()
    cfg.save(config_dir, cfg.CliConfig(grant=grant))
    modules, stderr, status = _modules(RUN_CLI, "--config-dir", str(config_dir), *request.param)
    # It got as far as asking the bridge: the project was opened and its request sent.
    assert status == 1 and "cannot reach the bridge" in stderr, stderr
    assert {"aiohttp", "metadisk.client.project", "metadisk.cli.listing"} <= modules
    return modules


def test_the_command_tree_imports_no_command_and_no_client() -> None:
    modules, _, _ = _modules("import metadisk.cli.main")
    heavy = [*OTHER_COMMANDS, "metadisk.cli.listing", "metadisk.client.project", "metadisk.wire",
             "aiohttp", "pydantic", "rich"]  # fmt: skip
    assert [name for name in heavy if _loaded(modules, name)] == []


def test_each_module_registers_the_commands_the_table_gives_it() -> None:
    """A command a module adds but `COMMANDS` lacks would be missing from help and unreachable."""
    for module in set(COMMANDS.values()):
        assert sorted(_build(module)) == sorted(n for n, m in COMMANDS.items() if m == module)


def test_ls_imports_nothing_it_does_not_need(ls_modules: set[str]) -> None:
    assert [name for name in LS_NEVER if _loaded(ls_modules, name)] == []


@pytest.mark.parametrize("name", LS_NO_PIPELINES)
def test_ls_does_not_import_the_transfer_pipelines(ls_modules: set[str], name: str) -> None:
    assert not _loaded(ls_modules, name)


def test_a_client_error_class_costs_its_module_alone() -> None:
    modules, _, _ = _modules("from metadisk.client import NotFound")
    assert sorted(m for m in modules if m.startswith("metadisk.client")) == [
        "metadisk.client",
        "metadisk.client.errors",
    ]
    assert not _loaded(modules, "aiohttp") and not _loaded(modules, "pydantic")


@pytest.mark.parametrize(
    "package", [metadisk.client, metadisk.client.bridge_api, metadisk.wire.dataplane]
)
def test_lazy_names_agree_for_readers_type_checkers_and_imports(package: ModuleType) -> None:
    """`__all__`, the TYPE_CHECKING imports and the table `__getattr__` uses name the same
    things from the same modules, and each name resolves."""
    homes: dict[str, str] = package._HOME_OF
    assert sorted(homes) == sorted(package.__all__)
    tree = ast.parse(Path(str(package.__file__)).read_text())
    [block] = [node for node in tree.body if isinstance(node, ast.If)]
    typed = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == homes
    for name, module in homes.items():
        value = getattr(package, name)
        assert value is getattr(sys.modules[module], name)
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        getattr(package, "Nope")  # noqa: B009 (the module's __getattr__ is under test)


async def test_a_project_builds_its_pipelines_once_on_first_transfer(refusing_bridge: str) -> None:
    """Listing builds no pipeline; two first transfers at once build one transport, offload and
    set of pipelines, which `aclose` closes with the bridge client."""
    from metadisk.client import AsyncProject, BridgeUnavailable
    from metadisk.client.farmer_transport import HttpFarmerTransport
    from metadisk.client.offload import Offload

    parsed = AccessGrant.parse(a_grant())
    grant = AccessGrant(refusing_bridge, parsed.api_key, parsed.encryption)
    project = AsyncProject(grant)
    with pytest.raises(BridgeUnavailable):
        await project.list_buckets()
    assert project._transfers is None and [type(o).__name__ for o in project._owned] == [
        "BridgeAPI"
    ]
    both = await asyncio.gather(
        project.begin_upload("photos", "a.jpg"),
        project.begin_upload("photos", "b.jpg"),
        return_exceptions=True,
    )
    assert all(isinstance(result, BridgeUnavailable) for result in both), both
    transfers = project._transfers
    assert transfers is not None
    owned = project._owned
    assert [type(o) for o in owned[1:]] == [HttpFarmerTransport, Offload]
    await project.aclose()
    assert owned[2]._closed  # the offload, closed with the project
    with pytest.raises(RuntimeError, match="closed"):
        await project.begin_upload("photos", "c.jpg")
