"""The shape of the tree: each wire literal written once, and no module past about 600 lines."""

from __future__ import annotations

import ast
import collections
import re
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
