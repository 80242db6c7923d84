"""Bodies of accounts, sessions, projects and root API keys (session bearer auth)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, WithJsonSchema

from metadisk.wire.fields import B64, CANONICAL_B64_PATTERN, JSON_INT, MAX_REQUEST_INT, b64_length
from metadisk.wire.models import Answer, Request


class Credentials(Request):
    """``POST /v1/accounts`` (register) and ``POST /v1/sessions`` (log in)."""

    # The bridge's own rules (it answers invalid-email and weak-password), published; a login
    # with any other text is simply not a known account (401).
    email: str = Field(
        max_length=254, json_schema_extra={"pattern": r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$"}
    )
    password: str = Field(max_length=1024, json_schema_extra={"minLength": 8})


class Account(Answer):
    id: str
    email: str
    created_at: int


class Session(Answer):
    """A login: the bearer token for account routes, good until `expires_at` (Unix seconds)."""

    token: str = Field(description="bearer token for account, project and key management")
    expires_at: int


Limit = Annotated[int, Field(ge=0, le=MAX_REQUEST_INT), JSON_INT]


class LimitsIn(Request):
    buckets: Limit | None = None
    storage_bytes: Limit | None = None
    egress_bytes: Limit | None = None
    segments: Limit | None = None


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
    passphrase_verifier: B64 | None = Field(
        default=None,
        description="base64url; see PassphraseVerifier. null until the first setup stores one",
    )


class PendingUsage(Answer):
    """What pending (uncommitted) uploads reserve against the limits until committed or aborted."""

    uploads: int
    storage_bytes: int
    segments: int


class ProjectUsage(Answer):
    """An API key's project: what it uses against its limits, as the key may read it."""

    limits: Limits
    usage: Usage
    objects: int = Field(description="committed objects")
    pending: PendingUsage


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


VERIFIER_BYTES = 32
# Exactly 32 bytes, and the document says so: every canonical text of this length decodes to 32.
Verifier = Annotated[
    B64,
    Field(min_length=VERIFIER_BYTES, max_length=VERIFIER_BYTES),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CANONICAL_B64_PATTERN,
            "minLength": b64_length(VERIFIER_BYTES),
            "maxLength": b64_length(VERIFIER_BYTES),
            "description": "base64url, 32 bytes",
        }
    ),
]


class PassphraseVerifier(Answer):
    """The project's passphrase verifier: HMAC-SHA256 of a fixed text under the root key the
    passphrase derives, so a client can tell a wrong passphrase; null if none is stored yet."""

    verifier: B64 | None = Field(description="base64url, 32 bytes; or null")


class NewVerifier(Request):
    """Store the project's passphrase verifier: refused (409 verifier-mismatch) if another is
    stored, unless `force` (the owner's session only: it makes the old passphrase wrong)."""

    verifier: Verifier = Field(description="base64url, 32 bytes")
    force: StrictBool = False


class Revocation(Request):
    """``POST /v1/revocations`` (with an API key) and ``.../revocations`` of a project."""

    api_key: str = Field(
        max_length=1 << 20,
        json_schema_extra={"pattern": r"^mdk1[A-Za-z0-9_-]+$"},
        description="the key to revoke: the caller's, or one restricted from it",
    )
