"""The CLI's edge without a network: help everywhere, one-line errors, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metadisk.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    describe,
)
from metadisk.cli.main import main
from metadisk.client import (
    AccessDenied,
    BridgeError,
    BridgeUnavailable,
    DownloadFailed,
    NotFound,
    PermissionDenied,
)
from metadisk.core.errors import DecodeError

COMMANDS = [
    [],
    ["setup"],
    ["mb"],
    ["rb"],
    ["ls"],
    ["cp"],
    ["mv"],
    ["rm"],
    ["cat"],
    ["share"],
    ["up"],
    ["access"],
    ["access", "list"],
    ["access", "create"],
    ["access", "restrict"],
    ["access", "inspect"],
    ["access", "revoke"],
    ["farmer"],
    ["farmer", "setup"],
    ["farmer", "run"],
    ["bridge"],
    ["bridge", "run"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "metadisk")
def test_help_on_every_command(command: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capfd.readouterr().out
    assert "Usage: metadisk" in out


def test_errors_are_one_line_with_a_status(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["ls", "md://"], EXIT_USAGE, "no bucket"),
        (["ls"], EXIT_USAGE, "no access grant"),
        (["cat", "nothing"], EXIT_USAGE, "not a remote path"),
        (["cp", "a"], EXIT_USAGE, "Missing argument"),
        (["frobnicate"], EXIT_USAGE, "No such command"),
        (["setup", "--grant", "mdg1xyz"], EXIT_USAGE, "not an access grant"),
        (["setup", "ftp://bridge"], EXIT_USAGE, "http"),
        (["up", "--allocate", "lots"], EXIT_USAGE, "--allocate"),
        (["access", "inspect", "nope"], EXIT_USAGE, "not an access grant"),
    ]
    for args, status, fragment in cases:
        assert main(["--config-dir", str(tmp_path / "empty"), *args]) == status, args
        err = capfd.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), (args, err)
        assert fragment in err, (args, err)


def test_the_console_script_exits_with_the_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metadisk.cli.main", "cat", "md://b"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("error", "status", "shown"),
    [
        (CliError("plain"), EXIT_FAILED, "plain"),
        (NotFound("no object", code="object-not-found"), EXIT_NOT_FOUND, "[object-not-found]"),
        (AccessDenied("no key"), EXIT_REFUSED, "no key"),
        (PermissionDenied("nope", code="access-denied"), EXIT_REFUSED, "nope"),
        (BridgeError("bad name", code="invalid-request", status=400), EXIT_USAGE, "bad name"),
        (BridgeUnavailable("down\nreally"), EXIT_FAILED, "down; really"),
        (DownloadFailed("lost", failures={3: "timeout: slow"}), EXIT_FAILED, "piece 3: timeout"),
        (DecodeError("garbled"), EXIT_USAGE, "garbled"),
        (FileNotFoundError(2, "No such file or directory", "/x"), EXIT_FAILED, "/x: No such"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
        (RuntimeError("boom"), EXIT_FAILED, "unexpected RuntimeError: boom"),
    ],
)
def test_describe(error: BaseException, status: int, shown: str) -> None:
    message, code = describe(error)
    assert code == status
    assert shown in message
    assert "\n" not in message
