"""A thin typed client of the bridge's JSON API (``/v1``, see the bridge's ``/v1/openapi.json``).

One method per route, plain frozen dataclasses in and out, no policy: `AsyncProject` holds the
logic. Every error answer ``{"error": {"code", "message"}}`` becomes the `BridgeError` subclass for
its status, keeping the bridge's code (`metadisk.client.errors.bridge_error`); an unreachable
bridge is `BridgeUnavailable` with code ``connection-failed``; an answer that does not parse is
`BridgeError` with code ``bad-response``.

`BridgeAPI` speaks for an API key (buckets, objects, transfers, revocations). `BridgeAccounts`
speaks for a user session (accounts, projects, API keys): what a front end needs to make a first
grant and manage its keys.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from metadisk.client.errors import BridgeError, BridgeUnavailable, InvalidArgument, bridge_error
from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import CoreError
from metadisk.core.identity import NodeId
from metadisk.core.messages import OrderLimit

_MAX_ERROR_BODY = 64 * 1024


class _Malformed(Exception):
    """An answer that does not have the shape the API documents."""


@dataclass(frozen=True, slots=True)
class BucketRecord:
    name: str
    profile: str
    redundancy: RedundancyScheme
    created_at: int


@dataclass(frozen=True, slots=True)
class BucketPage:
    buckets: tuple[BucketRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """A begun upload: the stream id names it in the calls that follow."""

    stream_id: str
    redundancy: RedundancyScheme
    deadline: int
    max_inline_size: int


@dataclass(frozen=True, slots=True)
class AddressedLimit:
    """One signed order limit, the farmer to use it at, and what the bridge adds about it."""

    piece_number: int
    address: str
    limit: OrderLimit
    public_key: bytes | None  # the farmer's key, if the bridge sends it (PUT)
    piece_hash: bytes | None  # the stored piece's hash, if the bridge sends it (GET)


@dataclass(frozen=True, slots=True)
class SegmentOrders:
    index: int
    piece_size: int
    redundancy: RedundancyScheme
    limits: tuple[AddressedLimit, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    position: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SegmentCommitRecord:
    index: int
    pieces: int
    rejected: tuple[Rejection, ...]


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    index: int
    encrypted_size: int
    plain_size: int
    piece_size: int
    redundancy: RedundancyScheme
    encrypted_metadata: bytes | None


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    key: str
    stream_id: str
    created_at: int
    encrypted_size: int
    plain_size: int
    segment_count: int
    encrypted_metadata: bytes | None
    inline_data: bytes | None
    segments: tuple[SegmentRecord, ...]


@dataclass(frozen=True, slots=True)
class ListedRecord:
    key: str  # an object key, or a prefix ending in "/" if is_prefix
    is_prefix: bool
    stream_id: str | None
    created_at: int | None
    encrypted_size: int | None
    plain_size: int | None
    encrypted_metadata: bytes | None


@dataclass(frozen=True, slots=True)
class ListPage:
    items: tuple[ListedRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A begun, uncommitted upload and its committed segments (for resuming it)."""

    stream_id: str
    key: str
    redundancy: RedundancyScheme
    deadline: int
    segments: tuple[SegmentRecord, ...]


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """A pending upload to a key, as `list_uploads` names it."""

    stream_id: str
    created_at: int
    deadline: int


@dataclass(frozen=True, slots=True)
class SegmentRekey:
    """A segment's new opaque metadata (its content key re-wrapped) for a move or copy."""

    index: int
    encrypted_metadata: bytes


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    email: str
    created_at: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login: the bearer token for account routes, good until `expires_at` (Unix seconds)."""

    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: str
    name: str
    salt: bytes  # what root keys are derived with (`metadisk.core.keys.derive_root_key`)
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A project's root API key as listed: its id and name, never the key itself."""

    key_id: str  # hex
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class CreatedApiKey(ApiKeyRecord):
    """A new root API key: the serialized key is in this answer only."""

    api_key: str


