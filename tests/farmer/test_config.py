"""Sizes, the config file's round trip, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.farmer.config import (
    FarmerConfig,
    TrustedBridge,
    config_from_toml,
    config_to_toml,
    parse_size,
)
from metadisk.farmer.errors import SetupError
from metadisk.farmer.setup import read_identity, write_identity

BRIDGE = Identity(bytes([5]) * 32)
TRUSTED = TrustedBridge(BRIDGE.node_id, BRIDGE.public_key, "http://127.0.0.1:7000/")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500MB", 500 * 10**6),
        ("2GiB", 2 * 2**30),
        ("1.5 GB", 1_500_000_000),
        ("1.1GB", 1_100_000_000),
        ("4096", 4096),
        ("10k", 10_000),
        ("3tib", 3 * 2**40),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "5 XB", "-1GB", "1e9", "GB"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_config_round_trip(tmp_path: Path) -> None:
    config = FarmerConfig(
        data_dir=tmp_path,
        allocated=123_456_789,
        bridges=(TRUSTED,),
        host="::1",
        port=7777,
        public_address="https://farmer.example:443/",
        trash_grace=0,
        checkin_interval=5,
        direct_io=True,
        header_timeout=7.5,
        body_idle_timeout=12,
        request_timeout=600,
        max_header_size=4096,
        max_headers=40,
        max_puts_per_address=8,
    )
    assert TRUSTED.url == "http://127.0.0.1:7000"
    assert config_from_toml(config_to_toml(config), tmp_path) == config


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("allocated = ", "not valid TOML"),
        ("host = 'x'", "missing setting"),
        ("allocated = 'lots'", "not a size"),
        ("allocated = 10\nport = 'x'", "port"),
        ("allocated = 10\nbogus = 1", "unknown setting"),
        ("allocated = 10\ndirect_io = 1", "direct_io must be true or false"),
        ("allocated = 10", "at least one trusted bridge"),
        (
            "allocated = 0\n" + "[[bridges]]\nnode_id='00'\npublic_key='AA'\nurl='http://x'",
            "node id",
        ),
    ],
)
def test_config_errors_are_setup_errors(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(SetupError) as info:
        config_from_toml(text, tmp_path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_bridge_key_must_match_its_id() -> None:
    other = Identity(bytes([6]) * 32)
    with pytest.raises(ValueError, match="does not belong"):
        TrustedBridge(BRIDGE.node_id, other.public_key, "http://b")
    with pytest.raises(ValueError, match="http"):
        TrustedBridge(BRIDGE.node_id, BRIDGE.public_key, "ftp://b")
    assert b64encode(BRIDGE.public_key)


def test_identity_file_is_private(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = write_identity(tmp_path, identity)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_identity(tmp_path).seed == identity.seed
    with pytest.raises(SetupError, match="already exists"):
        write_identity(tmp_path, identity)
    path.chmod(0o644)
    with pytest.raises(SetupError, match="readable by others"):
        read_identity(tmp_path)
    path.chmod(0o600)
    path.write_text("garbage\n")
    with pytest.raises(SetupError, match="not a farmer identity"):
        read_identity(tmp_path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["trash_grace", "checkin_interval", "expiry_interval"])
def test_durations_must_be_finite(tmp_path: Path, name: str, value: str) -> None:
    # TOML has nan and inf: nan passes every `<= 0` check and would stop a chore for good.
    text = config_to_toml(FarmerConfig(data_dir=tmp_path, allocated=10, bridges=(TRUSTED,)))
    with pytest.raises(SetupError) as info:
        config_from_toml(f"{name} = {value}\n" + text.replace(f"{name} =", "# was "), tmp_path)
    assert "finite" in str(info.value) or "positive" in str(info.value)


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("header_timeout = 0", "header_timeout must be positive"),
        ("body_idle_timeout = -1", "body_idle_timeout must be positive"),
        ("request_timeout = nan", "request_timeout must be a finite number"),
        ("max_headers = 0", "max_headers must be a whole number of at least 1"),
        ("max_puts_per_address = 2.5", "max_puts_per_address has the wrong type"),
        ("max_header_size = 100", "max_header_size must be at least 1024"),
    ],
)
def test_data_plane_bounds_are_checked(tmp_path: Path, setting: str, fragment: str) -> None:
    text = config_to_toml(FarmerConfig(data_dir=tmp_path, allocated=10, bridges=(TRUSTED,)))
    name = setting.split(" =")[0]
    with pytest.raises(SetupError) as info:
        config_from_toml(f"{setting}\n" + text.replace(f"{name} =", "# was "), tmp_path)
    assert fragment in str(info.value)
