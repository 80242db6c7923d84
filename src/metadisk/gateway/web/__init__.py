"""MetaDisk, the gateway's web file manager, mounted under ``/-/`` (no bucket name starts so).

Files are encrypted and decrypted in the gateway process on the user's machine, exactly as the
S3 side does, so the bridge and farmers see only ciphertext and no key leaves the machine. The
pages browse with the grant of the gateway's first credential (the owner's); a session may
import another grant (one shared with the user) and browse with it instead, kept in memory for
that session only. It is served only when the gateway listens on a loopback address, behind the
run's token and a session cookie (`session`).

- `FileManager(gateway)`: `mount(app)` adds the routes, `url` is the first-open URL with the token.
- `pages`: the HTML pages (buckets, a folder, preview, share, import, confirmations).
- `actions`: uploads, downloads, range reads and the changes (rename, move, delete, new folder).
- `paging`: a folder a page at a time in the bridge's order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiDictProxy

from metadisk.client import AccessDenied, AsyncProject, ClientError, InvalidArgument, NotFound
from metadisk.gateway.s3errors import S3Error
from metadisk.gateway.web.session import (
    CSRF_FIELD,
    PATH,
    Refused,
    Session,
    Sessions,
    check_change,
    is_loopback,
)
from metadisk.runtime import web as shared
from metadisk.runtime.logs import event

if TYPE_CHECKING:
    from metadisk.gateway.server import Gateway

log = logging.getLogger("metadisk.gateway.web")
STATIC = PATH + "static/"
STATIC_MAX_AGE = 300


@dataclass(slots=True)
class Ctx:
    """What a handler works with: the session, the project it browses and a POST's form."""

    manager: FileManager
    session: Session
    project: AsyncProject
    form: MultiDictProxy[str | bytes | Any] | None

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default) if self.form is not None else default
        return value if isinstance(value, str) else default

    @property
    def shared(self) -> bool:
        return self.session.imported is not None


Handler = Callable[[web.Request, Ctx], Awaitable[web.StreamResponse]]


class FileManager:
    """The file manager of one gateway; see the module docstring."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sessions = Sessions()
        self.templates = shared.environment("metadisk.gateway.web")

    @property
    def enabled(self) -> bool:
        """Served only on loopback: the token is the only thing between a network and the keys."""
        return is_loopback(self.gateway.config.host) and bool(self.gateway.config.credentials)

    @property
    def url(self) -> str:
        """The first-open URL, with the run's token."""
        return f"{self.gateway.url}{PATH}?token={self.sessions.token}"

    def mount(self, app: web.Application) -> None:
        """Add the file manager's routes (before the S3 catch-all)."""
        from metadisk.gateway.web import actions, pages

        app.router.add_get(PATH, self._entry)
        app.router.add_get(STATIC + "{name}", self._static)
        for method, path, handler, change in pages.ROUTES + actions.ROUTES:
            app.router.add_route(method, PATH + path, self._guard(handler, change=change))

    async def close(self) -> None:
        for session in self.sessions.all():
            if session.imported is not None:
                with contextlib.suppress(ClientError):
                    await session.imported.aclose()
                session.imported = None

    async def owner(self) -> AsyncProject:
        return await self.gateway.project(self.gateway.config.credentials[0].access_key)

    def render(
        self, ctx: Ctx | None, name: str, *, status: int = 200, **values: Any
    ) -> web.Response:
        """A page of `name`, with the session's CSRF token and notes."""
        notes: list[str] = []
        if ctx is not None:
            notes, ctx.session.notes[:] = list(ctx.session.notes), []
        html = self.templates.get_template(name).render(
            static_url=STATIC,
            csrf=ctx.session.csrf if ctx is not None else "",
            csrf_field=CSRF_FIELD,
            shared=ctx.shared if ctx is not None else False,
            notes=notes,
            **values,
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        response.headers.update(shared.SECURITY_HEADERS)
        return response

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        from metadisk.gateway.web import pages
        from metadisk.gateway.web.session import check_host, set_cookie

        token = request.query.get("token")
        if token is None:
            answer: web.StreamResponse = await self._guard(pages.home, change=False)(request)
            return answer
        try:
            check_host(request)
            session = self.sessions.open(token)
        except Refused as exc:
            return self._refused(exc)
        event(log, logging.INFO, "session-opened")
        response = web.HTTPSeeOther(PATH)
        response.headers.update(shared.SECURITY_HEADERS)
        set_cookie(response, session)
        return response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            body, kind = shared.static(name, "metadisk.gateway.web")
        except KeyError:
            return self._refused(Refused(404, "no such file"))
        response = web.Response(body=body, content_type=kind)
        response.headers.update(shared.SECURITY_HEADERS)
        # A page's script and style are fetched once in a while, not with every page.
        response.headers["Cache-Control"] = f"private, max-age={STATIC_MAX_AGE}"
        return response

    def _guard(self, handler: Handler, *, change: bool) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            ctx: Ctx | None = None
            try:
                session = self.sessions.find(request)
                form = None
                if change:
                    if request.content_type in ("application/x-www-form-urlencoded",):
                        form = await request.post()
                    token = form.get(CSRF_FIELD) if form is not None else None
                    check_change(request, session, token if isinstance(token, str) else None)
                project = session.imported or await self.owner()
                ctx = Ctx(self, session, project, form)
                return await handler(request, ctx)
            except web.HTTPException as exc:  # redirects after a change
                exc.headers.update(shared.SECURITY_HEADERS)
                raise
            except Refused as exc:
                return self._refused(exc, ctx)
            except (ClientError, S3Error) as exc:
                return self._refused(Refused(_status(exc), str(exc) or type(exc).__name__), ctx)

        return guarded

    def _refused(self, exc: Refused, ctx: Ctx | None = None) -> web.Response:
        event(log, logging.DEBUG, "refused", status=exc.status, reason=exc.reason)
        return self.render(ctx, "error.html", status=exc.status, reason=exc.reason)


def _status(exc: Exception) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, AccessDenied) or getattr(exc, "code", "") == "access-denied":
        return 403
    if isinstance(exc, InvalidArgument):
        return 400
    if isinstance(exc, S3Error):
        return exc.status
    return 502
