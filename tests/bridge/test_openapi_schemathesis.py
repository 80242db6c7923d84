"""The `schemathesis` CLI with ``--checks all`` against a live bridge and three farmers.

A real ``metadisk bridge run`` child process (through `LocalNetwork`), an account, a project, an
API key, buckets, objects and begun uploads; then ``schemathesis run`` (a child process too)
against the served ``/v1/openapi.json``, with the credentials given per security scheme, so each
route gets the one its document entry names, and the real ids pinned where a route names one.

The checks hold the document to the server both ways: every status, header, content type and body
as declared, no 5xx, malformed requests refused, and requests valid by the schema accepted. What
"accepted" means is `ACCEPTED` below: a well-formed request may still name what is not there
(404), conflict with the state (409), fail its credential (401/403) or be limited (429); a 400
for a request the schema allows is a mismatch and fails the run, except on the few routes in
`OVERRIDES`, each with the rule JSON Schema cannot state there.

Routes left out, and why:

- ``POST /v1/nodes/checkin``: a check-in makes the bridge ping the address it names back, so a
  fuzzer would make it connect to whatever addresses it draws; and the contact is a signed
  message no schema can generate.
- ``POST /v1/nodes/standing``, ``POST /v1/nodes/exit``: bodies are signed NodeQuery messages;
  generated ones are refused for their signature (400), which says nothing about the schema.

The admin routes run too, with the admin token. A rate limit's 429 is declared on the routes
it guards and accepted; once the bridge has limits, this bridge should get generous ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metadisk.core.encoding import b64encode
from metadisk.devnet.network import LocalNetwork
from tests.bridge.helpers import json_call

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEGMENT_REPLACEMENTS = "/v1/uploads/{stream_id}/segments/{index}/replacements"
EXCLUDED = r"^/v1/nodes/(checkin|standing|exit)$"
ADMIN_TOKEN = "schemathesis-admin-token"
# Enough to draw past the boundaries of every field and still finish in about a minute on two
# busy cores (the coverage phase adds its own boundary cases on top of these).
MAX_EXAMPLES = 15


@dataclass
class Live:
    url: str
    session: str
    throwaway_session: str
    api_key: str
    project_id: str
    stream_id: str
    doomed_stream_id: str
    committed_stream_id: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("schemathesis")
    network = LocalNetwork(
        root, farmers=3, bridge_settings={"server": {"admin_token": ADMIN_TOKEN}}
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(network.start())
        tenant = loop.run_until_complete(network.create_tenant(project="fuzz"))
        url = network.bridge.url
        creds = {"email": tenant.email, "password": tenant.password}
        session = json_call(url + "/v1/sessions", "POST", creds)["token"]
        throwaway = json_call(url + "/v1/sessions", "POST", creds)["token"]
        json_call(url + "/v1/buckets", "POST", {"name": "bucket"}, tenant.api_key)
        for name in ("a", "YQ", "YQ/Yg"):
            body = {"key": name, "data": b64encode(name.encode())}
            json_call(url + "/v1/buckets/bucket/objects", "POST", body, tenant.api_key)
        json_call(url + "/v1/buckets", "POST", {"name": "doomed"}, tenant.api_key)
        uploads = url + "/v1/buckets/bucket/uploads"
        began = [json_call(uploads, "POST", {"key": "up"}, tenant.api_key) for _ in range(3)]
        yield Live(
            url,
            session,
            throwaway,
            tenant.api_key,
            tenant.project_id,
            began[0]["stream_id"],
            began[1]["stream_id"],
            began[2]["stream_id"],
        )
    finally:
        loop.run_until_complete(network.stop())
        loop.close()


# positive_data_acceptance: what a request valid by the schema may be answered with. It may
# name what is not there or conflict with the state (404, 409), fail its credential (401, 403)
# or be limited (429); never 400, except on the routes below, for a rule the document cannot
# state (its schemas are the same for every bridge, and JSON Schema has no rule across fields).
ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]
WITH_400 = [*ACCEPTED, "400"]
# Per operation, and why: each check's statuses; "stateful": False leaves the operation out of
# the stateful phase (it still runs in the others).
OVERRIDES: dict[str, dict[str, list[str] | bool]] = {
    # the profile must be one this bridge configured
    "POST /v1/buckets": {"positive_data_acceptance": WITH_400},
    # the key to revoke must be a genuine serialized key (a MAC inside the base64); and its 404
    # api-key-not-found names a key of another project, where the stateful phase (following a
    # new project's id here) reads it as the new project gone (ensure_resource_availability)
    "POST /v1/revocations": {"positive_data_acceptance": WITH_400},
    "POST /v1/projects/{project_id}/revocations": {
        "positive_data_acceptance": WITH_400,
        "stateful": False,
    },
    # sizes within the configured segment size, piece_size fitting encrypted_size at k
    "POST /v1/uploads/{stream_id}/segments": {"positive_data_acceptance": WITH_400},
    # the receipts: at least o of them valid, each signed by the farmer of its order limit
    "POST /v1/uploads/{stream_id}/segments/{index}/commit": {"positive_data_acceptance": WITH_400},
    # the pieces named must be the segment's, at least one; and a replacement needs a node the
    # segment does not use yet: three farmers run out of them, and the bridge answers the
    # declared 503 not-enough-nodes, as it should
    f"POST {SEGMENT_REPLACEMENTS}": {
        "positive_data_acceptance": [*WITH_400, "503"],
        "not_a_server_error": ["2xx", "3xx", "4xx", "503"],
    },
    # exactly one of key and prefix
    "GET /v1/buckets/{bucket}/uploads": {"positive_data_acceptance": WITH_400},
    # the cursor within the prefix
    "GET /v1/buckets/{bucket}/objects": {"positive_data_acceptance": WITH_400},
    # a new key other than the object's own (a copy may name it); each segment exactly once
    "POST /v1/buckets/{bucket}/object/move": {"positive_data_acceptance": WITH_400},
    "POST /v1/buckets/{bucket}/object/copy": {"positive_data_acceptance": WITH_400},
}


def _config(live: Live) -> str:
    """schemathesis.toml: credentials per security scheme and the real ids to use."""
    lines = [
        "[auth.openapi.session]",
        f'bearer = "{live.session}"',
        "[auth.openapi.apiKey]",
        f'bearer = "{live.api_key}"',
        "[auth.openapi.adminToken]",
        f'bearer = "{ADMIN_TOKEN}"',
        "[parameters]",
        f'"path.project_id" = "{live.project_id}"',
        '"path.bucket" = "bucket"',
        f'"path.stream_id" = "{live.stream_id}"',
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {json.dumps(ACCEPTED)}",
        # Logging out ends the session it is called with: give it its own, so the other
        # account routes keep theirs (once it is gone, the route answers 401, as it should).
        "[[operations]]",
        'include-name = "DELETE /v1/sessions/current"',
        f'headers = {{ Authorization = "Bearer {live.throwaway_session}" }}',
        # The deletes and the commit of an upload get things of their own, so the other routes
        # keep theirs (an upload committed is an object, no longer an upload).
        "[[operations]]",
        'include-name = "DELETE /v1/buckets/{bucket}"',
        "[operations.parameters]",
        '"path.bucket" = "doomed"',
        "[[operations]]",
        'include-name = "DELETE /v1/uploads/{stream_id}"',
        "[operations.parameters]",
        f'"path.stream_id" = "{live.doomed_stream_id}"',
        "[[operations]]",
        'include-name = "POST /v1/uploads/{stream_id}/commit"',
        "[operations.parameters]",
        f'"path.stream_id" = "{live.committed_stream_id}"',
        # the segments listed strictly increasing (JSON Schema orders no items), each committed
        "[operations.checks.positive_data_acceptance]",
        f"expected-statuses = {json.dumps(WITH_400)}",
    ]
    for name, checks in OVERRIDES.items():
        lines += ["[[operations]]", f'include-name = "{name}"']
        for check, statuses in checks.items():
            if check == "stateful":
                lines += ["[operations.phases.stateful]", "enabled = false"]
            else:
                lines += [
                    f"[operations.checks.{check}]",
                    f"expected-statuses = {json.dumps(statuses)}",
                ]
    return "\n".join(lines) + "\n"


def test_schemathesis_all_checks(live: Live, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(live))
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{live.url}/v1/openapi.json",
        "--checks",
        "all",
        "--exclude-path-regex",
        EXCLUDED,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-color",
        "--output-truncate",
        "false",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    print(done.stdout[done.stdout.find("WARNINGS") :])  # with -s: what was run and found
