"""The gateway's HTTP side: one aiohttp handler that authenticates, routes and answers S3.

Every request is checked with AWS Signature Version 4 (`sigv4`) against the configured
credentials before anything else happens; the credential picks the access grant, and so the
`AsyncProject`, the request runs with. Then the method, the bucket and key (path style, or
virtual-host style under a configured domain) and the sub-resource in the query pick the
operation in `buckets`, `objects` or `multipart`. Errors become S3's XML error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import secrets
import signal
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiMapping

from metadisk.client import AsyncProject, ClientConfig, ClientError
from metadisk.gateway import buckets, multipart, objects
from metadisk.gateway.config import GatewayConfig
from metadisk.gateway.failures import s3_error
from metadisk.gateway.listing_cache import ListingCache
from metadisk.gateway.parts import PartStore
from metadisk.gateway.s3errors import S3Error, error_body
from metadisk.gateway.sigv4 import Request, Verified, verify
from metadisk.gateway.web import FileManager
from metadisk.runtime.logs import event
from metadisk.runtime.net import announce_listening
from metadisk.runtime.server import AppServer
from metadisk.wire.fields import BUCKET_PATTERN, MAX_BUCKET_NAME, MIN_BUCKET_NAME

log = logging.getLogger("metadisk.gateway")
_BUCKET_NAME = re.compile(BUCKET_PATTERN)
# Uploads (PUTs past the inline size, and parts) streaming into the library at once. Each holds
# segment buffers of its own (~28 MiB for boto3's 8 MiB parts at 4/10), so boto3's ten parts at
# once took the gateway to ~540 MiB; three at a time were as fast on 2 cores (bench/gateway.py).
UPLOADS_AT_ONCE = 4
# Downloads of objects stored on farmers streaming out at once, for the same reason: each holds
# its read-ahead of segments, and boto3's ten ranged GETs at once took the gateway to ~500 MiB.
DOWNLOADS_AT_ONCE = 4

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]

# Sub-resources S3 has and this gateway does not: answered 501 NotImplemented.
_UNSUPPORTED = frozenset(
    {
        "acl", "analytics", "accelerate", "cors", "encryption", "intelligent-tiering",
        "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification",
        "object-lock", "ownershipControls", "policy", "policyStatus", "publicAccessBlock",
        "replication", "requestPayment", "restore", "retention", "select", "tagging",
        "torrent", "versions", "website", "attributes",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated S3 request on its way to an operation."""

    request: web.Request
    headers: dict[str, str]  # lower-cased names
    query: MultiMapping[str]
    bucket: str
    key: str
    access_key: str
    verified: Verified
    project: AsyncProject
    gateway: Gateway
    request_id: str


class Gateway:
    """An S3 endpoint for the configured access grants. Example::

    gateway = Gateway(config)
    await gateway.start()  # listens on config.host:config.port (0: an ephemeral port)
    ...  # S3 clients use gateway.url with the configured key pairs
    await gateway.close()
    """

    def __init__(self, config: GatewayConfig, *, client: ClientConfig | None = None) -> None:
        self.config = config
        self.parts = PartStore(config.state_dir)
        self.listings = ListingCache()
        self.uploads = asyncio.Semaphore(UPLOADS_AT_ONCE)  # the rest wait, unread
        self.downloads = asyncio.Semaphore(DOWNLOADS_AT_ONCE)  # the rest wait, unanswered
        self._client = client
        self._projects: dict[str, AsyncProject] = {}
        self.files = FileManager(self)
        self._server = AppServer(self.app(), config.host, config.port)

    @property
    def port(self) -> int:
        assert self._server.port is not None, "not started"
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def client(self) -> ClientConfig | None:
        """The library settings projects are opened with (None: the defaults)."""
        return self._client

    @property
    def files_url(self) -> str | None:
        """The file manager's first-open URL (with the run's token); None when it is off."""
        return self.files.url if self.files.enabled else None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        if self.files.enabled:  # under /-/, a path no bucket has, before the S3 catch-all
            self.files.mount(app)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()
        await self.files.close()
        for project in self._projects.values():
            with contextlib.suppress(ClientError):
                await project.aclose()
        self._projects.clear()
        self.parts.close()

    async def project(self, access_key: str) -> AsyncProject:
        """The project of a credential, opened at its first request."""
        project = self._projects.get(access_key)
        if project is None:
            credential = next(c for c in self.config.credentials if c.access_key == access_key)
            options = {} if self._client is None else {"config": self._client}
            project = await AsyncProject.open(credential.grant, **options)
            # Two first requests may race here; the loser's project is closed.
            if access_key in self._projects:
                await project.aclose()
                project = self._projects[access_key]
            else:
                self._projects[access_key] = project
        return project

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        request_id = secrets.token_hex(8).upper()
        resource = urllib.parse.unquote(request.raw_path.split("?", 1)[0])
        try:
            response = await self._serve(request, request_id)
        except S3Error as exc:
            response = _error_response(exc, request, request_id, resource)
        except ClientError as exc:
            response = _error_response(s3_error(exc), request, request_id, resource)
        response.headers["x-amz-request-id"] = request_id
        response.headers.setdefault("Server", "metadisk")
        return response

    async def _serve(self, request: web.Request, request_id: str) -> web.StreamResponse:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            name = name.lower()  # repeated headers joined by ",", as SigV4 signs them
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_path, _, raw_query = request.raw_path.partition("?")
        pairs = _query_pairs(raw_query)
        verified = verify(
            Request(request.method, raw_path, pairs, headers),
            self.config.secret_for,
            datetime.datetime.now(datetime.UTC),
            skew=datetime.timedelta(seconds=self.config.clock_skew),
        )
        bucket, key = self._locate(raw_path, headers.get("host", ""))
        if bucket and (
            not MIN_BUCKET_NAME <= len(bucket) <= MAX_BUCKET_NAME
            or not _BUCKET_NAME.fullmatch(bucket)
        ):
            raise S3Error(
                "InvalidBucketName",
                f"a bucket name is {MIN_BUCKET_NAME} to {MAX_BUCKET_NAME} lower-case letters, "
                "digits, dots and hyphens, beginning and ending with a letter or digit",
                BucketName=bucket,
            )
        handler = route(request.method, bucket, key, request.query, headers)
        call = Call(
            request=request,
            headers=headers,
            query=request.query,
            bucket=bucket,
            key=key,
            access_key=verified.access_key,
            verified=verified,
            project=await self.project(verified.access_key),
            gateway=self,
            request_id=request_id,
        )
        event(log, logging.DEBUG, "request", method=request.method, bucket=bucket)
        return await handler(call)

    def _locate(self, raw_path: str, host: str) -> tuple[str, str]:
        """(bucket, key) of a request: path style, or virtual-host style under the domain."""
        path = urllib.parse.unquote(raw_path)
        if not path.startswith("/"):
            raise S3Error("InvalidURI", "the request path does not start with '/'")
        domain = self.config.domain
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if domain and hostname.endswith("." + domain):
            return hostname[: -len(domain) - 1], path[1:]
        bucket, _, key = path[1:].partition("/")
        return bucket, key


