"""The farmer's configuration: frozen dataclasses plus pure conversions to and from TOML text.

Only the CLI reads and writes the file (``farmer.toml`` in the data dir); everything else gets a
`FarmerConfig`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.errors import DecodeError
from metadisk.core.identity import NodeId
from metadisk.farmer.errors import SetupError

CONFIG_FILE = "farmer.toml"
# Bytes of the filesystem kept free whatever the allocation says.
DISK_RESERVE = 64 << 20
IDENTITY_FILE = "identity.key"
LISTEN_FILE = "listen.json"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in a size like ``"500MB"`` (powers of 1000) or ``"2GiB"`` (powers of 1024).

    >>> parse_size("2GiB")
    2147483648
    """
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 500MB or 2GiB)")
    # Decimal, not float: "1.1GB" must be exactly 1_100_000_000 bytes
    return int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    """A human size in binary units, e.g. ``"1.5 GiB"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_url(url: str) -> str:
    """Return `url` without a trailing slash if it is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


_POSITIVE = (
    "checkin_interval",
    "checkin_timeout",
    "trash_interval",
    "expiry_interval",
    "usage_flush_interval",
    "header_timeout",
    "body_idle_timeout",
    "request_timeout",
)
# Integer limits of the data plane's HTTP: each must be at least 1.
_COUNTS = ("max_header_size", "max_headers", "max_puts_per_address")


@dataclass(frozen=True, slots=True)
class TrustedBridge:
    """A bridge whose order limits this farmer honours."""

    node_id: NodeId
    public_key: bytes
    url: str

    def __post_init__(self) -> None:
        if NodeId.from_public_key(self.public_key) != self.node_id:
            raise ValueError(f"public key does not belong to bridge {self.node_id.hex()}")
        object.__setattr__(self, "url", check_url(self.url))


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The operator's web dashboard (``[dashboard]``): its own listener, loopback only, so the
    public data plane never serves it; reach it from elsewhere through an SSH tunnel."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free one, announced in listen.json

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"dashboard host must be a loopback IP address, not {self.host!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"dashboard port {self.port} out of range")


@dataclass(frozen=True, slots=True)
class FarmerConfig:
    """Everything a farmer needs to run; durations are seconds."""

    data_dir: Path
    allocated: int
    bridges: tuple[TrustedBridge, ...]
    host: str = "127.0.0.1"
    port: int = 0
    public_address: str | None = None  # default: https://host:bound-port (http:// without tls)
    checkin_interval: float = 600.0
    checkin_timeout: float = 10.0
    trash_grace: float = 7 * 24 * 3600.0
    trash_interval: float = 3600.0
    expiry_interval: float = 3600.0
    usage_flush_interval: float = 30.0
    # write large pieces with O_DIRECT: less CPU, but on disks that serve O_DIRECT writes slowly
    # (this project's VMs: ~400 against ~700 MiB/s buffered) less throughput; docs/farmer.md
    direct_io: bool = False
    # Serve the data plane over TLS with a certificate of the node's own key, so that clients
    # and bridges can check they reached this node (docs/security.md). Off only on a loopback
    # network (`metadisk up`): a bridge refuses plain-HTTP farmers elsewhere.
    tls: bool = True
    # Bounds of the data plane (docs/farmer.md, "Bounded resources"): silence is cut, not size.
    # A connection must finish a request's headers within `header_timeout` of opening or of its
    # last answer (more than the 15 s aiohttp clients keep an idle pooled connection, so a
    # client never reuses one the farmer is closing); a body may not go silent for
    # `body_idle_timeout` (the client's own stall timeout is 5 s); `request_timeout` bounds a
    # whole request (64 MiB in 30 min is 37 KiB/s).
    header_timeout: float = 20.0
    body_idle_timeout: float = 30.0
    request_timeout: float = 1800.0
    max_header_size: int = 8190  # bytes of the request line, and of each header
    max_headers: int = 64
    # PUTs in flight from one remote address; more get 503 too-many-uploads
    max_puts_per_address: int = 64
    dashboard: DashboardConfig = DashboardConfig()

    def __post_init__(self) -> None:
        if self.allocated <= 0:
            raise ValueError("the allocation must be positive")
        if not self.bridges:
            raise ValueError("at least one trusted bridge is needed")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} out of range")
        if self.public_address is not None:
            object.__setattr__(self, "public_address", check_url(self.public_address))
            scheme = "https" if self.tls else "http"
            if urlsplit(self.public_address).scheme != scheme:
                raise ValueError(f"public_address must be {scheme}:// when tls is {self.tls}")
        for name in _NUMBERS:
            # TOML allows nan and inf; both pass `<= 0` checks and then stop chores for good.
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.trash_grace < 0:
            raise ValueError("trash_grace must not be negative")
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1")
        if self.max_header_size < _MIN_HEADER_SIZE:
            # an order limit header is ~370 characters; below this, every request would fail
            raise ValueError(f"max_header_size must be at least {_MIN_HEADER_SIZE}")

    @property
    def identity_path(self) -> Path:
        return self.data_dir / IDENTITY_FILE

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    def trusted_bridges(self) -> dict[NodeId, bytes]:
        """The map `check_order_limit` takes: bridge id to public key."""
        return {bridge.node_id: bridge.public_key for bridge in self.bridges}


