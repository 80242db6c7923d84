"""The operator's pages: log in with the bridge's admin token; nodes, network health, totals.

The admin token is typed into a form once; the cookie then holds an HMAC under it (see
`guard`), never the token itself. With no ``[server] admin_token`` the pages are off, as the
admin API is.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from metadisk.bridge import errors
from metadisk.bridge.console import guard
from metadisk.bridge.console.deps import ConsoleDeps, address, form
from metadisk.bridge.console.render import PageRoute, error_page, page, redirect
from metadisk.runtime.logs import event

log = logging.getLogger(__name__)

P = guard.PREFIX
ADMIN = f"{P}/admin"
ADMIN_LOGIN = f"{P}/admin/login"
ADMIN_LOGOUT = f"{P}/admin/logout"


def router(deps: ConsoleDeps) -> APIRouter:
    api = APIRouter(include_in_schema=False, route_class=PageRoute)
    token = deps.server.admin_token

    def is_admin(request: Request) -> bool:
        return guard.admin_valid(token, request.cookies.get(guard.ADMIN_COOKIE, ""), deps.clock())

    def login_page(request: Request, message: str, status: int = 200) -> Response:
        csrf, new = guard.login_csrf(request)
        context = {"csrf": csrf, "message": message, "enabled": bool(token)}
        response = page("admin_login.html", context, status)
        if new:
            guard.set_cookie(request, response, guard.CSRF_COOKIE, csrf, 3600)
        return response

    @api.get(ADMIN_LOGIN)
    async def login_form(request: Request) -> Response:
        return login_page(request, "")

    @api.post(ADMIN_LOGIN)
    async def login(request: Request) -> Response:
        guard.check_origin(request)
        fields = await form(request)
        guard.check_token(fields.get("csrf", ""), request.cookies.get(guard.CSRF_COOKIE, ""))
        if not token:
            return login_page(request, "the admin pages are off: set [server] admin_token", 403)
        wanted = [(deps.login_limit, address(request)), (deps.failure_limit, address(request))]
        wait = deps.limiter.take_all(wanted)
        if wait:
            return error_page(429, f"too many attempts; try again in {wait} s", wait)
        try:
            deps.health.check_admin(f"Bearer {fields.get('token', '')}")
        except errors.BridgeError as exc:
            event(log, logging.WARNING, "operator-login-refused", address=address(request))
            return login_page(request, exc.message, exc.status)
        event(log, logging.INFO, "operator-login", address=address(request))
        deps.limiter.give_back(*wanted[1])
        response = redirect(ADMIN)
        cookie = guard.admin_cookie(token, deps.clock())
        guard.set_cookie(request, response, guard.ADMIN_COOKIE, cookie, guard.ADMIN_TTL)
        guard.clear_cookie(request, response, guard.CSRF_COOKIE)
        return response

    @api.post(ADMIN_LOGOUT)
    async def logout(request: Request) -> Response:
        guard.check_origin(request)
        fields = await form(request)
        cookie = request.cookies.get(guard.ADMIN_COOKIE, "")
        guard.check_token(fields.get("csrf", ""), guard.session_csrf(cookie) if cookie else "")
        response = redirect(ADMIN_LOGIN)
        guard.clear_cookie(request, response, guard.ADMIN_COOKIE)
        return response

    @api.get(ADMIN)
    async def overview(request: Request) -> Response:
        if not is_admin(request):
            return redirect(ADMIN_LOGIN)
        now = deps.clock()

        def read() -> dict[str, object]:
            nodes = deps.health.views(now)
            return {
                "nodes": nodes,
                "online": sum(1 for n in nodes if n.online),
                "summary": deps.repair.summary(),
                "totals": deps.history.totals(now),
            }

        context = await deps.run(read)
        csrf = guard.session_csrf(request.cookies.get(guard.ADMIN_COOKIE, ""))
        return page("admin.html", {**context, "csrf": csrf, "now": now, "operator": True})

    return api