def route(
    method: str, bucket: str, key: str, query: MultiMapping[str], headers: dict[str, str]
) -> Handler:
    """The operation for a request, by method, bucket, key and sub-resource."""
    unsupported = _UNSUPPORTED.intersection(query)
    if unsupported:
        raise S3Error("NotImplemented", f"?{min(unsupported)} is not supported by this gateway")
    copy = "x-amz-copy-source" in headers
    if not bucket:
        if method == "GET":
            return buckets.list_buckets
    elif not key:
        table: dict[str, Handler] = {
            "PUT": buckets.create_bucket,
            "HEAD": buckets.head_bucket,
            "DELETE": buckets.delete_bucket,
        }
        if method == "GET":
            if "location" in query:
                return buckets.get_location
            if "versioning" in query:
                return buckets.get_versioning
            if "uploads" in query:
                return multipart.list_uploads
            return buckets.list_objects
        if method == "POST" and "delete" in query:
            return objects.delete_objects
        if method in table:
            return table[method]
    elif "uploadId" in query:
        if method == "PUT" and "partNumber" in query:
            return multipart.upload_part_copy if copy else multipart.upload_part
        by_method: dict[str, Handler] = {
            "GET": multipart.list_parts,
            "POST": multipart.complete,
            "DELETE": multipart.abort,
        }
        if method in by_method:
            return by_method[method]
    else:
        if method == "POST" and "uploads" in query:
            return multipart.create
        by_key: dict[str, Handler] = {
            "PUT": objects.copy_object if copy else objects.put_object,
            "GET": objects.get_object,
            "HEAD": objects.head_object,
            "DELETE": objects.delete_object,
        }
        if method in by_key:
            return by_key[method]
    raise S3Error("MethodNotAllowed", f"{method} is not allowed on this resource")


def _query_pairs(raw: str) -> list[tuple[str, str]]:
    """The query's name/value pairs, decoded, in order; a literal '+' stays a '+'."""
    pairs = []
    for item in raw.split("&") if raw else []:
        name, _, value = item.partition("=")
        pairs.append((urllib.parse.unquote(name), urllib.parse.unquote(value)))
    return pairs


def _error_response(
    exc: S3Error, request: web.Request, request_id: str, resource: str
) -> web.Response:
    if exc.status == 304:
        return web.Response(status=304)
    event(log, logging.DEBUG, "refused", code=exc.code, status=exc.status)
    body = b"" if request.method == "HEAD" else error_body(exc, request_id, resource)
    response = web.Response(status=exc.status, body=body, content_type="application/xml")
    if request.method == "HEAD":
        response.headers["x-amz-error-code"] = exc.code
    return response


async def serve(
    config: GatewayConfig,
    *,
    client: ClientConfig | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
) -> None:
    """A whole gateway process: start, announce, serve until SIGINT or SIGTERM, close.

    Once listening it prints ``{"event": "listening", "url": ..., "port": ..., "pid": ...,
    "files": ...}`` as one line on stdout, which launchers read (`metadisk.runtime.process`);
    ``files`` is the file manager's URL with the run's token, or null when it is off. Then
    `on_ready` is called with the gateway (the CLI prints the URLs).
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    gateway = Gateway(config, client=client)
    try:
        await gateway.start()
        files = gateway.files_url
        announce_listening(url=gateway.url, port=gateway.port, pid=os.getpid(), files=files)
        log.info("S3 gateway listening on %s", gateway.url)
        if files is None:
            log.warning(
                "the web file manager is off: it is served only on a loopback address, and "
                "this gateway listens on %s",
                config.host,
            )
        if on_ready is not None:
            on_ready(gateway)
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        await gateway.close()
