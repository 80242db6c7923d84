"""Who is asking, and whether a form really comes from the console: cookies, CSRF, origin.

- The account's cookie holds a session token the bridge issued at login (``POST`` of the login
  form, `AccountsService.login`): the same sessions as the JSON API, checked the same way.
- The operator's cookie holds an expiry and an HMAC of it under the admin token, so it proves
  the token was shown, works on every API process, and dies when the token changes.
- Every cookie is HttpOnly, SameSite=Strict, Path=/console, Secure when served over HTTPS.
- Every POST carries a ``csrf`` field: with a session, an HMAC of the session token (a page of
  another origin cannot read it); before login, the value of a random ``csrf`` cookie (double
  submit). A POST whose ``Sec-Fetch-Site`` or ``Origin`` names another origin is refused
  whatever it carries.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from metadisk.bridge import errors
from metadisk.core.encoding import b64encode

PREFIX = "/console"
SESSION_COOKIE = "mdc_session"
ADMIN_COOKIE = "mdc_admin"
CSRF_COOKIE = "mdc_csrf"
ADMIN_TTL = 8 * 3600


class Refused(errors.AccessDenied):
    """A POST without a valid CSRF token or from another origin (403 ``csrf``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="csrf")


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=secure(request)
    )


def _mac(key: str, what: str) -> str:
    return b64encode(hmac.new(key.encode(), what.encode(), hashlib.sha256).digest())


def session_csrf(session_token: str) -> str:
    """The CSRF token of a session: only a page that holds the session can know it."""
    return _mac(session_token, "metadisk console csrf")


def login_csrf(request: Request) -> tuple[str, bool]:
    """The pre-login CSRF token (the cookie's, or a new one); whether it is new (set it)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) >= 32:
        return current, False
    return secrets.token_urlsafe(32), True


def admin_cookie(admin_token: str, now: int) -> str:
    expires = now + ADMIN_TTL
    return f"{expires}.{_mac(admin_token, f'metadisk console admin {expires}')}"


def admin_valid(admin_token: str, cookie: str, now: int) -> bool:
    """Whether `cookie` was made with `admin_token` and has not expired."""
    if not admin_token:
        return False
    expires, _, mac = cookie.partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    expected = _mac(admin_token, f"metadisk console admin {expires}")
    return hmac.compare_digest(mac.encode(), expected.encode())


def check_origin(request: Request) -> None:
    """Refuse a POST that a browser says comes from another origin.

    ``Sec-Fetch-Site`` decides when sent (every current browser does). ``Origin`` is checked
    when it names one: the pages' ``Referrer-Policy: no-referrer`` makes browsers send
    ``Origin: null`` with their own forms, which then says nothing either way.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(f"a form from another site ({site}) cannot change anything here")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return  # the CSRF token still decides
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Refused("a form from another origin cannot change anything here")


def check_token(sent: str, expected: str) -> None:
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused("the form's CSRF token is missing or wrong: reload the page")
