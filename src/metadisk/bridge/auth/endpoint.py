"""HTTP route for revoking keys with an API key (for holders of access grants)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Response

from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.http import COMMON_ERRORS, Runner, api_key_token
from metadisk.wire.api import routes
from metadisk.wire.api.accounts import Revocation


def router(authority: KeyAuthority, clock: Callable[[], int], run: Runner) -> APIRouter:
    api = APIRouter(tags=["api keys"], responses=COMMON_ERRORS)

    @api.post(routes.REVOCATIONS, status_code=204)
    async def revoke(body: Revocation, token: str = Depends(api_key_token)) -> Response:
        """Revoke the caller's key, or a key restricted from it, and all keys made from that."""

        def work() -> None:
            authority.revoke(authority.resolve(token), body.api_key, clock())

        await run(work)
        return Response(status_code=204)

    return api
