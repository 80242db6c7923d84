"""Swagger UI and ReDoc work offline: their pages reference only the bridge itself, and the
bridge serves the packaged scripts and styles they load."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.routes import DOCS, OPENAPI, REDOC
from tests.bridge.conftest import DOUBLES_SETTINGS

REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.fixture(scope="module")
def docs_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path_factory.mktemp("bridge"), settings=DOUBLES_SETTINGS)
    process.start()
    yield process
    process.stop()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.headers.get_content_type(), answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get_content_type(), refused.read()


@pytest.mark.parametrize("page", [DOCS, REDOC])
def test_docs_page_loads_nothing_from_elsewhere(docs_bridge: BridgeProcess, page: str) -> None:
    status, kind, body = _get(docs_bridge.url + page)
    assert (status, kind) == (200, "text/html")
    html = body.decode()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), html
    references = REFERENCE.findall(html)
    assert OPENAPI in references
    scripts = [ref for ref in references if ref.endswith((".js", ".css", ".png"))]
    assert scripts, html
    for ref in scripts:
        assert ref.startswith("/v1/docs/assets/"), ref
        status, kind, asset = _get(docs_bridge.url + ref)
        assert status == 200, ref
        assert kind in ("text/javascript", "text/css", "image/png"), (ref, kind)
        assert len(asset) > 100, ref


def test_assets_are_packaged_with_their_licenses() -> None:
    from metadisk.bridge import apidocs

    for path, _ in apidocs.ASSETS.values():
        assert (apidocs.ASSET_DIR / path).is_file(), path
    for package in ("swagger-ui", "redoc"):
        assert (apidocs.ASSET_DIR / package / "LICENSE").is_file()


def test_unknown_asset_is_a_404_envelope(docs_bridge: BridgeProcess) -> None:
    status, kind, body = _get(docs_bridge.url + "/v1/docs/assets/..%2F..%2Fconfig.py")
    assert (status, kind) == (404, "application/json")
    assert json.loads(body)["error"]["code"] == "not-found"


def test_docs_pages_are_not_in_the_api_document(docs_bridge: BridgeProcess) -> None:
    _, _, body = _get(docs_bridge.url + OPENAPI)
    paths = json.loads(body)["paths"]
    assert not [path for path in paths if path.startswith((DOCS, REDOC))]
