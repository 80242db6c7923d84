"""The bridge's configuration: one frozen dataclass per service, composed in `BridgeConfig`.

Only the CLI reads files and environment variables (`metadisk.cli.bridge`); everything here is
plain data with defaults fit for a local network on one machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from metadisk.core.content import TAG_SIZE
from metadisk.core.erasure import GLOBAL, LOCAL, RedundancyScheme
from metadisk.core.reputation import ReputationConfig

# What one bridge process runs: the JSON API, the chores (a worker), or both (`bridge run`).
Role = Literal["api", "worker", "both"]

# Ciphertext bytes an object may carry in the bridge's database: 4 KiB of plaintext plus the one
# 16-byte AES-GCM tag its single block gets (the content key travels in the sealed metadata, not
# here). Counted so that a 4 KiB object fits: a limit of 4,096 ciphertext bytes sent every 4 KiB
# object to farmers (ten piece uploads) for want of 16 bytes. docs/bridge.md, "Small objects".
MAX_INLINE_PLAINTEXT = 4096
MAX_INLINE_SIZE = MAX_INLINE_PLAINTEXT + TAG_SIZE


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-project ceilings; a value of 0 means no use at all is allowed."""

    buckets: int = 100
    storage_bytes: int = 1 << 40  # encrypted bytes of committed objects
    egress_bytes: int = 1 << 40  # encrypted bytes handed out for download, per calendar month
    segments: int = 10_000_000


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the state lives: a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``)."""

    url: str
    pool_size: int = 8  # PostgreSQL only; SQLite connections are cheap and per thread
    sqlite_synchronous: str = "NORMAL"  # WAL + NORMAL: durable across process crashes
    # The key-encryption key API key secrets are wrapped under (metadisk.bridge.auth.kek): 64
    # hex digits, best given as METADISK_BRIDGE_DATABASE_KEK to keep it off disk. Empty: read
    # `kek_file`, made on the first start. Every process of one database needs the same KEK.
    kek: str = field(default="", repr=False)
    kek_file: str = ""  # empty: <data_dir>/api-keys.kek

    def __post_init__(self) -> None:
        if self.kek and not re.fullmatch(r"[0-9a-fA-F]{64}", self.kek.strip()):
            # Never the value itself in the message: it is a secret, typo or not.
            raise ValueError(
                "[database] kek must be 64 hex digits (32 random bytes: `openssl rand -hex 32`)"
            )


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port; the bound one is written to <data_dir>/bridge.url
    workers: int = 1  # processes sharing the socket; all state is in the database
    access_log: bool = False  # one line per request (at level info), by route template
    # ``/metrics`` answers loopback peers; others need ``Authorization: Bearer <this>`` (empty:
    # loopback only). The scrape shows counts and timings, not secrets, but it is no one's else.
    metrics_token: str = ""
    # The operators' routes (``/v1/admin/...``) answer ``Authorization: Bearer <this>``; empty:
    # they are off. Use a long random value: it reads every node's standing.
    admin_token: str = ""
    # HTTPS: PEM files of the certificate (chain) and its private key. Empty: plain HTTP, for a
    # loopback network or behind a reverse proxy that terminates TLS (docs/security.md).
    tls_cert: str = ""
    tls_key: str = ""
    # The HTTP edge (bridge/edge.py, bridge/connections.py): what one caller can make a process
    # hold or spend before any credential is checked.
    max_connections: int = 1000  # open connections per API process; more get 503 busy
    max_header_bytes: int = 32 << 10  # request line and headers (a restricted API key: ~1 KiB)
    # JSON bodies. The largest legitimate ones: an exit batch of 1,000 receipts (~400 KiB), a
    # segment commit of 255 receipts (~80 KiB), an inline object (~11 KiB of base64).
    max_body_bytes: int = 1 << 20
    # Move and copy carry every segment's metadata: ~150 bytes a segment, so 16 MiB is ~100,000
    # segments (6 TiB at 64 MiB segments). An object's commit may list its segments (parts):
    # at most 11 bytes an index, so every one of MAX_SEGMENTS fits.
    max_relocation_body_bytes: int = 16 << 20
    header_timeout: float = 10.0  # seconds from a request's first byte to the end of its headers
    body_idle_timeout: float = 15.0  # seconds a body may stall between two reads
    body_timeout: float = 60.0  # seconds a whole body may take
    # Token buckets (bridge/ratelimit.py): `*_rate` tokens a second refill a bucket of `*_burst`;
    # a rate of 0 means no limit. They live in each API process's memory: N processes behind one
    # address let N times through. Addresses are the TCP peer's (no forwarded-for is trusted).
    login_rate: float = 1.0  # every login, per address
    login_burst: int = 30
    login_failure_rate: float = 1 / 30  # failed logins, per email and per address
    login_failure_burst: int = 10
    account_rate: float = 1 / 60  # account creations, per address
    account_burst: int = 10
    checkin_rate: float = 1 / 30  # check-ins per node id (farmers check in every 10 min)
    checkin_burst: int = 10
    checkin_address_rate: float = 2.0  # check-ins per address (many nodes may share a host)
    checkin_address_burst: int = 200
    # Begin object and begin segment, each, per API key id. Above what one client does (the
    # small objects of bench/e2e.py, 16 at a time, begin ~50 of each a second on one key);
    # what a key may hold open is capped by [objects] max_pending_* in any case.
    begin_rate: float = 100.0
    begin_burst: int = 1000

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("[server] tls_cert and tls_key go together: set both or neither")
        _check_server(self)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    """Users, sessions, projects and their default limits."""

    session_ttl: int = 3600  # seconds a login token stays valid
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1
    default_limits: Limits = field(default_factory=Limits)  # also the maximum a project may ask
    # Seconds a process reuses what it read of an API key; revocations reach other processes
    # within this time (the process that revokes forgets at once). 0: read on every request.
    key_cache_ttl: float = 2.0
    # Password hashing (register, login) runs on `hash_threads` threads with at most
    # `hash_queue` calls waiting; beyond that a request gets 503 busy rather than a thread.
    hash_threads: int = 2
    hash_queue: int = 32

    def __post_init__(self) -> None:
        if self.hash_threads < 1 or self.hash_queue < 0:
            raise ValueError("[accounts] need hash_threads >= 1 and hash_queue >= 0")


@dataclass(frozen=True, slots=True)
class NodesConfig:
    """The node directory: who may check in and who is selected for pieces."""

    # Proof-of-work bits a node id needs: about 2**18 key generations, 9 s on average on one
    # core of the machine it was measured on (docs/bridge.md), paid once per identity. Networks
    # on one host or a LAN (devnet, tests) set 0.
    difficulty: int = 18
    single_host: bool = False  # a network on one machine: disables the one-piece-per-/24 rule
    # Accept farmers whose address resolves to loopback, private, link-local or other non-global
    # IPs (a network on one host or a LAN). Off, such check-ins are refused before any ping-back:
    # anyone may check in, and the bridge must not probe its own host or network on their behalf.
    private_addresses: bool = False
    # Accept farmers that serve plain HTTP on an address that is not loopback. Off, such a
    # check-in is refused: a farmer's TLS certificate is what lets clients know they reached it.
    plain_http: bool = False
    online_window: int = 3600  # seconds since a successful ping-back during which a node is online
    contact_skew: int = 600  # seconds a check-in's timestamp may differ from the bridge's clock
    ping_timeout: float = 5.0
    # Pieces an unvetted node may hold (the bridge's count of its committed pieces) before it
    # gets no more until audits vet it: a node's claimed space is only its word, and vetting is
    # how it shows that it stores what it was given. Checking costs a walk of up to this many
    # index entries per unvetted node sampled (docs/bridge.md). 0: no limit.
    unvetted_pieces: int = 250

    def __post_init__(self) -> None:
        if not 0 <= self.difficulty <= 32:
            raise ValueError("[nodes] difficulty must be between 0 and 32 bits")
        if self.unvetted_pieces < 0:
            raise ValueError("[nodes] unvetted_pieces cannot be negative (0: no limit)")
        if not self.ping_timeout > 0 or self.online_window < 1 or self.contact_skew < 0:
            raise ValueError(
                "[nodes] needs ping_timeout above 0, online_window >= 1 and contact_skew >= 0"
            )


@dataclass(frozen=True, slots=True)
class ObjectsConfig:
    """Buckets, objects, segments and the order limits handed out for them."""

    profiles: dict[str, RedundancyScheme] = field(
        default_factory=lambda: {"local": LOCAL, "global": GLOBAL}
    )
    default_profile: str = "local"
    order_ttl: int = 3600  # seconds an order limit is valid
    upload_ttl: int = 24 * 3600  # seconds an upload may stay uncommitted before it is reclaimed
    download_spares: int = 2  # order limits beyond k handed out for a download
    max_segment_size: int = 80 << 20  # encrypted bytes of one segment (64 MiB plaintext + slack)
    # Per project: uploads begun and not yet committed, aborted or reclaimed, and PUT order
    # limits handed out for segments not yet committed. Each pending upload is a row and each
    # order limit a piece a farmer may be asked to take, so neither may grow without bound;
    # a client keeps a few segments of each upload in flight (n limits each, plus replacements).
    max_pending_uploads: int = 1000
    max_pending_orders: int = 20_000

    def __post_init__(self) -> None:
        if self.default_profile not in self.profiles:
            raise ValueError(f"default profile {self.default_profile!r} is not configured")
        if self.max_pending_uploads < 1:
            raise ValueError("[objects] max_pending_uploads must be at least 1")
        widest = max(scheme.n for scheme in self.profiles.values())
        if self.max_pending_orders < widest:
            raise ValueError(
                f"[objects] max_pending_orders must be at least {widest}, the widest profile's n "
                "(one segment's order limits)"
            )


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """A bridge worker process (`metadisk bridge worker`): where it serves ``/metrics``."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, announced on start


