"""Who may use the file manager: the run's token, the session cookie and CSRF checks.

The gateway makes a random token at start and prints the file manager's URL with it. Opening
that URL swaps the token at once for a session (a random id in an HttpOnly, SameSite=Strict
cookie scoped to ``/-/``) and redirects to a URL without it, so the token does not stay in the
address bar or history. Every request must come with a live session; every state-changing one
must also carry the session's CSRF token (a header from scripts, a hidden field from forms),
come from this origin (``Origin``, ``Sec-Fetch-Site``), and name a loopback host (``Host``),
which defeats DNS rebinding: a page on another site cannot make its requests look local.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

from metadisk.client import AsyncProject

COOKIE = "metadisk_files"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
PATH = "/-/"
MAX_SESSIONS = 64
SESSION_TTL = 12 * 3600.0
_SAME_SITE = frozenset({"same-origin", "none"})


class Refused(Exception):
    """A request the file manager will not serve; `status` and the reason are shown."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Session:
    """One browser's session: its CSRF token and, once imported, the grant it browses with."""

    id: str
    csrf: str
    created: float
    imported: AsyncProject | None = None
    imported_roots: tuple[tuple[str, str], ...] = ()
    notes: list[str] = field(default_factory=list)


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Sessions:
    """The run's token and the sessions made with it (in memory only)."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self._sessions: dict[str, Session] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def open(self, token: str) -> Session:
        """A new session for the right token; `Refused` for any other."""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            raise Refused(403, "this link's token is not this gateway's: use the printed URL")
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.created)
            self._sessions.pop(oldest.id)
            if oldest.imported is not None:  # its grant's connections go with it
                closing = asyncio.get_running_loop().create_task(oldest.imported.aclose())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        made = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.monotonic())
        self._sessions[made.id] = made
        return made

    def find(self, request: web.Request) -> Session:
        """The request's session; `Refused` (401) without a live one."""
        check_host(request)
        found = self._sessions.get(request.cookies.get(COOKIE, ""))
        if found is None or time.monotonic() - found.created > SESSION_TTL:
            raise Refused(401, "no session: open the file manager's URL the gateway printed")
        return found

    def all(self) -> list[Session]:
        return list(self._sessions.values())


def set_cookie(response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        COOKIE, session.id, path=PATH, httponly=True, samesite="Strict", max_age=int(SESSION_TTL)
    )


def check_host(request: web.Request) -> None:
    """Refuse a request whose Host is not a loopback name (a rebound DNS name, say)."""
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if not is_loopback(host):
        raise Refused(403, "the file manager answers only on a loopback address")


def check_change(request: web.Request, session: Session, form_token: str | None = None) -> None:
    """Refuse a state-changing request from another site or without the session's CSRF token."""
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in _SAME_SITE:
        raise Refused(403, "a request from another site")
    # Under "Referrer-Policy: no-referrer" a browser sends "Origin: null" with its forms; then
    # only Sec-Fetch-Site, which browsers always send, says where the request came from.
    if origin == "null":
        if site != "same-origin":
            raise Refused(403, "a request from another origin")
    elif origin is not None and origin != f"{request.scheme}://{request.host}":
        raise Refused(403, "a request from another origin")
    token = request.headers.get(CSRF_HEADER) or form_token or ""
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise Refused(403, "the request lacks this session's CSRF token")
