"""Bodies of accounts, sessions, projects and root API keys (session bearer auth)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from metadisk.wire.fields import B64, MAX_U63


class Credentials(BaseModel):
    """``POST /v1/accounts`` (register) and ``POST /v1/sessions`` (log in)."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class Account(BaseModel):
    id: str
    email: str
    created_at: int


class Session(BaseModel):
    """A login: the bearer token for account routes, good until `expires_at` (Unix seconds)."""

    token: str = Field(description="bearer token for account, project and key management")
    expires_at: int


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buckets: int | None = Field(default=None, ge=0, le=MAX_U63)
    storage_bytes: int | None = Field(default=None, ge=0, le=MAX_U63)
    egress_bytes: int | None = Field(default=None, ge=0, le=MAX_U63)
    segments: int | None = Field(default=None, ge=0, le=MAX_U63)


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    limits: LimitsIn | None = Field(
        default=None, description="lower limits than the bridge's defaults (capped at them)"
    )


class Limits(BaseModel):
    buckets: int
    storage_bytes: int
    egress_bytes: int
    segments: int


class Usage(BaseModel):
    buckets: int
    storage_bytes: int
    egress_bytes: int = Field(description="this calendar month (UTC)")
    segments: int


class Project(BaseModel):
    id: str
    name: str
    salt: B64 = Field(description="base64url; the client derives the root key from it")
    created_at: int
    limits: Limits
    usage: Usage


class ProjectList(BaseModel):
    projects: list[Project]


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class ApiKey(BaseModel):
    """A project's root API key as listed: its id and name, never the key itself."""

    key_id: str = Field(description="hex")
    name: str
    created_at: int


class CreatedApiKey(ApiKey):
    """A new root API key: the serialized key is in this answer only."""

    api_key: str = Field(description="the serialized key; shown only once")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKey]


class Revocation(BaseModel):
    """``POST /v1/revocations`` (with an API key) and ``.../revocations`` of a project."""

    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(
        max_length=1 << 20,
        description="the key to revoke: the caller's, or one restricted from it",
    )
