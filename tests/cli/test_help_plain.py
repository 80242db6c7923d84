"""Every `--help` page reads as click's do: flags with no `<bool>`, arguments as `SRC`, not
`{src}` or `<list[str]>`."""

from __future__ import annotations

import pytest
import typer
from typer.core import TyperGroup

from metadisk.cli.main import app, main


def _command_paths() -> list[list[str]]:
    found: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                found.append([*path, name])
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "metadisk")
def test_help_has_no_type_noise(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    assert main([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    assert "Usage:" in shown
    for noise in ("<bool>", "{", "<list[", "<str>", "<int"):
        assert noise not in shown, (noise, shown)


def test_arguments_read_as_click_metavars(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cp", "--help"]) == 0
    assert "metadisk cp [OPTIONS] SRC... DST" in capsys.readouterr().out
    assert main(["share", "--help"]) == 0
    assert "metadisk share [OPTIONS] PATHS..." in capsys.readouterr().out
