"""``POST /v1/retain``: a trusted bridge's signed retain request (public: the signature is the
credential). The body is read whole but never past `MAX_RETAIN_BODY`: a declared length over
it is refused before a byte is read, a longer body as soon as it passes the cap."""

from __future__ import annotations

from aiohttp import web

from metadisk.farmer.errors import TooLarge
from metadisk.farmer.retain.service import RetainService
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.dataplane.contract import MAX_RETAIN_BODY, RETAIN, RetainAccepted


class RetainEndpoint:
    def __init__(self, service: RetainService) -> None:
        self._service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post(RETAIN, self.retain)]

    async def retain(self, request: web.Request) -> web.Response:
        too_large = f"a retain request is at most {MAX_RETAIN_BODY} bytes"
        if request.content_length is not None and request.content_length > MAX_RETAIN_BODY:
            raise TooLarge(too_large)
        try:
            body = await read_capped(request.content, MAX_RETAIN_BODY)
        except BodyTooLarge as exc:
            raise TooLarge(too_large) from exc
        accepted = await self._service.accept(body)
        answer = RetainAccepted(created_before=accepted.created_before, queued=accepted.queued)
        return web.Response(
            body=answer.model_dump_json(), status=202, content_type="application/json"
        )
