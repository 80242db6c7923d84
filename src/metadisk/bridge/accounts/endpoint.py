"""HTTP routes of accounts, sessions, projects and API keys (session bearer auth); bodies are
`metadisk.wire.api.accounts`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Response

from metadisk.bridge import errors
from metadisk.bridge.accounts.db import KeyRecord, Project
from metadisk.bridge.accounts.hashing import HashingPool
from metadisk.bridge.accounts.service import AccountsService
from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.config import Limits
from metadisk.bridge.http import (
    COMMON_ERRORS,
    RATE_LIMITED,
    Runner,
    api_key_token,
    public,
    session_token,
)
from metadisk.wire.api import accounts as w
from metadisk.wire.api import routes
from metadisk.wire.fields import HEX_PATTERN, MAX_U63

_PROJECT_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)
_KEY_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)


def router(service: AccountsService, clock: Callable[[], int], hashing: HashingPool) -> APIRouter:
    """The routes; the two that hash a password run on `hashing` (503 busy when it is full)."""
    api = APIRouter(tags=["accounts"], responses=COMMON_ERRORS)

    @api.post(routes.ACCOUNTS, status_code=201, responses=RATE_LIMITED, openapi_extra=public())
    async def register(body: w.Credentials) -> w.Account:
        """Create an account (the password is kept as an Argon2id hash)."""
        user = await hashing.run(lambda: service.register(body.email, body.password, clock()))
        return w.Account(id=user.id, email=user.email, created_at=user.created_at)

    @api.post(routes.SESSIONS, status_code=201, responses=RATE_LIMITED, openapi_extra=public())
    async def login(body: w.Credentials) -> w.Session:
        """Log in: a short-lived bearer token for account, project and key management."""
        session = await hashing.run(lambda: service.login(body.email, body.password, clock()))
        return w.Session(token=session.token, expires_at=session.expires_at)

    @api.delete(routes.CURRENT_SESSION, status_code=204)
    def logout(token: str = Depends(session_token)) -> Response:
        service.authenticate(token, clock())
        service.logout(token)
        return Response(status_code=204)

    @api.get(routes.ACCOUNT)
    def account(token: str = Depends(session_token)) -> w.Account:
        user = service.authenticate(token, clock())
        return w.Account(id=user.id, email=user.email, created_at=user.created_at)

    @api.post(routes.PROJECTS, status_code=201)
    def create_project(body: w.NewProject, token: str = Depends(session_token)) -> w.Project:
        """Create a project: a random salt (for client key derivation) and limits."""
        now = clock()
        user = service.authenticate(token, now)
        limits = None
        if body.limits is not None:
            # Unset fields ask for everything; the service caps each at the bridge's default.
            limits = Limits(
                buckets=_or_max(body.limits.buckets),
                storage_bytes=_or_max(body.limits.storage_bytes),
                egress_bytes=_or_max(body.limits.egress_bytes),
                segments=_or_max(body.limits.segments),
            )
        return project_out(service.create_project(user, body.name, limits, now))

    @api.get(routes.PROJECTS)
    def projects(token: str = Depends(session_token)) -> w.ProjectList:
        now = clock()
        user = service.authenticate(token, now)
        return w.ProjectList(projects=[project_out(p) for p in service.projects(user, now)])

    @api.get(routes.PROJECT)
    def project(project_id: str = _PROJECT_ID, token: str = Depends(session_token)) -> w.Project:
        now = clock()
        user = service.authenticate(token, now)
        return project_out(service.project(user, project_id, now))

    @api.put(routes.PROJECT_VERIFIER, status_code=204)
    def set_verifier(
        body: w.NewVerifier, project_id: str = _PROJECT_ID, token: str = Depends(session_token)
    ) -> Response:
        """Store the project's passphrase verifier (the owner; `force` replaces another)."""
        now = clock()
        user = service.authenticate(token, now)
        service.set_verifier(user, project_id, body.verifier, body.force, now)
        return Response(status_code=204)

    @api.post(routes.API_KEYS, status_code=201)
    def create_key(
        body: w.NewApiKey, project_id: str = _PROJECT_ID, token: str = Depends(session_token)
    ) -> w.CreatedApiKey:
        """Create a root API key; the serialized key is in this answer only."""
        now = clock()
        user = service.authenticate(token, now)
        new = service.create_key(user, project_id, body.name, now)
        record = new.record
        return w.CreatedApiKey(
            key_id=record.key_id.hex(),
            name=record.name,
            created_at=record.created_at,
            api_key=new.api_key,
        )

    @api.get(routes.API_KEYS)
    def keys(project_id: str = _PROJECT_ID, token: str = Depends(session_token)) -> w.ApiKeyList:
        now = clock()
        user = service.authenticate(token, now)
        return w.ApiKeyList(api_keys=[key_out(k) for k in service.keys(user, project_id, now)])

    @api.delete(routes.API_KEY, status_code=204)
    def delete_key(
        project_id: str = _PROJECT_ID, key_id: str = _KEY_ID, token: str = Depends(session_token)
    ) -> Response:
        """Delete a root key: it and every key restricted from it stop working at once."""
        now = clock()
        user = service.authenticate(token, now)
        service.delete_key(user, project_id, bytes.fromhex(key_id), now)
        return Response(status_code=204)

    @api.post(routes.PROJECT_REVOCATIONS, status_code=204)
    def revoke(
        body: w.Revocation, project_id: str = _PROJECT_ID, token: str = Depends(session_token)
    ) -> Response:
        """Revoke one (possibly restricted) key of the project and every key made from it."""
        now = clock()
        user = service.authenticate(token, now)
        service.revoke(user, project_id, body.api_key, now)
        return Response(status_code=204)

    return api


def key_router(service: AccountsService, authority: KeyAuthority, run: Runner) -> APIRouter:
    """The passphrase verifier with an API key (holders of access grants)."""
    api = APIRouter(tags=["api keys"], responses=COMMON_ERRORS)

    @api.get(routes.VERIFIER)
    async def verifier(token: str = Depends(api_key_token)) -> w.PassphraseVerifier:
        """The key's project's passphrase verifier; any genuine key of the project may read it."""

        def work() -> w.PassphraseVerifier:
            return w.PassphraseVerifier(verifier=service.key_verifier(authority.resolve(token)))

        return await run(work)

    @api.put(routes.VERIFIER, status_code=204)
    async def set_verifier(body: w.NewVerifier, token: str = Depends(api_key_token)) -> Response:
        """Store the verifier if none is stored yet: an unrestricted key only, never `force`."""

        def work() -> None:
            access = authority.resolve(token)
            if body.force:
                raise errors.AccessDenied("only the project's owner may replace its verifier")
            service.set_key_verifier(access, body.verifier)

        await run(work)
        return Response(status_code=204)

    return api


def project_out(project: Project) -> w.Project:
    limits, usage = project.limits, project.usage
    return w.Project(
        id=project.id,
        name=project.name,
        salt=project.salt,
        created_at=project.created_at,
        limits=w.Limits(
            buckets=limits.buckets,
            storage_bytes=limits.storage_bytes,
            egress_bytes=limits.egress_bytes,
            segments=limits.segments,
        ),
        usage=w.Usage(
            buckets=usage.buckets,
            storage_bytes=usage.storage_bytes,
            egress_bytes=usage.egress_bytes,
            segments=usage.segments,
        ),
        passphrase_verifier=project.verifier,
    )


def key_out(record: KeyRecord) -> w.ApiKey:
    return w.ApiKey(key_id=record.key_id.hex(), name=record.name, created_at=record.created_at)


def _or_max(value: int | None) -> int:
    return MAX_U63 if value is None else value
