"""The HTTP edge the bridge clients share: JSON models in and out, errors translated."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from typing import TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError

from metadisk.client.errors import BridgeError, BridgeUnavailable, InvalidArgument, bridge_error
from metadisk.runtime.tls import InsecureURL, bridge_ssl, check_transport
from metadisk.wire.api.routes import RETRY_AFTER
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.errors import MAX_ERROR_BODY, describe_invalid, parse_error

M = TypeVar("M", bound=BaseModel)
# A request the bridge turned away for now (rate limits, a full password-hashing queue) is asked
# again after its Retry-After, this many times, if the wait is at most MAX_RETRY_AFTER seconds.
RETRIES = 3
MAX_RETRY_AFTER = 10.0
Params = Mapping[str, str] | Sequence[tuple[str, str]]


class BridgeHttp:
    """One bridge URL, one bearer token (an API key or a session), one pooled session."""

    def __init__(
        self, url: str, token: str, session: aiohttp.ClientSession | None, timeout: float
    ) -> None:
        self.url = url.rstrip("/")
        try:
            check_transport(self.url)
        except InsecureURL as exc:
            raise InvalidArgument(str(exc), code="insecure-bridge") from exc
        self._ssl: ssl.SSLContext | bool | None = None
        self.token = token
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Params | None = None,
        auth: bool = True,
    ) -> bytes | None:
        """Send one request; the answer's body, or None for 204. Errors become `BridgeError`s."""
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        data = None
        if body is not None:
            data = body.model_dump_json(exclude_unset=False).encode()
            headers["Content-Type"] = "application/json"
        if self._ssl is None:
            try:
                self._ssl = bridge_ssl(self.url)
            except OSError as exc:  # a METADISK_CA_FILE that cannot be read
                raise InvalidArgument(f"cannot load CA file: {exc}", code="ca-file") from exc
        try:
            for attempt in range(RETRIES + 1):
                async with self._client().request(
                    method,
                    self.url + path,
                    data=data,
                    params=params,
                    headers=headers,
                    ssl=self._ssl,
                ) as response:
                    wait = _retry_after(response) if attempt < RETRIES else None
                    if wait is None:
                        if response.status >= 400:
                            raise await _error(response)
                        if response.status == 204:
                            return None
                        return await response.read()
                await asyncio.sleep(wait)
            raise AssertionError("unreachable: the last attempt returns or raises")
        except aiohttp.ClientError as exc:
            raise BridgeUnavailable(
                f"cannot reach the bridge at {self.url}: {exc}", code="connection-failed"
            ) from exc
        except TimeoutError as exc:
            raise BridgeUnavailable(
                f"the bridge at {self.url} did not answer in time", code="timeout"
            ) from exc

    async def parsed(
        self,
        method: str,
        path: str,
        kind: type[M],
        *,
        body: BaseModel | None = None,
        params: Params | None = None,
        auth: bool = True,
    ) -> M:
        """`call`, then the answer as a `kind`; one that does not fit is ``bad-response``."""
        raw = await self.call(method, path, body=body, params=params, auth=auth)
        try:
            return kind.model_validate_json(raw or b"")
        except ValidationError as exc:
            raise BridgeError(
                f"{method} {path}: unexpected answer: {describe_invalid(exc.errors(), most=1)}",
                code="bad-response",
            ) from exc

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """Seconds to wait before asking again, when the bridge refused the request before doing
    anything and said when to come back (429 ``rate-limited``, 503 ``busy``); else None.

    Those refusals come from the bridge's edge, before any work, so asking again is safe for
    every method. A wait longer than `MAX_RETRY_AFTER` is not waited out: the error goes up.
    """
    if response.status not in (429, 503):
        return None
    try:
        wait = float(response.headers.get(RETRY_AFTER, ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_RETRY_AFTER else None


async def _error(response: aiohttp.ClientResponse) -> BridgeError:
    try:
        detail = parse_error(await read_capped(response.content, MAX_ERROR_BODY))
    except (aiohttp.ClientError, BodyTooLarge):
        detail = None
    if detail is None:
        return bridge_error(response.status, "", f"the bridge answered HTTP {response.status}")
    return bridge_error(response.status, detail.code, detail.message)


def segment(text: str) -> str:
    """`text` (a bucket name, a project or key id) as exactly one URL path segment."""
    if text in ("", ".", ".."):
        # URL normalization would drop or climb these, sending the call to another route.
        raise InvalidArgument(f"{text!r} is not a valid name or id")
    return quote(text, safe="")
