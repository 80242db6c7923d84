"""API keys made in the console: the caveats a form asks for, and the command that turns a key
into an access grant on the user's own machine (the passphrase never reaches the bridge)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from metadisk.core.errors import DecodeError
from metadisk.core.macaroon import AllowedPath, APIKey, Caveat

ACCESS = {
    "full": "read, write, list and delete",
    "read": "read and list only",
    "write": "write and list only (no reads, no deletes)",
}
MAX_DAYS = 3650


@dataclass(frozen=True, slots=True)
class KeyForm:
    """A new key as asked for: a name, what it may do, a bucket, a lifetime."""

    name: str
    access: str  # a key of ACCESS
    bucket: str  # "" for every bucket
    expires_at: int | None

    @classmethod
    def parse(cls, fields: dict[str, str], now: int) -> KeyForm:
        """The form's fields checked; `ValueError` with a sentence for the user."""
        name = fields.get("name", "").strip()
        if not 1 <= len(name) <= 100:
            raise ValueError("a key's name has 1 to 100 characters")
        access = fields.get("access", "full")
        if access not in ACCESS:
            raise ValueError("choose full, read or write access")
        bucket = fields.get("bucket", "").strip()
        if len(bucket.encode()) > 63:
            raise ValueError("a bucket name has at most 63 characters")
        days = fields.get("days", "").strip()
        expires_at = None
        if days:
            if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
                raise ValueError(f"a lifetime is 1 to {MAX_DAYS} days")
            expires_at = now + int(days) * 86_400
        return cls(name, access, bucket, expires_at)

    def caveat(self) -> Caveat | None:
        """The restriction this form asks for; None for an unrestricted key."""
        if self.access == "full" and not self.bucket and self.expires_at is None:
            return None
        try:
            return Caveat(
                disallow_writes=self.access == "read",
                disallow_deletes=self.access in ("read", "write"),
                disallow_reads=self.access == "write",
                allowed_paths=(AllowedPath(self.bucket),) if self.bucket else (),
                not_after=self.expires_at,
            )
        except DecodeError as exc:
            raise ValueError(str(exc)) from exc

    def restrict(self, serialized: str) -> str:
        """`serialized` (a new root key) with this form's caveat added."""
        caveat = self.caveat()
        if caveat is None:
            return serialized
        return APIKey.parse(serialized).restrict(caveat).serialize()

    def describe(self) -> list[str]:
        said = [ACCESS[self.access]]
        said.append(f"bucket {self.bucket} only" if self.bucket else "every bucket")
        if self.expires_at is not None:
            said.append("expires")  # the template adds the date
        return said


def setup_command(bridge_url: str, api_key: str, salt: str) -> str:
    """The exact ``metadisk setup`` that makes a grant of `api_key` on the user's machine; the
    passphrase is asked there (or read from ``--passphrase-env``), never sent anywhere."""
    # ``--flag=value``: a base64url salt may begin with "-", which must not read as an option.
    words = ["metadisk", "setup", bridge_url, f"--api-key={api_key}", f"--project-salt={salt}"]
    return " ".join(shlex.quote(word) for word in words)
