"""The console's account pages: sign up, log in and out, projects, usage, API keys."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from metadisk.bridge import errors
from metadisk.bridge.accounts.db import Project, User
from metadisk.bridge.common import month_period
from metadisk.bridge.console import guard, keys
from metadisk.bridge.console.deps import ConsoleDeps, address, form
from metadisk.bridge.console.history import DAY, DayUsage
from metadisk.bridge.console.render import PageRoute, error_page, page, redirect
from metadisk.bridge.ratelimit import Limit
from metadisk.core.encoding import b64encode
from metadisk.runtime.web import human_size
from metadisk.runtime.web.charts import Series, bar_chart

P = guard.PREFIX
LOGIN = f"{P}/login"
SIGNUP = f"{P}/signup"
LOGOUT = f"{P}/logout"
PROJECTS = f"{P}/projects"
PROJECT = f"{P}/projects/{{project_id}}"
KEYS = f"{P}/projects/{{project_id}}/keys"
KEY_REVOKE = f"{P}/projects/{{project_id}}/keys/{{key_id}}/revoke"


def router(deps: ConsoleDeps) -> APIRouter:
    api = APIRouter(include_in_schema=False, route_class=PageRoute)
    clock = deps.clock

    def session(request: Request) -> tuple[str, User] | None:
        token = request.cookies.get(guard.SESSION_COOKIE, "")
        if not token:
            return None
        try:
            return token, deps.accounts.authenticate(token, clock())
        except errors.Unauthenticated:
            return None

    async def signed_in(request: Request) -> tuple[str, User] | None:
        return await deps.run(lambda: session(request))

    async def checked_post(request: Request) -> tuple[dict[str, str], str, User]:
        """The form of a POST from a signed-in page: origin, session and CSRF token checked."""
        guard.check_origin(request)
        fields = await form(request)
        found = await signed_in(request)
        if found is None:
            raise errors.Unauthenticated("log in first", code="not-logged-in")
        guard.check_token(fields.get("csrf", ""), guard.session_csrf(found[0]))
        return fields, found[0], found[1]

    async def public_post(request: Request) -> dict[str, str]:
        """The form of a POST made before login: origin and the double-submitted token."""
        guard.check_origin(request)
        fields = await form(request)
        guard.check_token(fields.get("csrf", ""), request.cookies.get(guard.CSRF_COOKIE, ""))
        return fields

    def public_page(
        request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        token, new = guard.login_csrf(request)
        response = page(name, {**context, "csrf": token}, status)
        if new:
            guard.set_cookie(request, response, guard.CSRF_COOKIE, token, 3600)
        return response

    def limited(request: Request, wanted: list[tuple[Limit, str]]) -> Response | None:
        wait = deps.limiter.take_all(wanted)
        if wait:
            return error_page(429, f"too many attempts; try again in {wait} s", wait)
        return None

    @api.get(P)
    @api.get(f"{P}/")
    async def home(request: Request) -> Response:
        return redirect(PROJECTS if await signed_in(request) else LOGIN)

    @api.get(LOGIN)
    async def login_form(request: Request) -> Response:
        return public_page(request, "login.html", {"email": "", "message": ""})

    @api.post(LOGIN)
    async def login(request: Request) -> Response:
        fields = await public_post(request)
        email, password = fields.get("email", "").strip(), fields.get("password", "")
        failure = deps.failure_limit
        wanted = [(deps.login_limit, address(request)), (failure, address(request))]
        wanted.append((failure, email.lower()[:320]))
        refused = limited(request, wanted)
        if refused is not None:
            return refused
        try:
            made = await deps.hashing.run(lambda: deps.accounts.login(email, password, clock()))
        except errors.Unauthenticated as exc:  # the failure tokens stay spent
            context = {"email": email, "message": exc.message}
            return public_page(request, "login.html", context, 401)
        for limit, key in wanted[1:]:
            deps.limiter.give_back(limit, key)
        return _signed_in(request, made.token, made.expires_at - clock())

    @api.get(SIGNUP)
    async def signup_form(request: Request) -> Response:
        return public_page(request, "signup.html", {"email": "", "message": ""})

    @api.post(SIGNUP)
    async def signup(request: Request) -> Response:
        fields = await public_post(request)
        email, password = fields.get("email", "").strip(), fields.get("password", "")
        if password != fields.get("confirm", ""):
            context = {"email": email, "message": "the passwords differ"}
            return public_page(request, "signup.html", context, 400)
        refused = limited(request, [(deps.account_limit, address(request))])
        if refused is not None:
            return refused

        def register() -> tuple[str, int]:
            now = clock()
            user = deps.accounts.register(email, password, now)
            deps.accounts.create_project(user, "default", None, now)
            made = deps.accounts.login(email, password, now)
            return made.token, made.expires_at

        try:
            token, expires_at = await deps.hashing.run(register)
        except errors.BridgeError as exc:
            context = {"email": email, "message": exc.message}
            return public_page(request, "signup.html", context, exc.status)
        return _signed_in(request, token, expires_at - clock())

    @api.post(LOGOUT)
    async def logout(request: Request) -> Response:
        try:
            _, token, _ = await checked_post(request)
        except errors.Unauthenticated:
            token = ""
        if token:
            await deps.run(lambda: deps.accounts.logout(token))
        response = redirect(LOGIN)
        guard.clear_cookie(request, response, guard.SESSION_COOKIE)
        return response

    @api.get(PROJECTS)
    async def projects(request: Request) -> Response:
        found = await signed_in(request)
        if found is None:
            return redirect(LOGIN)
        token, user = found
        listed = await deps.run(lambda: deps.accounts.projects(user, clock()))
        context = {"user": user, "csrf": guard.session_csrf(token), "projects": listed}
        return page("projects.html", context)

    @api.post(PROJECTS)
    async def create_project(request: Request) -> Response:
        fields, _, user = await checked_post(request)
        name = fields.get("name", "").strip()
        if not 1 <= len(name) <= 100:
            return error_page(400, "a project's name has 1 to 100 characters")
        made = await deps.run(lambda: deps.accounts.create_project(user, name, None, clock()))
        return redirect(PROJECT.format(project_id=made.id))

    @api.get(PROJECT)
    async def project(request: Request, project_id: str) -> Response:
        found = await signed_in(request)
        if found is None:
            return redirect(LOGIN)
        token, user = found
        context = await deps.run(lambda: _overview(deps, user, project_id))
        return page("project.html", {**context, "user": user, "csrf": guard.session_csrf(token)})

    @api.post(KEYS)
    async def create_key(request: Request, project_id: str) -> Response:
        fields, _, user = await checked_post(request)
        try:
            wanted = keys.KeyForm.parse(fields, clock())
        except ValueError as exc:
            return error_page(400, str(exc))

        def work() -> tuple[Project, str]:
            now = clock()
            chosen = deps.accounts.project(user, project_id, now)
            made = deps.accounts.create_key(user, project_id, wanted.name, now)
            return chosen, wanted.restrict(made.api_key)

        chosen, api_key = await deps.run(work)
        bridge_url = str(request.base_url).rstrip("/")
        context = {
            "user": user,
            "csrf": guard.session_csrf(request.cookies.get(guard.SESSION_COOKIE, "")),
            "project": chosen,
            "key": wanted,
            "api_key": api_key,
            "command": keys.setup_command(bridge_url, api_key, b64encode(chosen.salt)),
        }
        return page("key.html", context)

    @api.post(KEY_REVOKE)
    async def revoke_key(request: Request, project_id: str, key_id: str) -> Response:
        _, _, user = await checked_post(request)
        try:
            raw = bytes.fromhex(key_id)
        except ValueError:
            return error_page(404, "no such API key")
        await deps.run(lambda: deps.accounts.delete_key(user, project_id, raw, clock()))
        return redirect(PROJECT.format(project_id=project_id))

    return api


def _signed_in(request: Request, token: str, lifetime: int) -> Response:
    """To the projects, with the session's cookie (it lives as long as the session)."""
    response = redirect(PROJECTS)
    guard.set_cookie(request, response, guard.SESSION_COOKIE, token, max(lifetime, 60))
    guard.clear_cookie(request, response, guard.CSRF_COOKIE)
    return response


def _overview(deps: ConsoleDeps, user: User, project_id: str) -> dict[str, Any]:
    """A project's usage against its limits, its history (today's row written first), keys."""
    now = deps.clock()
    chosen = deps.accounts.project(user, project_id, now)
    usage = deps.usage(project_id, month_period(now))
    if usage is None:
        raise errors.NotFound("no such project", code="project-not-found")
    deps.history.record(project_id, usage, now)
    days = deps.history.days(project_id, now)
    return {
        "project": chosen,
        "usage": usage,
        "chart": usage_chart(days),
        "days": days,
        "keys": deps.accounts.keys(user, project_id, now),
    }


def usage_chart(days: list[DayUsage]) -> str:
    """Stored and downloaded bytes a day, as an SVG bar chart."""
    labels = [time.strftime("%m-%d", time.gmtime(d.day * DAY)) for d in days]
    series = [
        Series("stored", [d.storage_bytes for d in days], "series-a"),
        Series("downloaded this month", [d.egress_bytes for d in days], "series-b"),
    ]
    return bar_chart("Usage by day", labels, series, human_size)
