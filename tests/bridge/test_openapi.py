"""The published OpenAPI document, fuzzed with schemathesis against a live bridge process.

Authenticated like a real client: a session token for account routes, a real API key for the
object plane. Checked: no 5xx, and every status, content type and body as the document says.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from metadisk.bridge.config import MAX_INLINE_SIZE, BridgeConfig, DatabaseConfig, sqlite_url
from metadisk.bridge.peer import Bridge
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.objects import MAX_INLINE_DATA
from tests.bridge.helpers import json_call

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SESSION_PATHS = ("/v1/account", "/v1/sessions", "/v1/projects")


class Live:
    def __init__(self, bridge: BridgeProcess) -> None:
        self.url = bridge.url
        creds = {"email": "fuzz@example.org", "password": "fuzz password"}
        json_call(self.url + "/v1/accounts", "POST", creds)
        self.creds = creds
        self.session = self.login()
        project = json_call(self.url + "/v1/projects", "POST", {"name": "fuzz"}, self.session)
        key = json_call(
            f"{self.url}/v1/projects/{project['id']}/api-keys", "POST", {"name": "k"}, self.session
        )
        self.api_key = key["api_key"]
        json_call(self.url + "/v1/buckets", "POST", {"name": "bucket"}, self.api_key)
        for name in ("a", "YQ", "YQ/Yg"):
            body = {"key": name, "data": b64encode(name.encode())}
            json_call(self.url + "/v1/buckets/bucket/objects", "POST", body, self.api_key)

    def login(self) -> str:
        return str(json_call(self.url + "/v1/sessions", "POST", self.creds)["token"])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    bridge = BridgeProcess(Path(tmp_path_factory.mktemp("fuzz")))
    bridge.start()
    try:
        yield Live(bridge)
    finally:
        bridge.stop()


def _document() -> dict[str, Any]:
    """The OpenAPI document of this code, built in-process (the live one is compared below).

    Loaded at collection time so that pytest gets one test per operation.
    """
    with tempfile.TemporaryDirectory() as tmp:
        config = BridgeConfig(data_dir=Path(tmp), database=DatabaseConfig(sqlite_url(Path(tmp))))
        peer = Bridge(config, Identity(bytes(32)))
        document: dict[str, Any] = peer.api.app.openapi()
        peer.db.close()
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_live_document_is_this_one(live: Live) -> None:
    served = json_call(live.url + "/v1/openapi.json", "GET")
    assert served == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(case: Any, live: Live) -> None:
    path = case.operation.path
    if case.method.upper() == "DELETE" and path == "/v1/sessions/current":
        token = live.login()  # log out a throwaway session, not the one the others use
    elif path.startswith(SESSION_PATHS):
        token = live.session
    else:
        token = live.api_key
    case.call_and_validate(
        base_url=live.url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )


# Which credential each route takes, by the first path segments it starts with; the routes that
# take none are listed by name (a new route must be added to one or the other).
SCHEME_BY_PREFIX = [
    ("/v1/admin/", "adminToken"),
    ("/v1/account", "session"),
    ("/v1/sessions/current", "session"),
    ("/v1/projects", "session"),
    ("/v1/revocations", "apiKey"),
    ("/v1/project/", "apiKey"),
    ("/v1/buckets", "apiKey"),
    ("/v1/uploads/", "apiKey"),
    ("/v1/usage", "apiKey"),
]
PUBLIC = {
    ("POST", "/v1/accounts"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/bridge"),
    ("POST", "/v1/nodes/checkin"),
    ("POST", "/v1/nodes/standing"),
    ("POST", "/v1/nodes/exit"),
}
SIGNED = {"/v1/nodes/checkin", "/v1/nodes/standing", "/v1/nodes/exit"}
# Anyone, or an admin (who sees more); the node itself signs a query the document cannot type.
OPTIONAL = {("GET", "/v1/nodes/{node_id}"): [{}, {"adminToken": []}]}


def test_every_route_declares_its_credential() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert {name: (s["type"], s["scheme"]) for name, s in schemes.items()} == {
        "session": ("http", "bearer"),
        "apiKey": ("http", "bearer"),
        "adminToken": ("http", "bearer"),
    }
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            route = (method.upper(), path)
            assert "security" in operation, f"{route} does not say which credential it takes"
            if route in OPTIONAL:
                assert operation["security"] == OPTIONAL[route], route
                continue
            if route in PUBLIC:
                assert operation["security"] == [], route
                assert ("x-signed-message" in operation) == (path in SIGNED), route
                continue
            wanted = next(scheme for prefix, scheme in SCHEME_BY_PREFIX if path.startswith(prefix))
            assert operation["security"] == [{wanted: []}], route
            assert "401" in operation["responses"], route


def test_rate_limited_routes_declare_429_with_retry_after() -> None:
    limited = {
        ("POST", "/v1/accounts"),
        ("POST", "/v1/sessions"),
        ("POST", "/v1/nodes/checkin"),
        ("POST", "/v1/buckets/{bucket}/uploads"),
        ("POST", "/v1/uploads/{stream_id}/segments"),
    }
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "413" in responses, (method, path)
            assert "422" not in responses, (method, path)  # validation errors are 400s
            if (method.upper(), path) in limited:
                assert responses["429"]["headers"]["Retry-After"]["required"] is True
            else:
                assert "429" not in responses, (method, path)


def test_inline_limit_is_the_bridges() -> None:
    assert MAX_INLINE_DATA == MAX_INLINE_SIZE