_NUMBERS = (
    "checkin_interval",
    "checkin_timeout",
    "trash_grace",
    "trash_interval",
    "expiry_interval",
    "usage_flush_interval",
    "header_timeout",
    "body_idle_timeout",
    "request_timeout",
)
_MIN_HEADER_SIZE = 1024


_BOOLS = ("direct_io", "tls")


def config_to_toml(config: FarmerConfig) -> str:
    """The config file's text (the data dir is where the file lives, so it is not written)."""

    def s(value: str) -> str:  # a JSON string with ASCII escapes is a valid TOML basic string
        return json.dumps(value)

    lines = [
        "# metadisk farmer configuration (written by `metadisk farmer setup`).",
        f"allocated = {config.allocated}",
        f"host = {s(config.host)}",
        f"port = {config.port}",
    ]
    if config.public_address is not None:
        lines.append(f"public_address = {s(config.public_address)}")
    lines += [f"{name} = {float(getattr(config, name))!r}" for name in _NUMBERS]
    lines += [f"{name} = {getattr(config, name)}" for name in _COUNTS]
    lines += [f"{name} = {'true' if getattr(config, name) else 'false'}" for name in _BOOLS]
    dashboard = config.dashboard
    lines += [
        "",
        "[dashboard]",
        f"enabled = {'true' if dashboard.enabled else 'false'}",
        f"host = {s(dashboard.host)}",
        f"port = {dashboard.port}",
    ]
    for bridge in config.bridges:
        lines += [
            "",
            "[[bridges]]",
            f"node_id = {s(bridge.node_id.hex())}",
            f"public_key = {s(b64encode(bridge.public_key))}",
            f"url = {s(bridge.url)}",
        ]
    return "\n".join(lines) + "\n"


def config_from_toml(text: str, data_dir: Path) -> FarmerConfig:
    """Parse the config file; every problem is a `SetupError` naming the bad field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"{CONFIG_FILE} is not valid TOML: {exc}", code="config") from exc
    try:
        bridges = tuple(_bridge(item) for item in raw.pop("bridges", []))
        allocated = raw.pop("allocated")
        if isinstance(allocated, str):
            allocated = parse_size(allocated)
        kwargs: dict[str, Any] = {}
        for name in ("host", "public_address"):
            if name in raw:
                kwargs[name] = _typed(raw.pop(name), str, name)
        if "port" in raw:
            kwargs["port"] = _typed(raw.pop("port"), int, "port")
        for name in _BOOLS:
            if name in raw:
                value = raw.pop(name)
                if not isinstance(value, bool):
                    raise TypeError(f"{name} must be true or false")
                kwargs[name] = value
        for name in _NUMBERS:
            if name in raw:
                kwargs[name] = float(_typed(raw.pop(name), int | float, name))
        for name in _COUNTS:
            if name in raw:
                kwargs[name] = _typed(raw.pop(name), int, name)
        if "dashboard" in raw:
            kwargs["dashboard"] = _dashboard(raw.pop("dashboard"))
        if raw:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(raw))}")
        return FarmerConfig(
            data_dir=data_dir,
            allocated=_typed(allocated, int, "allocated"),
            bridges=bridges,
            **kwargs,
        )
    except KeyError as exc:
        raise SetupError(f"{CONFIG_FILE}: missing setting {exc}", code="config") from exc
    except (ValueError, TypeError, DecodeError) as exc:
        raise SetupError(f"{CONFIG_FILE}: {exc}", code="config") from exc


def _typed(value: Any, kind: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} has the wrong type")
    return value


def _dashboard(item: Any) -> DashboardConfig:
    if not isinstance(item, dict):
        raise TypeError("[dashboard] must be a table")
    item = dict(item)
    kwargs: dict[str, Any] = {}
    if "enabled" in item:
        kwargs["enabled"] = item.pop("enabled")
        if not isinstance(kwargs["enabled"], bool):
            raise TypeError("dashboard enabled must be true or false")
    if "host" in item:
        kwargs["host"] = _typed(item.pop("host"), str, "dashboard host")
    if "port" in item:
        kwargs["port"] = _typed(item.pop("port"), int, "dashboard port")
    if item:
        raise ValueError(f"unknown dashboard setting(s): {', '.join(sorted(item))}")
    return DashboardConfig(**kwargs)


def _bridge(item: Any) -> TrustedBridge:
    if not isinstance(item, dict):
        raise TypeError("each [[bridges]] entry must be a table")
    return TrustedBridge(
        node_id=NodeId.from_hex(_typed(item["node_id"], str, "bridge node_id")),
        public_key=b64decode(_typed(item["public_key"], str, "bridge public_key")),
        url=_typed(item["url"], str, "bridge url"),
    )
