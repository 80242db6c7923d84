"""The bridge's account API (accounts, sessions, projects, API keys) for the CLI, blocking.

The CLI makes a handful of these calls per command, one after another, so plain `urllib` is
enough and needs no event loop. Error answers become the client library's `BridgeError`
classes (same codes, same exit statuses as every other command), and an unreachable bridge is
`BridgeUnavailable`, so the CLI's edge treats them like any library error.

Logging in costs the bridge an Argon2 hash, so the session token is cached in the config dir
(``session.json``, 0600) until shortly before it expires.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from metadisk.cli.config import SESSION_FILE, write_private
from metadisk.client import BridgeError, BridgeUnavailable
from metadisk.client.errors import bridge_error

_TIMEOUT = 60.0
_MAX_BODY = 1 << 20
_EARLY = 60  # seconds before expiry a cached session stops being used


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    expires_at: int


class AccountAPI:
    """One bridge's account routes; `token` (from `login`) authorizes all but the first two.

    Example::

        api = AccountAPI("http://127.0.0.1:7777")
        api.register("ada@example.com", "correct horse battery")
        api = api.with_session(api.login("ada@example.com", "correct horse battery"))
        project = api.create_project("photos")
        key = api.create_api_key(project["id"], "laptop")["api_key"]
    """

    def __init__(self, bridge_url: str, token: str | None = None) -> None:
        self.url = bridge_url.rstrip("/")
        self._token = token

    def with_session(self, session: Session) -> AccountAPI:
        return AccountAPI(self.url, session.token)

    def register(self, email: str, password: str) -> dict[str, Any]:
        return _object(self._call("POST", "/v1/accounts", {"email": email, "password": password}))

    def login(self, email: str, password: str) -> Session:
        answer = _object(self._call("POST", "/v1/sessions", {"email": email, "password": password}))
        return Session(str(answer["token"]), int(answer["expires_at"]))

    def projects(self) -> list[dict[str, Any]]:
        return [_object(p) for p in _object(self._call("GET", "/v1/projects"))["projects"]]

    def create_project(self, name: str) -> dict[str, Any]:
        return _object(self._call("POST", "/v1/projects", {"name": name}))

    def api_keys(self, project_id: str) -> list[dict[str, Any]]:
        answer = _object(self._call("GET", f"/v1/projects/{quote(project_id)}/api-keys"))
        return [_object(k) for k in answer["api_keys"]]

    def create_api_key(self, project_id: str, name: str) -> dict[str, Any]:
        path = f"/v1/projects/{quote(project_id)}/api-keys"
        return _object(self._call("POST", path, {"name": name}))

    def delete_api_key(self, project_id: str, key_id: str) -> None:
        self._call("DELETE", f"/v1/projects/{quote(project_id)}/api-keys/{quote(key_id)}")

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return call(self.url, method, path, self._token, body)


def revoke_with_key(bridge_url: str, api_key: str, target: str) -> None:
    """Revoke `target` (the caller's key or one restricted from it) with the key `api_key`."""
    call(bridge_url.rstrip("/"), "POST", "/v1/revocations", api_key, {"api_key": target})


def call(
    url: str, method: str, path: str, token: str | None, body: Mapping[str, Any] | None = None
) -> Any:
    """One JSON request; the decoded answer (None for 204), or a `BridgeError`."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    # The URL comes from the user's config or a grant, and check_bridge_url allows http(s) only.
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
            raw = response.read(_MAX_BODY)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise _error(exc) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BridgeUnavailable(
            f"cannot reach the bridge at {url}: {reason}", code="connection-failed"
        ) from exc
    if status == 204 or not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BridgeError(f"{method} {path}: answer is not JSON", code="bad-response") from exc


def _error(exc: urllib.error.HTTPError) -> BridgeError:
    try:
        detail = json.loads(exc.read(_MAX_BODY))["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError, OSError):
        code, message = "", f"the bridge answered HTTP {exc.code}"
    return bridge_error(exc.code, code, message)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BridgeError("the bridge sent an unexpected answer", code="bad-response")
    return value


def cached_session(
    config_dir: Path, bridge_url: str, email: str, now: Callable[[], float] = time.time
) -> Session | None:
    """The cached login for this bridge and email, if it is still good for a while."""
    try:
        raw = json.loads((config_dir / SESSION_FILE).read_text())
        if raw["bridge_url"] != bridge_url or raw["email"] != email:
            return None
        session = Session(str(raw["token"]), int(raw["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return session if session.expires_at - _EARLY > now() else None


def cache_session(config_dir: Path, bridge_url: str, email: str, session: Session) -> None:
    record = {
        "bridge_url": bridge_url,
        "email": email,
        "token": session.token,
        "expires_at": session.expires_at,
    }
    write_private(config_dir / SESSION_FILE, json.dumps(record) + "\n")


def forget_session(config_dir: Path) -> None:
    (config_dir / SESSION_FILE).unlink(missing_ok=True)