class _Http:
    """The shared HTTP edge: JSON in and out, errors translated."""

    def __init__(
        self, url: str, token: str, session: aiohttp.ClientSession | None, timeout: float
    ) -> None:
        self.url = url.rstrip("/")
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
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        auth: bool = True,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        try:
            async with self._client().request(
                method, self.url + path, json=body, params=params, headers=headers
            ) as response:
                if response.status >= 400:
                    raise await _error(response)
                if response.status == 204:
                    return None
                raw = await response.read()
        except aiohttp.ClientError as exc:
            raise BridgeUnavailable(
                f"cannot reach the bridge at {self.url}: {exc}", code="connection-failed"
            ) from exc
        except TimeoutError as exc:
            raise BridgeUnavailable(
                f"the bridge at {self.url} did not answer in time", code="timeout"
            ) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BridgeError(f"{method} {path}: answer is not JSON", code="bad-response") from exc

    async def parsed(self, method: str, path: str, parse: Any, **kwargs: Any) -> Any:
        """`call`, then `parse` the answer (None: ignore it); misshapen: ``bad-response``."""
        raw = await self.call(method, path, **kwargs)
        if parse is None:
            return None
        try:
            return parse(raw)
        except (_Malformed, KeyError, TypeError, ValueError, CoreError) as exc:
            raise BridgeError(
                f"{method} {path}: unexpected answer: {exc}", code="bad-response"
            ) from exc

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()


