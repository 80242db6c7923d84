"""Bodies of accounts, sessions, projects and root API keys (session bearer auth)."""

from __future__ import annotations

from pydantic import Field

from metadisk.wire.fields import B64, MAX_U63
from metadisk.wire.models import Answer, Request


class Credentials(Request):
    """``POST /v1/accounts`` (register) and ``POST /v1/sessions`` (log in)."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class Account(Answer):
    id: str
    email: str
    created_at: int


class Session(Answer):
    """A login: the bearer token for account routes, good until `expires_at` (Unix seconds)."""

    token: str = Field(description="bearer token for account, project and key management")
    expires_at: int


class LimitsIn(Request):
    buckets: int | None = Field(default=None, ge=0, le=MAX_U63)
    storage_bytes: int | None = Field(default=None, ge=0, le=MAX_U63)
    egress_bytes: int | None = Field(default=None, ge=0, le=MAX_U63)
    segments: int | None = Field(default=None, ge=0, le=MAX_U63)


class NewProject(Request):
    name: str = Field(min_length=1, max_length=100)
    limits: LimitsIn | None = Field(
        default=None, description="lower limits than the bridge's defaults (capped at them)"
    )


class Limits(Answer):
    buckets: int
    storage_bytes: int
    egress_bytes: int
    segments: int


class Usage(Answer):
    buckets: int
    storage_bytes: int
    egress_bytes: int = Field(description="this calendar month (UTC)")
    segments: int


class Project(Answer):
    id: str
    name: str
    salt: B64 = Field(description="base64url; the client derives the root key from it")
    created_at: int
    limits: Limits
    usage: Usage


class ProjectList(Answer):
    projects: list[Project]


class NewApiKey(Request):
    name: str = Field(min_length=1, max_length=100)


class ApiKey(Answer):
    """A project's root API key as listed: its id and name, never the key itself."""

    key_id: str = Field(description="hex")
    name: str
    created_at: int


class CreatedApiKey(ApiKey):
    """A new root API key: the serialized key is in this answer only."""

    api_key: str = Field(description="the serialized key; shown only once")


class ApiKeyList(Answer):
    api_keys: list[ApiKey]


class Revocation(Request):
    """``POST /v1/revocations`` (with an API key) and ``.../revocations`` of a project."""

    api_key: str = Field(
        max_length=1 << 20,
        description="the key to revoke: the caller's, or one restricted from it",
    )
