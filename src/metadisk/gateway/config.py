"""The gateway's settings: where it listens, and which S3 credentials open which access grants.

A gateway serves one or more credential pairs, each an S3 access key id and secret mapped to an
access grant, so several grants (a whole project, a read-only share) can share one process. The
pairs come from the config file (``gateway.toml``, 0600, in a 0700 directory) and from the
environment, as other S3 servers take a root user::

    # metadisk S3 gateway
    host = "127.0.0.1"
    port = 7780
    region = "us-east-1"

    [[credentials]]
    access_key = "MDG5Q3..."
    secret_key = "..."
    grant = "mdg1..."

``METADISK_GATEWAY_ACCESS_KEY``, ``METADISK_GATEWAY_SECRET_KEY`` and ``METADISK_GATEWAY_GRANT``
add one more pair. The secret key is an HMAC key for SigV4: whoever holds it and the gateway's
address can act with the grant, so it is kept like the grant itself.
"""

from __future__ import annotations

import json
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant
from metadisk.runtime import files

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7780
DEFAULT_REGION = "us-east-1"
CONFIG_FILE = "gateway.toml"
ENV_ACCESS_KEY = "METADISK_GATEWAY_ACCESS_KEY"
ENV_SECRET_KEY = "METADISK_GATEWAY_SECRET_KEY"  # noqa: S105 - a variable's name
ENV_GRANT = "METADISK_GATEWAY_GRANT"

# AWS's shapes: 20 upper-case letters and digits, and 40 characters of secret. Ours begin with
# "MD" so a reader can tell them from AWS keys.
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_MIN_SECRET = 16


class ConfigError(ValueError):
    """The gateway's configuration is unusable; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Credential:
    """One S3 access key id and secret, and the access grant requests signed with them use."""

    access_key: str
    secret_key: str = field(repr=False)
    grant: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.access_key or not self.access_key.isascii() or not self.access_key.isalnum():
            raise ConfigError("an access key id is letters and digits")
        if len(self.secret_key) < _MIN_SECRET or not self.secret_key.isascii():
            raise ConfigError(f"a secret key is at least {_MIN_SECRET} ASCII characters")
        try:
            AccessGrant.parse(self.grant)
        except (DecodeError, ValueError) as exc:
            raise ConfigError(f"credential {self.access_key}: not an access grant ({exc})") from exc


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything `metadisk gateway run` needs; see the module docstring for the file."""

    credentials: tuple[Credential, ...]
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    # Where multipart uploads' part lists are kept (`gateway.parts`); None: in memory only.
    state_dir: Path | None = None
    # Virtual-host-style requests (``bucket.<domain>``) besides path-style ones; None: path only.
    domain: str | None = None
    clock_skew: int = 15 * 60  # seconds a signed request's time may differ from ours
    min_part_size: int = 5 << 20  # every part of a multipart upload but the last, as S3

    def __post_init__(self) -> None:
        keys = [c.access_key for c in self.credentials]
        if len(set(keys)) != len(keys):
            raise ConfigError("an access key id is listed twice")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range")

    def secret_for(self, access_key: str) -> str | None:
        for credential in self.credentials:
            if credential.access_key == access_key:
                return credential.secret_key
        return None


def new_credential(grant: str) -> Credential:
    """A fresh random credential pair for `grant`."""
    access_key = "MD" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    return Credential(access_key, secrets.token_urlsafe(30), grant)


def load(
    path: Path | None, environ: Mapping[str, str], *, state_dir: Path | None = None
) -> GatewayConfig:
    """The config from `path` (if given and present) plus the pair in the environment."""
    raw: Mapping[str, Any] = {}
    if path is not None and path.exists():
        files.tighten(path, files.FILE_MODE)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    credentials = [_credential(entry) for entry in _entries(raw)]
    from_env = [environ.get(name, "") for name in (ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_GRANT)]
    if any(from_env):
        if not all(from_env):
            raise ConfigError(f"set all of {ENV_ACCESS_KEY}, {ENV_SECRET_KEY} and {ENV_GRANT}")
        credentials.append(Credential(*from_env))
    return GatewayConfig(
        credentials=tuple(credentials),
        host=_value(raw, "host", str, DEFAULT_HOST),
        port=_value(raw, "port", int, DEFAULT_PORT),
        region=_value(raw, "region", str, DEFAULT_REGION),
        domain=_value(raw, "domain", str, None),
        state_dir=state_dir,
    )


def save(path: Path, config: GatewayConfig) -> Path:
    """Write `config` (0600): host, port, region, domain and every credential pair."""
    # json.dumps gives a valid TOML basic string for any text (same escapes).
    lines = [
        "# metadisk S3 gateway. Keep it private: each grant holds encryption keys.",
        f"host = {json.dumps(config.host)}",
        f"port = {config.port}",
        f"region = {json.dumps(config.region)}",
    ]
    if config.domain:
        lines.append(f"domain = {json.dumps(config.domain)}")
    for credential in config.credentials:
        lines += [
            "",
            "[[credentials]]",
            f"access_key = {json.dumps(credential.access_key)}",
            f"secret_key = {json.dumps(credential.secret_key)}",
            f"grant = {json.dumps(credential.grant)}",
        ]
    return files.write_private(path, "\n".join(lines) + "\n")


def with_credential(config: GatewayConfig, credential: Credential) -> GatewayConfig:
    """`config` with `credential` added."""
    return replace(config, credentials=(*config.credentials, credential))


def _entries(raw: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    entries = raw.get("credentials", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("credentials is a list of tables ([[credentials]])")
    return entries


def _credential(entry: Mapping[str, Any]) -> Credential:
    values = []
    for name in ("access_key", "secret_key", "grant"):
        value = entry.get(name)
        if not isinstance(value, str):
            raise ConfigError(f"each [[credentials]] needs {name} (text)")
        values.append(value)
    return Credential(*values)


def _value(raw: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = raw.get(key, default)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ConfigError(f"{key} must be {kind.__name__}")
    return value
