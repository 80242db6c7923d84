"""`metadisk up` keeps no password: network.json holds the grant and nothing the account could be
taken over with, and a data dir from before (whose network.json has the password) still starts,
losing the password on the way."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.e2e.harness import run_cli
from tests.e2e.test_up import Up


def test_network_json_keeps_no_password_and_an_older_one_still_starts(tmp_path: Path) -> None:
    data_dir, config_dir = tmp_path / "net", tmp_path / "user-config"
    state_file = data_dir / "network.json"
    note = tmp_path / "note.txt"
    note.write_text("kept across runs")

    first = Up(data_dir, config_dir)
    try:
        first.ready()
        first.said(r"^grant ")  # the announcement is out, up to the grant line
        state = json.loads(state_file.read_text())
        assert "password" not in state
        assert set(state) == {"version", "email", "project_id", "grant"}
        # The new account's password is shown once, for the account commands.
        shown = [line for line in first.output if line.startswith("password")]
        assert len(shown) == 1 and "saved nowhere" in shown[0]
        password = shown[0].split()[1]
        for path in data_dir.rglob("*"):
            if path.is_file() and path.stat().st_size < 1 << 20:
                assert password.encode() not in path.read_bytes(), path
        assert run_cli("mb", "md://kept", config_dir=config_dir).status == 0
        assert run_cli("cp", note, "md://kept/", config_dir=config_dir).status == 0
        assert first.stop(signal.SIGTERM) == 0
    finally:
        first.kill()

    # What an older `metadisk up` wrote: the same, with the password.
    state_file.write_text(json.dumps({**state, "password": password}, indent=2) + "\n")
    state_file.chmod(0o600)
    second = Up(data_dir, config_dir)
    try:
        second.ready()
        second.said(r"^grant ")
        assert not any(line.startswith("password") for line in second.output)
        rewritten = json.loads(state_file.read_text())
        assert "password" not in rewritten
        assert rewritten["grant"] == state["grant"]
        read = run_cli("cat", "md://kept/note.txt", config_dir=config_dir)
        assert (read.status, read.out) == (0, "kept across runs")
        assert second.stop(signal.SIGTERM) == 0
    finally:
        second.kill()
