"""The shape of the tree: each wire literal written once, and no module past about 600 lines."""

from __future__ import annotations

import ast
import collections
import re
import tomllib
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "metadisk"
MAX_LINES = 600
# What a route path or header name looks like; prose that names one goes through the constant.
_WIRE = re.compile(r"(^/(v1|metrics)\b)|(/v1/)|(?i:x-metadisk-)")


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_each_route_path_and_header_name_is_written_once() -> None:
    places: dict[str, list[str]] = collections.defaultdict(list)
    for path in _modules():
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and _WIRE.search(node.value)
            ):
                places[node.value].append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert places, "the scan found no route at all: is the pattern still right?"
    written_twice = {text: where for text, where in places.items() if len(where) > 1}
    assert written_twice == {}
    # Routes and headers live in the contracts, the metrics path in the runtime.
    homes = {"wire/api/routes.py", "wire/dataplane/contract.py", "runtime/metrics.py"}
    strays = {text: where for text, where in places.items() if where[0].split(":")[0] not in homes}
    assert strays == {}


def test_no_module_outgrows_its_name() -> None:
    long = {
        str(path.relative_to(SRC)): count
        for path in _modules()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# What the CLI and local networks may import of each role; every other module must be in the
# import contract's forbidden list, so that a new module is private until said otherwise.
PUBLIC = {
    "bridge": {"peer", "config", "admin"},
    "farmer": {"peer", "config", "setup", "errors", "standing"},
    "client": set(),  # the package itself: metadisk.client's __init__ is its public API
}


def test_the_cli_contract_names_every_private_module_of_each_role() -> None:
    with open(SRC.parent.parent / "pyproject.toml", "rb") as handle:
        contracts = tomllib.load(handle)["tool"]["importlinter"]["contracts"]
    sources = ["metadisk.cli", "metadisk.devnet"]
    (contract,) = [c for c in contracts if c.get("source_modules") == sources]
    forbidden = set(contract["forbidden_modules"])
    for role, public in PUBLIC.items():
        children = {
            path.stem if path.is_file() else path.name
            for path in (SRC / role).iterdir()
            if (path.suffix == ".py" and path.stem != "__init__")
            or (path.is_dir() and (path / "__init__.py").exists())
        }
        assert public <= children, f"{role}: public modules that do not exist"
        expected = {f"metadisk.{role}.{name}" for name in children - public}
        assert {m for m in forbidden if m.startswith(f"metadisk.{role}.")} == expected, role
