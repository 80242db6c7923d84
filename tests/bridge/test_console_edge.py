"""The console behind the bridge's edge, over real HTTP: its logins spend the API's rate-limit
tokens, its pages carry the security headers and strict cookies, operator pages follow the admin
token."""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from metadisk.devnet.bridge import bridge_process
from metadisk.devnet.tls import network_tls

PASSWORD = "correct horse"


@pytest.fixture
def bridge_url(tmp_path: Path) -> Iterator[str]:
    server = {"login_failure_burst": 3, "login_failure_rate": 0.001}
    with bridge_process(tmp_path / "bridge", settings={"server": server}) as bridge:
        yield bridge.url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        yield client


async def _form_token(session: aiohttp.ClientSession, url: str) -> tuple[str, Any]:
    async with session.get(url) as response:
        assert response.status == 200
        html = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found is not None
        return found.group(1), response.headers


async def test_console_logins_spend_the_api_login_tokens(
    bridge_url: str, session: aiohttp.ClientSession
) -> None:
    email = "edge@example.org"
    credentials = {"email": email, "password": PASSWORD}
    async with session.post(f"{bridge_url}/v1/accounts", json=credentials) as response:
        assert response.status == 201
    csrf, headers = await _form_token(session, f"{bridge_url}/console/login")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    cookie = headers["Set-Cookie"]
    assert (
        "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
    )
    wrong = {"email": email, "password": "wrong horse", "csrf": csrf}
    for _ in range(3):
        async with session.post(f"{bridge_url}/console/login", data=wrong) as response:
            assert response.status == 401
            assert "wrong email or password" in await response.text()
    async with session.post(f"{bridge_url}/console/login", data=wrong) as response:
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    # The JSON API's login shares the buckets: the right password waits as well.
    async with session.post(f"{bridge_url}/v1/sessions", json=credentials) as response:
        assert response.status == 429


async def test_a_session_cookie_opens_the_projects_and_operator_pages_are_off(
    bridge_url: str, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{bridge_url}/console/projects", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/console/login"
    csrf, _ = await _form_token(session, f"{bridge_url}/console/signup")
    form = {"email": "s@example.org", "password": PASSWORD, "confirm": PASSWORD, "csrf": csrf}
    async with session.post(f"{bridge_url}/console/signup", data=form) as response:
        assert response.status == 200 and "default" in await response.text()
        assert str(response.url).endswith("/console/projects")
    # No [server] admin_token: the operator pages are off, as the admin API is.
    async with session.get(f"{bridge_url}/console/admin/login") as response:
        assert "operator pages are off" in await response.text()
    csrf, _ = await _form_token(session, f"{bridge_url}/console/login")
    async with session.post(
        f"{bridge_url}/console/admin/login", data={"token": "", "csrf": csrf}
    ) as response:
        assert response.status == 403
    async with session.get(f"{bridge_url}/console/admin", allow_redirects=False) as response:
        assert response.status == 303


def test_over_https_the_cookies_are_secure(tmp_path: Path) -> None:
    files = network_tls(tmp_path)
    server = {"tls_cert": str(files.bridge_cert), "tls_key": str(files.bridge_key)}
    with bridge_process(tmp_path / "bridge", settings={"server": server}) as bridge:
        assert bridge.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(files.ca_file))
        with urllib.request.urlopen(f"{bridge.url}/console/login", context=context) as answer:
            cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
