"""``POST /v1/exit`` starts a graceful exit, ``GET /v1/exit`` shows how it goes; both answered
on the loopback interface only, like the status route (`metadisk farmer exit` calls them)."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from metadisk.farmer.errors import BadRequest, NotFound
from metadisk.farmer.exit.service import ExitService, UnknownBridge
from metadisk.farmer.http import require_loopback
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.dataplane.contract import EXIT, ExitStart
from metadisk.wire.errors import describe_invalid

MAX_BODY = 4096


class ExitEndpoint:
    def __init__(self, service: ExitService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post(EXIT, self.start), web.get(EXIT, self.status, allow_head=False)]

    async def start(self, request: web.Request) -> web.Response:
        """Start exiting the bridge named in the body, or every trusted bridge: 202, then the
        exit goes on in the background."""
        require_loopback(request)
        try:
            raw = await read_capped(request.content, MAX_BODY)
        except BodyTooLarge as exc:
            raise BadRequest(str(exc), code="malformed-request") from exc
        try:
            body = ExitStart.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            problem = describe_invalid(exc.errors())
            raise BadRequest(f"not an exit request: {problem}", code="malformed-request") from exc
        try:
            self._service.begin(body.bridge)
        except UnknownBridge as exc:
            raise NotFound(str(exc), code="unknown-bridge") from exc
        return self._report(202)

    async def status(self, request: web.Request) -> web.Response:
        require_loopback(request)
        return self._report(200)

    def _report(self, status: int) -> web.Response:
        body = self._service.report().model_dump_json()
        return web.Response(status=status, body=body, content_type="application/json")