class BridgeAPI:
    """The bridge's API for one API key: buckets, objects, uploads and downloads.

    Example::

        api = BridgeAPI("http://127.0.0.1:7000", api_key.serialize())
        bucket = await api.create_bucket("photos")
        await api.aclose()
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._http = _Http(url, api_key, session, timeout)

    @property
    def url(self) -> str:
        return self._http.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, parse: Any, **kwargs: Any) -> Any:
        return await self._http.parsed(method, path, parse, **kwargs)

    # -- keys

    async def revoke(self, api_key: str) -> None:
        """Revoke `api_key` (serialized): this API key or one restricted from it, and every key
        made from that."""
        await self._call("POST", "/v1/revocations", None, body={"api_key": api_key})

    # -- buckets

    async def create_bucket(self, name: str, profile: str | None = None) -> BucketRecord:
        body: dict[str, Any] = {"name": name}
        if profile is not None:
            body["profile"] = profile
        return await self._call("POST", "/v1/buckets", _bucket, body=body)  # type: ignore[no-any-return]

    async def list_buckets(self, cursor: str = "", limit: int = 1000) -> BucketPage:
        params = {"cursor": cursor, "limit": str(limit)}
        return await self._call("GET", "/v1/buckets", _bucket_page, params=params)  # type: ignore[no-any-return]

    async def get_bucket(self, name: str) -> BucketRecord:
        return await self._call("GET", f"/v1/buckets/{_seg(name)}", _bucket)  # type: ignore[no-any-return]

    async def delete_bucket(self, name: str, *, force: bool = False) -> None:
        params = {"force": "true" if force else "false"}
        await self._call("DELETE", f"/v1/buckets/{_seg(name)}", None, params=params)

    # -- uploads

    async def begin_object(self, bucket: str, key: str) -> UploadRecord:
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/buckets/{_seg(bucket)}/uploads", _upload, body={"key": key}
        )

    async def begin_segment(
        self, stream_id: str, index: int, encrypted_size: int, piece_size: int
    ) -> SegmentOrders:
        body = {"index": index, "encrypted_size": encrypted_size, "piece_size": piece_size}
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/uploads/{stream_id}/segments", _orders, body=body
        )

    async def replace_pieces(
        self, stream_id: str, index: int, piece_numbers: Sequence[int], node_ids: Sequence[NodeId]
    ) -> SegmentOrders:
        body = {"piece_numbers": list(piece_numbers), "node_ids": [n.hex() for n in node_ids]}
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/uploads/{stream_id}/segments/{index}/replacements", _orders, body=body
        )

    async def commit_segment(
        self,
        stream_id: str,
        index: int,
        receipts: Sequence[bytes],
        plain_size: int,
        encrypted_metadata: bytes,
    ) -> SegmentCommitRecord:
        body = {
            "receipts": [b64encode(r) for r in receipts],
            "plain_size": plain_size,
            "encrypted_metadata": b64encode(encrypted_metadata),
        }
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/uploads/{stream_id}/segments/{index}/commit", _commit, body=body
        )

    async def commit_object(self, stream_id: str, encrypted_metadata: bytes) -> ObjectRecord:
        body = {"encrypted_metadata": b64encode(encrypted_metadata)}
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/uploads/{stream_id}/commit", _object, body=body
        )

    async def abort_upload(self, stream_id: str) -> None:
        await self._call("DELETE", f"/v1/uploads/{stream_id}", None)

    async def get_upload(self, stream_id: str) -> PendingUpload:
        """A pending upload and its committed segments (to resume it); `NotFound` with code
        ``upload-not-found`` once it is committed, aborted or reclaimed."""
        return await self._call("GET", f"/v1/uploads/{stream_id}", _pending)  # type: ignore[no-any-return]

    async def list_uploads(self, bucket: str, key: str) -> tuple[UploadSummary, ...]:
        """The pending uploads to a key, oldest first (to resume one whose stream id was lost)."""
        return await self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/buckets/{_seg(bucket)}/uploads", _uploads, params={"key": key}
        )

    async def put_inline(
        self, bucket: str, key: str, data: bytes, plain_size: int, encrypted_metadata: bytes
    ) -> ObjectRecord:
        body = {
            "key": key,
            "data": b64encode(data),
            "plain_size": plain_size,
            "encrypted_metadata": b64encode(encrypted_metadata),
        }
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/buckets/{_seg(bucket)}/objects", _object, body=body
        )

    # -- objects

    async def get_object(self, bucket: str, key: str) -> ObjectRecord:
        return await self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/buckets/{_seg(bucket)}/object", _object, params={"key": key}
        )

    async def delete_object(self, bucket: str, key: str) -> None:
        await self._call("DELETE", f"/v1/buckets/{_seg(bucket)}/object", None, params={"key": key})

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        recursive: bool = False,
        cursor: str = "",
        limit: int = 1000,
    ) -> ListPage:
        params = {
            "prefix": prefix,
            "recursive": "true" if recursive else "false",
            "cursor": cursor,
            "limit": str(limit),
        }
        return await self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/buckets/{_seg(bucket)}/objects", _list_page, params=params
        )

    async def download_segment(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str | None = None,
        *,
        exclude: Collection[int] = (),
    ) -> SegmentOrders:
        """GET order limits for k plus spare pieces of a segment; with `exclude`, for pieces
        other than those only (already fetched or found bad), possibly none."""
        params: list[tuple[str, str]] = [("key", key)]
        if stream_id is not None:
            params.append(("stream_id", stream_id))
        params.extend(("exclude", str(number)) for number in sorted(set(exclude)))
        return await self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/buckets/{_seg(bucket)}/object/segments/{index}", _orders, params=params
        )

    async def move_object(
        self,
        bucket: str,
        key: str,
        new_bucket: str,
        new_key: str,
        encrypted_metadata: bytes | None,
        segments: Sequence[SegmentRekey],
        *,
        copy: bool = False,
        stream_id: str | None = None,
    ) -> ObjectRecord:
        """Move (or copy) an object without moving its data; the object at its new key.

        `segments` re-wraps every segment's metadata, each exactly once. `stream_id` pins the
        version those were made from: if another version is at the key by then, the bridge
        answers `Conflict` with code ``object-changed`` instead of storing mismatched keys.
        """
        body = {
            "key": key,
            "stream_id": stream_id,
            "new_bucket": new_bucket,
            "new_key": new_key,
            "encrypted_metadata": None
            if encrypted_metadata is None
            else b64encode(encrypted_metadata),
            "segments": [
                {"index": s.index, "encrypted_metadata": b64encode(s.encrypted_metadata)}
                for s in segments
            ],
        }
        action = "copy" if copy else "move"
        return await self._call(  # type: ignore[no-any-return]
            "POST", f"/v1/buckets/{_seg(bucket)}/object/{action}", _object, body=body
        )


class BridgeAccounts:
    """The bridge's account API for one user: log in, then manage projects and root API keys.

    Every call but `register` and `login` needs a session: `login` keeps the one it makes, or
    pass a cached `token`.

    Example::

        accounts = BridgeAccounts("http://127.0.0.1:7000")
        await accounts.register("ada@example.com", "correct horse")
        session = await accounts.login("ada@example.com", "correct horse")
        project = await accounts.create_project("photos")
        api_key = (await accounts.create_api_key(project.id, "laptop")).api_key
        await accounts.aclose()
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._http = _Http(url, token or "", session, timeout)

    @property
    def url(self) -> str:
        return self._http.url

    async def register(self, email: str, password: str) -> AccountRecord:
        """Create an account (no session needed, none made: `login` next)."""
        body = {"email": email, "password": password}
        return await self._http.parsed("POST", "/v1/accounts", _account, body=body, auth=False)  # type: ignore[no-any-return]

    async def login(self, email: str, password: str) -> SessionRecord:
        """Log in; later calls use this session."""
        body = {"email": email, "password": password}
        made: SessionRecord = await self._http.parsed(
            "POST", "/v1/sessions", _session, body=body, auth=False
        )
        self._http.token = made.token
        return made

    async def projects(self) -> tuple[ProjectRecord, ...]:
        """The account's projects."""
        return await self._http.parsed("GET", "/v1/projects", _projects)  # type: ignore[no-any-return]

    async def create_project(self, name: str) -> ProjectRecord:
        return await self._http.parsed("POST", "/v1/projects", _project, body={"name": name})  # type: ignore[no-any-return]

    async def api_keys(self, project_id: str) -> tuple[ApiKeyRecord, ...]:
        """The project's root API keys (ids and names)."""
        path = f"/v1/projects/{_seg(project_id)}/api-keys"
        return await self._http.parsed("GET", path, _api_keys)  # type: ignore[no-any-return]

    async def create_api_key(self, project_id: str, name: str) -> CreatedApiKey:
        """A new root API key of the project, serialized in `CreatedApiKey.api_key`."""
        path = f"/v1/projects/{_seg(project_id)}/api-keys"
        return await self._http.parsed("POST", path, _created_key, body={"name": name})  # type: ignore[no-any-return]

    async def delete_api_key(self, project_id: str, key_id: str) -> None:
        """Delete a root API key: it and every key restricted from it stop working at once."""
        path = f"/v1/projects/{_seg(project_id)}/api-keys/{_seg(key_id)}"
        await self._http.parsed("DELETE", path, None)

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True, slots=True)
class NodeStatusRecord:
    """What the bridge tells anyone about one node (``GET /v1/nodes/{node_id}``)."""

    node_id: NodeId
    address: str
    online: bool
    last_seen: int
    last_ping_ok: int | None
    last_ping_error: str | None


