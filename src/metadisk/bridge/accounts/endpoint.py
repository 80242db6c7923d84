"""HTTP routes of accounts, sessions, projects and API keys (session bearer auth)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Response

from metadisk.bridge.accounts import schemas as s
from metadisk.bridge.accounts.service import AccountsService
from metadisk.bridge.config import Limits
from metadisk.bridge.http import COMMON_ERRORS, HEX_PATTERN, session_token

_PROJECT_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)
_KEY_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)


def router(service: AccountsService, clock: Callable[[], int]) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["accounts"], responses=COMMON_ERRORS)

    @api.post("/accounts", status_code=201)
    def register(body: s.Credentials) -> s.AccountOut:
        """Create an account (the password is kept as an Argon2id hash)."""
        return s.AccountOut.of(service.register(body.email, body.password, clock()))

    @api.post("/sessions", status_code=201)
    def login(body: s.Credentials) -> s.SessionOut:
        """Log in: a short-lived bearer token for account, project and key management."""
        session = service.login(body.email, body.password, clock())
        return s.SessionOut(token=session.token, expires_at=session.expires_at)

    @api.delete("/sessions/current", status_code=204)
    def logout(token: str = Depends(session_token)) -> Response:
        service.authenticate(token, clock())
        service.logout(token)
        return Response(status_code=204)

    @api.get("/account")
    def account(token: str = Depends(session_token)) -> s.AccountOut:
        return s.AccountOut.of(service.authenticate(token, clock()))

    @api.post("/projects", status_code=201)
    def create_project(body: s.NewProject, token: str = Depends(session_token)) -> s.ProjectOut:
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
        return s.ProjectOut.of(service.create_project(user, body.name, limits, now))

    @api.get("/projects")
    def projects(token: str = Depends(session_token)) -> s.ProjectList:
        now = clock()
        user = service.authenticate(token, now)
        return s.ProjectList(projects=[s.ProjectOut.of(p) for p in service.projects(user, now)])

    @api.get("/projects/{project_id}")
    def project(project_id: str = _PROJECT_ID, token: str = Depends(session_token)) -> s.ProjectOut:
        now = clock()
        user = service.authenticate(token, now)
        return s.ProjectOut.of(service.project(user, project_id, now))

    @api.post("/projects/{project_id}/api-keys", status_code=201)
    def create_key(
        body: s.NewKey, project_id: str = _PROJECT_ID, token: str = Depends(session_token)
    ) -> s.CreatedKey:
        """Create a root API key; the serialized key is in this answer only."""
        now = clock()
        user = service.authenticate(token, now)
        new = service.create_key(user, project_id, body.name, now)
        record = new.record
        return s.CreatedKey(
            key_id=record.key_id.hex(),
            name=record.name,
            created_at=record.created_at,
            api_key=new.api_key,
        )

    @api.get("/projects/{project_id}/api-keys")
    def keys(project_id: str = _PROJECT_ID, token: str = Depends(session_token)) -> s.KeyList:
        now = clock()
        user = service.authenticate(token, now)
        return s.KeyList(api_keys=[s.KeyOut.of(k) for k in service.keys(user, project_id, now)])

    @api.delete("/projects/{project_id}/api-keys/{key_id}", status_code=204)
    def delete_key(
        project_id: str = _PROJECT_ID, key_id: str = _KEY_ID, token: str = Depends(session_token)
    ) -> Response:
        """Delete a root key: it and every key restricted from it stop working at once."""
        now = clock()
        user = service.authenticate(token, now)
        service.delete_key(user, project_id, bytes.fromhex(key_id), now)
        return Response(status_code=204)

    @api.post("/projects/{project_id}/revocations", status_code=204)
    def revoke(
        body: s.Revocation, project_id: str = _PROJECT_ID, token: str = Depends(session_token)
    ) -> Response:
        """Revoke one (possibly restricted) key of the project and every key made from it."""
        now = clock()
        user = service.authenticate(token, now)
        service.revoke(user, project_id, body.api_key, now)
        return Response(status_code=204)

    return api


def _or_max(value: int | None) -> int:
    return (1 << 63) - 1 if value is None else value