@dataclass(frozen=True, slots=True)
class ChoresConfig:
    """Background loops, run by bridge workers (any number); the database shares the work."""

    reclaim_interval: float = 60.0
    delete_interval: float = 10.0
    delete_batch: int = 100
    delete_max_attempts: int = 10  # after that, garbage collection by filters takes over
    delete_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Audits, uptime checks, reputation, vetting and performance (``[health]``).

    Each node is audited every `node_audit_interval` and checked every `node_check_interval`
    seconds, whatever it stores; the chores wake every `audit_interval` / `check_interval` to
    do what is due. Reputation arithmetic: `metadisk.core.reputation`.
    """

    audit_interval: float = 30.0
    node_audit_interval: float = 600.0
    audits_per_cycle: int = 200  # nodes audited in one cycle at most
    audit_concurrency: int = 16
    audit_timeout: float = 10.0  # no answer by then: the node is contained, not failed
    reverify_after: float = 60.0  # seconds before a contained audit is asked again
    max_reverifications: int = 3  # unanswered audits of one piece that count as a failure
    check_interval: float = 10.0
    node_check_interval: float = 120.0
    checks_per_cycle: int = 500
    check_timeout: float = 5.0
    vetting_audits: int = 10  # passed audits that make a node vetted
    new_node_share: float = 0.05  # of each selection, the share for unvetted nodes
    performance_decay: float = 0.9  # per reported transfer, the weight the past keeps
    forget: float = 0.99
    weight: float = 1.0
    disqualify_below: float = 0.96
    suspend_below: float = 0.6

    def __post_init__(self) -> None:
        self.reputation  # noqa: B018 - checks the reputation fields
        if not 0 <= self.new_node_share <= 1 or not 0 <= self.performance_decay < 1:
            raise ValueError("need 0 <= new_node_share <= 1 and 0 <= performance_decay < 1")
        if self.max_reverifications < 1 or self.vetting_audits < 0:
            raise ValueError("need max_reverifications >= 1 and vetting_audits >= 0")
        positive = (
            "audit_interval", "node_audit_interval", "audit_timeout", "check_interval",
            "node_check_interval", "check_timeout",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"[health] {name} must be above 0")
        if self.reverify_after < 0 or self.audits_per_cycle < 1 or self.checks_per_cycle < 1:
            raise ValueError("need reverify_after >= 0 and at least 1 audit and check per cycle")
        if self.audit_concurrency < 1:
            raise ValueError("[health] audit_concurrency must be at least 1")

    @property
    def reputation(self) -> ReputationConfig:
        return ReputationConfig(
            forget=self.forget,
            weight=self.weight,
            disqualify_below=self.disqualify_below,
            suspend_below=self.suspend_below,
        )


@dataclass(frozen=True, slots=True)
class RepairConfig:
    """Repair, garbage collection and graceful exit (``[repair]``).

    The checker walks every piece set each `check_interval` and queues those whose healthy
    pieces are at or below their repair threshold; the repairer wakes every `repair_interval`
    to rebuild what is queued, `concurrency` sets at once, moving at most `bandwidth` bytes a
    second (0: no limit). Each node is sent a filter of the pieces it keeps every
    `node_gc_interval`; pieces stored before the filter's time less `gc_clock_skew` (the farmer's
    clock may be behind ours) and not in it go to the farmer's trash. A graceful exit that makes
    no progress for `exit_timeout` fails, and repair takes over.
    """

    check_interval: float = 60.0
    repair_interval: float = 10.0
    concurrency: int = 2
    bandwidth: int = 0
    max_attempts: int = 5  # failed repairs of one set before it waits for the next check
    download_spares: int = 2  # pieces asked beyond k, so a slow or bad farmer costs no retry
    upload_spares: int = 2  # nodes sent a rebuilt piece beyond those needed (long tail)
    gc_interval: float = 30.0
    node_gc_interval: float = 24 * 3600.0
    gc_false_positive_rate: float = 0.1
    gc_clock_skew: int = 300  # metadisk.core.messages.CLOCK_SKEW: what order limits tolerate
    exit_batch: int = 50  # transfers handed to an exiting node per request
    exit_timeout: float = 3600.0

    def __post_init__(self) -> None:
        positive = ("check_interval", "repair_interval", "gc_interval", "node_gc_interval",
                    "exit_timeout")  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"[repair] {name} must be above 0")
        counts = ("concurrency", "max_attempts", "exit_batch")
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"[repair] {name} must be at least 1")
        if min(self.bandwidth, self.download_spares, self.upload_spares, self.gc_clock_skew) < 0:
            raise ValueError("[repair] bandwidth, spares and gc_clock_skew cannot be negative")
        if not 0 < self.gc_false_positive_rate < 1:
            raise ValueError("[repair] gc_false_positive_rate must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Everything one bridge process needs."""

    data_dir: Path
    database: DatabaseConfig
    server: ServerConfig = field(default_factory=ServerConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    nodes: NodesConfig = field(default_factory=NodesConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    chores: ChoresConfig = field(default_factory=ChoresConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object a line

    @property
    def identity_path(self) -> Path:
        return self.data_dir / "identity.seed"

    @property
    def url_path(self) -> Path:
        return self.data_dir / "bridge.url"


def sqlite_url(data_dir: Path) -> str:
    """The default database: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / 'bridge.sqlite3').resolve()}"


def _check_server(server: ServerConfig) -> None:
    """The [server] edge knobs, each with the rule it broke."""
    for name in ("max_connections", "max_header_bytes", "max_body_bytes",
                 "max_relocation_body_bytes"):  # fmt: skip
        if getattr(server, name) < 1:
            raise ValueError(f"[server] {name} must be at least 1")
    for name in ("header_timeout", "body_idle_timeout", "body_timeout"):
        if not getattr(server, name) > 0:
            raise ValueError(f"[server] {name} must be above 0")
    for what in ("login", "login_failure", "account", "checkin", "checkin_address", "begin"):
        if getattr(server, f"{what}_rate") < 0:
            raise ValueError(f"[server] {what}_rate cannot be negative (0: no limit)")
        if getattr(server, f"{what}_burst") < 1:
            raise ValueError(f"[server] {what}_burst must be at least 1")