class BridgeNodes:
    """The bridge's public node directory: one node's status by id (no token needed).

    Example::

        nodes = BridgeNodes("http://127.0.0.1:7000")
        status = await nodes.status(node_id)  # NotFound (node-not-found) if never checked in
        await nodes.aclose()
    """

    def __init__(
        self, url: str, *, session: aiohttp.ClientSession | None = None, timeout: float = 60.0
    ) -> None:
        self._http = _Http(url, "", session, timeout)

    async def status(self, node_id: NodeId) -> NodeStatusRecord:
        path = f"/v1/nodes/{node_id.hex()}"
        return await self._http.parsed("GET", path, _node_status, auth=False)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._http.aclose()


async def _error(response: aiohttp.ClientResponse) -> BridgeError:
    try:
        raw = await response.content.read(_MAX_ERROR_BODY)
        error = json.loads(raw)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        code, message = "", f"the bridge answered HTTP {response.status}"
    return bridge_error(response.status, code, message)


def _seg(text: str) -> str:
    """`text` (a bucket name, a project or key id) as exactly one URL path segment."""
    if text in ("", ".", ".."):
        # URL normalization would drop or climb these, sending the call to another route.
        raise InvalidArgument(f"{text!r} is not a valid name or id")
    return quote(text, safe="")


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _Malformed(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Malformed(f"expected true or false, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"expected text, got {value!r}")
    return value


def _opt_b64(value: Any) -> bytes | None:
    return None if value is None else b64decode(_str(value))


def _redundancy(raw: Any) -> RedundancyScheme:
    return RedundancyScheme(_int(raw["k"]), _int(raw["m"]), _int(raw["o"]), _int(raw["n"]))


def _bucket(raw: Any) -> BucketRecord:
    return BucketRecord(
        _str(raw["name"]),
        _str(raw["profile"]),
        _redundancy(raw["redundancy"]),
        _int(raw["created_at"]),
    )


def _bucket_page(raw: Any) -> BucketPage:
    cursor = raw["next_cursor"]
    return BucketPage(
        tuple(_bucket(b) for b in raw["buckets"]), None if cursor is None else _str(cursor)
    )


def _upload(raw: Any) -> UploadRecord:
    return UploadRecord(
        _str(raw["stream_id"]),
        _redundancy(raw["redundancy"]),
        _int(raw["deadline"]),
        _int(raw["max_inline_size"]),
    )


def _addressed(raw: Any) -> AddressedLimit:
    limit = OrderLimit.decode(b64decode(_str(raw["order_limit"])))
    return AddressedLimit(
        _int(raw["piece_number"]),
        _str(raw["address"]),
        limit,
        _opt_b64(raw.get("public_key")),
        _opt_b64(raw.get("piece_hash")),
    )


def _orders(raw: Any) -> SegmentOrders:
    return SegmentOrders(
        _int(raw["index"]),
        _int(raw["piece_size"]),
        _redundancy(raw["redundancy"]),
        tuple(_addressed(o) for o in raw["order_limits"]),
    )


def _commit(raw: Any) -> SegmentCommitRecord:
    rejected = tuple(
        Rejection(_int(r["position"]), _str(r["code"]), _str(r["message"])) for r in raw["rejected"]
    )
    return SegmentCommitRecord(_int(raw["index"]), _int(raw["pieces"]), rejected)


def _segment(raw: Any) -> SegmentRecord:
    return SegmentRecord(
        _int(raw["index"]),
        _int(raw["encrypted_size"]),
        _int(raw["plain_size"]),
        _int(raw["piece_size"]),
        _redundancy(raw["redundancy"]),
        _opt_b64(raw["encrypted_metadata"]),
    )


def _object(raw: Any) -> ObjectRecord:
    return ObjectRecord(
        _str(raw["key"]),
        _str(raw["stream_id"]),
        _int(raw["created_at"]),
        _int(raw["encrypted_size"]),
        _int(raw["plain_size"]),
        _int(raw["segment_count"]),
        _opt_b64(raw["encrypted_metadata"]),
        _opt_b64(raw["inline_data"]),
        tuple(_segment(s) for s in raw["segments"]),
    )


def _listed(raw: Any) -> ListedRecord:
    def opt_int(name: str) -> int | None:
        value = raw.get(name)
        return None if value is None else _int(value)

    stream_id = raw.get("stream_id")
    return ListedRecord(
        _str(raw["key"]),
        bool(raw["is_prefix"]),
        None if stream_id is None else _str(stream_id),
        opt_int("created_at"),
        opt_int("encrypted_size"),
        opt_int("plain_size"),
        _opt_b64(raw.get("encrypted_metadata")),
    )


def _list_page(raw: Any) -> ListPage:
    cursor = raw["next_cursor"]
    return ListPage(
        tuple(_listed(item) for item in raw["items"]), None if cursor is None else _str(cursor)
    )


def _uploads(raw: Any) -> tuple[UploadSummary, ...]:
    return tuple(
        UploadSummary(_str(u["stream_id"]), _int(u["created_at"]), _int(u["deadline"]))
        for u in raw["uploads"]
    )


def _pending(raw: Any) -> PendingUpload:
    return PendingUpload(
        _str(raw["stream_id"]),
        _str(raw["key"]),
        _redundancy(raw["redundancy"]),
        _int(raw["deadline"]),
        tuple(_segment(s) for s in raw["segments"]),
    )


def _node_status(raw: Any) -> NodeStatusRecord:
    return NodeStatusRecord(
        NodeId.from_hex(_str(raw["node_id"])),
        _str(raw["address"]),
        _bool(raw["online"]),
        _int(raw["last_seen"]),
        None if raw["last_ping_ok"] is None else _int(raw["last_ping_ok"]),
        None if raw["last_ping_error"] is None else _str(raw["last_ping_error"]),
    )


def _account(raw: Any) -> AccountRecord:
    return AccountRecord(_str(raw["id"]), _str(raw["email"]), _int(raw["created_at"]))


def _session(raw: Any) -> SessionRecord:
    return SessionRecord(_str(raw["token"]), _int(raw["expires_at"]))


def _project(raw: Any) -> ProjectRecord:
    return ProjectRecord(
        _str(raw["id"]), _str(raw["name"]), b64decode(_str(raw["salt"])), _int(raw["created_at"])
    )


def _projects(raw: Any) -> tuple[ProjectRecord, ...]:
    return tuple(_project(p) for p in raw["projects"])


def _api_keys(raw: Any) -> tuple[ApiKeyRecord, ...]:
    return tuple(
        ApiKeyRecord(_str(k["key_id"]), _str(k["name"]), _int(k["created_at"]))
        for k in raw["api_keys"]
    )


def _created_key(raw: Any) -> CreatedApiKey:
    return CreatedApiKey(
        _str(raw["key_id"]), _str(raw["name"]), _int(raw["created_at"]), _str(raw["api_key"])
    )
