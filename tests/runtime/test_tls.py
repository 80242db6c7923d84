"""When plain HTTP to a bridge is refused, and which authorities a bridge's certificate is
checked against."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from metadisk.client import BridgeAccounts, InvalidArgument
from metadisk.devnet.tls import network_tls
from metadisk.runtime.tls import CA_FILE_ENV, INSECURE_ENV, InsecureURL, bridge_ssl, check_transport


@pytest.mark.parametrize(
    "url",
    [
        "https://bridge.example",
        "https://10.0.0.1:7777",
        "http://127.0.0.1:8080",
        "http://127.5.6.7:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
    ],
)
def test_tls_or_loopback_is_fine(url: str) -> None:
    check_transport(url, {})


@pytest.mark.parametrize(
    "url", ["http://bridge.example", "http://10.0.0.1:7777", "http://[2001:db8::1]:80"]
)
def test_plain_http_elsewhere_is_refused_unless_told(url: str) -> None:
    with pytest.raises(InsecureURL, match=INSECURE_ENV):
        check_transport(url, {})
    check_transport(url, {INSECURE_ENV: "1"})


def test_the_client_refuses_a_plain_http_bridge_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSECURE_ENV, raising=False)
    with pytest.raises(InvalidArgument) as refused:
        BridgeAccounts("http://bridge.example:8080")
    assert refused.value.code == "insecure-bridge"
    monkeypatch.setenv(INSECURE_ENV, "1")
    BridgeAccounts("http://bridge.example:8080")


def test_the_ca_file_is_trusted_besides_the_system(tmp_path: Path) -> None:
    files = network_tls(tmp_path)
    context = bridge_ssl("https://127.0.0.1:1", {CA_FILE_ENV: str(files.ca_file)})
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    names = [dict(x[0] for x in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "metadisk local network CA"} in names
    assert bridge_ssl("http://127.0.0.1:1", {}) is True


def test_network_tls_files_are_private_and_made_once(tmp_path: Path) -> None:
    files = network_tls(tmp_path)
    assert files.bridge_key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "tls").stat().st_mode & 0o077 == 0
    before = files.ca_file.read_bytes()
    assert network_tls(tmp_path).ca_file.read_bytes() == before
