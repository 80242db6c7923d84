"""The client asks again when the bridge turns a request away for now and says when to come
back (429 rate-limited, 503 busy with Retry-After), and gives up on long or missing waits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from metadisk.client.bridge_api._http import RETRIES, BridgeHttp
from metadisk.client.errors import BridgeError
from metadisk.wire.errors import error_body

Answer = Callable[[int], web.Response]


@pytest.fixture
async def bridge() -> AsyncIterator[tuple[list[int], Callable[[Answer], str]]]:
    """A stand-in bridge answering the n-th request with `answer(n)`; the calls it saw."""
    seen: list[int] = []
    answer: list[Answer] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(len(seen))
        return answer[0](len(seen) - 1)

    app = web.Application()
    app.router.add_post("/v1/x", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def serve(how: Answer) -> str:
        answer.append(how)
        return f"http://127.0.0.1:{port}"

    yield seen, serve
    await runner.cleanup()


def refused(status: int, code: str, retry_after: str | None) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = error_body(code, "not now")
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")


@pytest.mark.parametrize(("status", "code"), [(429, "rate-limited"), (503, "busy")])
async def test_asked_again_after_retry_after(
    bridge: tuple[list[int], Callable[[Answer], str]], status: int, code: str
) -> None:
    seen, serve = bridge
    url = serve(lambda n: refused(status, code, "0") if n < 2 else web.json_response({}))
    http = BridgeHttp(url, "token", None, 10.0)
    try:
        assert await http.call("POST", "/v1/x") == b"{}"
    finally:
        await http.aclose()
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [
        (429, "rate-limited", "3600"),  # longer than a caller should be held: said at once
        (429, "rate-limited", None),
        (503, "not-enough-nodes", None),  # no promise that asking again helps
    ],
)
async def test_not_asked_again(
    bridge: tuple[list[int], Callable[[Answer], str]],
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    seen, serve = bridge
    http = BridgeHttp(serve(lambda n: refused(status, code, retry_after)), "t", None, 10.0)
    try:
        with pytest.raises(BridgeError) as failed:
            await http.call("POST", "/v1/x")
    finally:
        await http.aclose()
    assert (failed.value.code, len(seen)) == (code, 1)


async def test_gives_up_after_a_few_tries(
    bridge: tuple[list[int], Callable[[Answer], str]],
) -> None:
    seen, serve = bridge
    http = BridgeHttp(serve(lambda n: refused(429, "rate-limited", "0")), "t", None, 10.0)
    try:
        with pytest.raises(BridgeError) as failed:
            await http.call("POST", "/v1/x")
    finally:
        await http.aclose()
    assert (failed.value.code, len(seen)) == ("rate-limited", RETRIES + 1)
