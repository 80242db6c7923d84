"""HTTP route of graceful exit: ``POST /v1/nodes/exit`` (a signed NodeQuery, no token); bodies
are `metadisk.wire.api.nodes`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import Response

from metadisk.bridge.exit.service import Done, ExitService, Failed
from metadisk.bridge.http import COMMON_ERRORS, Runner, json_response, public
from metadisk.wire.api import nodes as w
from metadisk.wire.api import routes


def router(service: ExitService, clock: Callable[[], int], run: Runner) -> APIRouter:
    api = APIRouter(tags=["nodes"], responses=COMMON_ERRORS)

    @api.post(
        routes.NODE_EXIT, response_model=w.ExitStatus, openapi_extra=public(signed="NodeQuery")
    )
    async def node_exit(body: w.ExitRequest) -> Response:
        """A farmer starts or goes on with its graceful exit: it reports the pieces it moved
        (the new nodes' receipts) and could not move, and gets the next transfers."""
        done = [Done(bytes.fromhex(d.piece_id), d.receipt) for d in body.done]
        failed = [Failed(bytes.fromhex(f.piece_id), f.code) for f in body.failed]
        answer = await run(lambda: service.exit(body.query, done, failed, clock()))
        return json_response(
            w.ExitStatus(
                state=answer.state,
                transfers=[
                    w.ExitTransfer(
                        piece_id=t.piece_id.hex(),
                        address=t.address,
                        limit=t.limit,
                        piece_hash=t.piece_hash,
                    )
                    for t in answer.transfers
                ],
                remaining=answer.remaining,
                refused=[
                    w.ExitRefusal(piece_id=r.piece_id.hex(), code=r.code) for r in answer.refused
                ],
            )
        )

    return api
