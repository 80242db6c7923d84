"""Request and response bodies of the accounts API (pydantic lives only at the HTTP edge)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from metadisk.bridge.accounts.db import KeyRecord, Project, User
from metadisk.core.encoding import b64encode

_MAX_U63 = (1 << 63) - 1


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class AccountOut(BaseModel):
    id: str
    email: str
    created_at: int

    @classmethod
    def of(cls, user: User) -> AccountOut:
        return cls(id=user.id, email=user.email, created_at=user.created_at)


class SessionOut(BaseModel):
    token: str = Field(description="bearer token for account, project and key management")
    expires_at: int


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buckets: int | None = Field(default=None, ge=0, le=_MAX_U63)
    storage_bytes: int | None = Field(default=None, ge=0, le=_MAX_U63)
    egress_bytes: int | None = Field(default=None, ge=0, le=_MAX_U63)
    segments: int | None = Field(default=None, ge=0, le=_MAX_U63)


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    limits: LimitsIn | None = Field(
        default=None, description="lower limits than the bridge's defaults (capped at them)"
    )


class LimitsOut(BaseModel):
    buckets: int
    storage_bytes: int
    egress_bytes: int
    segments: int


class UsageOut(BaseModel):
    buckets: int
    storage_bytes: int
    egress_bytes: int = Field(description="this calendar month (UTC)")
    segments: int


class ProjectOut(BaseModel):
    id: str
    name: str
    salt: str = Field(description="base64url; the client derives the root key from it")
    created_at: int
    limits: LimitsOut
    usage: UsageOut

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        limits, usage = project.limits, project.usage
        return cls(
            id=project.id,
            name=project.name,
            salt=b64encode(project.salt),
            created_at=project.created_at,
            limits=LimitsOut(
                buckets=limits.buckets,
                storage_bytes=limits.storage_bytes,
                egress_bytes=limits.egress_bytes,
                segments=limits.segments,
            ),
            usage=UsageOut(
                buckets=usage.buckets,
                storage_bytes=usage.storage_bytes,
                egress_bytes=usage.egress_bytes,
                segments=usage.segments,
            ),
        )


class ProjectList(BaseModel):
    projects: list[ProjectOut]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class KeyOut(BaseModel):
    key_id: str = Field(description="hex")
    name: str
    created_at: int

    @classmethod
    def of(cls, record: KeyRecord) -> KeyOut:
        return cls(key_id=record.key_id.hex(), name=record.name, created_at=record.created_at)


class CreatedKey(KeyOut):
    api_key: str = Field(description="the serialized key; shown only once")


class KeyList(BaseModel):
    api_keys: list[KeyOut]


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(max_length=1 << 20, description="the serialized key to revoke")
