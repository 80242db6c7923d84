"""The node directory: check-ins verified and pinged back, and selection of nodes for pieces.

Check-in checks, in order, each a named failure: ``malformed``, ``bad-signature``,
``insufficient-difficulty``, ``clock-skew``, ``invalid-capacity``, ``invalid-address``,
``stale-contact``. A check-in that passes them is stored; the node counts as online only if the
ping-back to its address answers with its own node id. Why a ping-back failed is kept as one code
of `PING_FAILURES`.

Capacities are checked before anything is stored: ``0 <= free <= allocated <= MAX_CAPACITY``, the
largest value the database's signed 64-bit columns hold (a larger one used to fail the insert,
answering 500 with a traceback in the log for every such check-in).

Ping-backs are no port scanner. Anyone may check in with any address, so what a ping-back found
must not tell an open port from a closed or filtered one: the node status shows the failure code
only to an operator (the admin token) and, coarsened to `NODE_VISIBLE_FAILURES`, to the node
itself (a signed `NodeQuery`: whoever made an identity could otherwise point it at any host and
read the detail); and a check-in whose ping-back failed is answered no sooner than
`ping_timeout` after the ping began, so its timing says nothing either (a refused connection
answers at once, a filtered port only at the timeout). Only a success is quick, and only the node
itself can make one.

Anyone can check in, and the ping-back is a GET to whatever address the contact names. So unless
`private_addresses` (a network on one host or a LAN), an address whose host resolves to any
non-global IP (loopback, private, link-local such as a cloud metadata service, multicast, ...) is
refused as ``invalid-address`` before anything is sent: the bridge must not probe its own host or
network for strangers.

Selection: online (found by a check within `online_window`, and not found offline since), not
disqualified, suspended or contained (`metadisk.bridge.health`), enough free space, at most one
piece of a segment per /24 network (IPv6: /64) unless `single_host`, and, until audits vet it,
fewer than `unvetted_pieces` pieces. The space a node claims is only a threshold, never a weight,
and it is the node's word: one claiming 2**63 bytes stays eligible when honest nodes fill up, so
without that last rule it took every piece they could not, with nothing shown of storing them.
Among those, a weighted random draw without replacement: each node's weight comes from the
transfers clients reported (`metadisk.core.reputation.selection_weight`, never below a floor, so
every healthy node keeps getting work). About `new_node_share` of the pieces go to unvetted
nodes, so that they get pieces to be audited on; the rest to vetted ones, and unvetted ones fill
in when vetted ones run short (a new network has only unvetted nodes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from metadisk.bridge import errors
from metadisk.bridge.common import verified_query
from metadisk.bridge.config import HealthConfig, NodesConfig
from metadisk.bridge.overlay.db import Candidate, NodeRecord, OverlayDB
from metadisk.bridge.overlay.pinger import Pinger, PingFailed
from metadisk.core.encoding import b64decode
from metadisk.core.errors import CoreError, SignatureError
from metadisk.core.identity import NodeId
from metadisk.core.messages import NodeContact
from metadisk.core.reputation import new_node_count, sample_key, selection_weight
from metadisk.wire.api.nodes import PING_FAILURES, STANDING_PURPOSE, PingFailure

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CHECKIN_FAILURES = (
    "malformed",
    "bad-signature",
    "insufficient-difficulty",
    "clock-skew",
    "invalid-capacity",
    "invalid-address",
    "stale-contact",
)

MAX_CAPACITY = (1 << 63) - 1  # the nodes table's BIGINT columns are signed

# Who reads a node's status: anyone, the node itself (signed NodeQuery), or an operator.
Reader = Literal["anyone", "node", "admin"]
# The authorization scheme of a node reading its own status: ``Node <base64url NodeQuery>``.
NODE_SCHEME = "node"
MAX_QUERY_TEXT = 512

# What the node itself may learn of a failed ping-back: whether its host resolved and whether its
# own node answered, nothing that tells an open port from a closed one (module docstring).
NODE_VISIBLE_FAILURES: dict[PingFailure, PingFailure] = {
    "unreachable": "unreachable",
    "timeout": "unreachable",
    "http-error": "unreachable",
    "bad-answer": "unreachable",
    "wrong-node": "wrong-node",
    "unresolvable": "unresolvable",
}


@dataclass(frozen=True, slots=True)
class CheckinResult:
    node_id: NodeId
    online: bool
    reason: PingFailure | None  # why the node is not online


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node's status: where it is and whether it counts as online, and for the node itself
    and operators why the last ping-back failed."""

    node_id: NodeId
    address: str
    online: bool  # pinged back within the online window, and not disqualified
    last_seen: int  # its last accepted check-in (unix time)
    # The last ping-back that found it: no port-scan oracle, only the node can answer as itself.
    last_ping_ok: int | None
    last_ping_error: PingFailure | None  # why the last ping-back failed; None for anyone else


class OverlayService:
    def __init__(
        self,
        db: OverlayDB,
        config: NodesConfig,
        pinger: Pinger,
        health: HealthConfig | None = None,
        *,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._db = db
        self._config = config
        self._ping = pinger
        self._health = health or HealthConfig()
        self._rng = rng or random.Random()  # not secret: who stores what is no secret either
        self._bridge_id: NodeId | None = None  # see admit_readers
        self._check_admin: Callable[[str], None] | None = None
        self._monotonic = monotonic
        self._sleep = sleep

    async def checkin(self, encoded_contact: bytes, now: int) -> CheckinResult:
        """Verify a farmer's signed contact (its encoding), ping it back, and record it."""
        contact = self._verify(encoded_contact, now)
        host = _check_address(contact.address)
        node_id = contact.node_id
        detail = ""
        try:
            async with asyncio.timeout(self._config.ping_timeout):
                addresses = await resolve(host)
        except (OSError, ValueError) as exc:  # TimeoutError is an OSError
            addresses = []
            detail = f"{type(exc).__name__}: {exc}"
        if not self._config.private_addresses and not all(map(is_public, addresses)):
            # Debug, not info: anyone can send these, as often as they like.
            resolved = ", ".join(map(str, addresses))
            log.debug("refused check-in of %s: %r resolves to %s", node_id, host, resolved)
            raise errors.NodeRejected(
                "the address resolves to a loopback, private, link-local or other non-public IP, "
                "which this bridge does not reach out to (see its [nodes] private_addresses)",
                code="invalid-address",
            )
        if (
            urlsplit(contact.address).scheme == "http"
            and not self._config.plain_http
            and not (addresses and all(ip.is_loopback for ip in addresses))
        ):
            raise errors.NodeRejected(
                "farmers off this host must serve TLS (an https:// address), so that clients "
                "can check who they reach (see the bridge's [nodes] plain_http)",
                code="plain-http",
            )
        existing = await asyncio.to_thread(self._db.node, node_id.raw)
        if existing is not None and existing.contact_timestamp > contact.timestamp:
            raise errors.NodeRejected(
                "an older check-in than the last one accepted", code="stale-contact"
            )
        reason: PingFailure | None = "unresolvable" if not addresses else None
        pinged_at = self._monotonic()
        if addresses:
            try:
                answered = await self._ping(contact.address, self._config.ping_timeout, node_id)
                if answered != node_id.hex():
                    reason, detail = "wrong-node", f"it answers as {answered[:64]!r}"
            except PingFailed as exc:
                reason, detail = exc.code, exc.detail
        if reason is not None:
            log.debug("ping-back of %s at %r: %s (%r)", node_id, contact.address, reason, detail)
        online = reason is None
        record = NodeRecord(
            node_id=node_id.raw,
            public_key=contact.public_key,
            address=contact.address,
            last_net=network_of(addresses[0]) if addresses else "",
            allocated=contact.allocated,
            free=contact.free,
            version=contact.version,
            contact_timestamp=contact.timestamp,
            last_contact_at=now,
            last_ping_ok_at=now if online else None,
            last_ping_error=reason,
            disqualified_at=None,
            created_at=now,
            offline_since=None if online else _offline_since(existing, now),
        )
        await asyncio.to_thread(self._db.save_contact, record)
        if addresses and not online:
            # As late as a timeout would answer: see the module docstring.
            remaining = pinged_at + self._config.ping_timeout - self._monotonic()
            if remaining > 0:
                await self._sleep(remaining)
        return CheckinResult(node_id, online, reason)

    def _verify(self, encoded: bytes, now: int) -> NodeContact:
        try:
            contact = NodeContact.decode(encoded)
        except CoreError as exc:
            raise errors.NodeRejected(f"not a node contact: {exc}", code="malformed") from exc
        try:
            contact.verify_signature()
        except SignatureError as exc:
            raise errors.NodeRejected(
                "contact is not signed by its key", code="bad-signature"
            ) from exc
        difficulty = contact.node_id.difficulty()
        if difficulty < self._config.difficulty:
            raise errors.NodeRejected(
                f"node id has {difficulty} bits of proof of work, this bridge needs "
                f"{self._config.difficulty}",
                code="insufficient-difficulty",
            )
        if abs(now - contact.timestamp) > self._config.contact_skew:
            raise errors.NodeRejected(
                f"contact timestamp is {contact.timestamp - now:+d} s from the bridge's clock",
                code="clock-skew",
            )
        if not 0 <= contact.free <= contact.allocated <= MAX_CAPACITY:
            raise errors.NodeRejected(
                f"capacities must be 0 <= free <= allocated <= {MAX_CAPACITY} bytes",
                code="invalid-capacity",
            )
        return contact

    def select(
        self,
        count: int,
        minimum: int,
        piece_size: int,
        now: int,
        exclude: Collection[bytes] = (),
        exclude_nets: Collection[str] = (),
    ) -> list[Candidate]:
        """Pick up to `count` nodes for new pieces; `not-enough-nodes` if fewer than `minimum`."""
        want = max(count * 8, 128)
        health = self._health
        found = self._db.candidates(
            piece_size,
            now - self._config.online_window,
            exclude,
            want + len(exclude),
        )
        excluded = set(exclude)
        rng = self._rng
        weighted = sorted(
            (c for c in found if c.node_id not in excluded),
            key=lambda c: sample_key(
                selection_weight(c.perf_success, c.perf_latency_ms), 1.0 - rng.random()
            ),
        )
        new = [c for c in weighted if not c.vetted]
        vetted = [c for c in weighted if c.vetted]
        share = new_node_count(count, health.new_node_share, rng.random())
        cap = self._config.unvetted_pieces
        checked: set[bytes] = set()
        while True:
            ordered = new[:share] + vetted + new[share:]
            if not self._config.single_host:
                ordered = distinct_networks(ordered, exclude_nets)
            chosen = ordered[:count]
            # Only the unvetted nodes about to be chosen are counted: a count costs a walk of
            # up to `cap` index entries per node.
            unchecked = [c.node_id for c in chosen if not c.vetted and c.node_id not in checked]
            if cap <= 0 or not unchecked:
                break
            checked.update(unchecked)
            full = self._db.holding(unchecked, cap)
            new = [c for c in new if c.node_id not in full]
        if len(chosen) < minimum:
            raise errors.Unavailable(
                f"only {len(chosen)} eligible nodes, need at least {minimum}",
                code="not-enough-nodes",
            )
        return chosen

    def online_since(self, now: int) -> int:
        return now - self._config.online_window

    def admit_readers(self, bridge_id: NodeId, check_admin: Callable[[str], None]) -> None:
        """Let nodes (signing queries for `bridge_id`) and operators (`check_admin` raises
        unless given the admin token) read why ping-backs failed; until then no one may."""
        self._bridge_id = bridge_id
        self._check_admin = check_admin

    def reader(self, authorization: str, node_id: NodeId, now: int) -> Reader:
        """Who asks for `node_id`'s status, from the request's ``Authorization``: nothing is
        anyone; ``Bearer <admin token>`` an operator; ``Node <base64url NodeQuery>``, signed for
        this bridge with purpose ``standing``, the node itself. A credential that does not hold
        is refused (401/403 with the admin routes' or the standing route's codes, or
        ``other-node``), not read as anyone's."""
        scheme, _, credential = authorization.strip().partition(" ")
        if not scheme:
            return "anyone"
        if scheme.lower() != NODE_SCHEME:
            if self._check_admin is None:
                raise errors.AccessDenied("the admin API is off", code="admin-disabled")
            self._check_admin(authorization)
            return "admin"
        if self._bridge_id is None:
            raise errors.Unauthenticated("nodes cannot sign in here", code="wrong-query")
        text = credential.strip()
        try:
            if len(text) > MAX_QUERY_TEXT:
                raise CoreError("too long")
            encoded = b64decode(text)
        except CoreError as exc:
            raise errors.Unauthenticated(
                f"not a node query signed by its key: {exc}", code="bad-signature"
            ) from exc
        query = verified_query(
            encoded, STANDING_PURPOSE, self._bridge_id, now, self._config.contact_skew
        )
        if query.node_id != node_id:
            raise errors.AccessDenied(
                "a node may read only its own ping-back results", code="other-node"
            )
        return "node"

    async def status(self, node_id: NodeId, now: int, reader: Reader = "anyone") -> NodeStatus:
        """One node's status as `reader` may see it; `NotFound` with code ``node-not-found`` if
        it never checked in."""
        record = await asyncio.to_thread(self._db.node, node_id.raw)
        if record is None:
            raise errors.NotFound(f"no node {node_id.hex()}", code="node-not-found")
        online = (
            record.disqualified_at is None
            and record.offline_since is None
            and record.last_ping_ok_at is not None
            and record.last_ping_ok_at >= self.online_since(now)
        )
        failure = _failure_code(record.last_ping_error)
        if reader == "node" and failure is not None:
            failure = NODE_VISIBLE_FAILURES[failure]
        return NodeStatus(
            node_id,
            record.address,
            online,
            record.last_contact_at,
            record.last_ping_ok_at,
            failure if reader != "anyone" else None,
        )

    def disqualify(self, node_id: NodeId, now: int) -> bool:
        return self._db.disqualify(node_id.raw, now)


def _offline_since(existing: NodeRecord | None, now: int) -> int:
    if existing is not None and existing.offline_since is not None:
        return existing.offline_since
    return now


def distinct_networks(
    candidates: Sequence[Candidate], exclude_nets: Collection[str] = ()
) -> list[Candidate]:
    """Keep the first candidate of each network (random order in, so a random one of each)."""
    seen = set(exclude_nets)
    kept = []
    for candidate in candidates:
        if candidate.last_net in seen:
            continue
        seen.add(candidate.last_net)
        kept.append(candidate)
    return kept


def _check_address(address: str) -> str:
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise errors.NodeRejected(f"invalid address: {exc}", code="invalid-address") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise errors.NodeRejected("the address must be http(s)://host:port", code="invalid-address")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise errors.NodeRejected("the address must be a bare base URL", code="invalid-address")
    return parts.hostname


async def resolve(host: str) -> list[IPAddress]:
    """Every IP `host` stands for (itself, if it is one), in the resolver's order of preference.

    `OSError` (`socket.gaierror`) if it does not resolve; `ValueError` if it is no valid name.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
    return found


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: IPv4 reached through a NAT64 gateway


def is_public(ip: IPAddress) -> bool:
    """Whether `ip` is a globally routable unicast address: one a public bridge may ping.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that IPv4 too:
    ``::ffff:127.0.0.1`` is the bridge's own loopback.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
        if ip.sixtofour is not None and not is_public(ip.sixtofour):
            return False
        if ip.is_site_local:
            return False  # fec0::/10: deprecated (RFC 3879), yet still routed inside some sites
    # is_global alone lets multicast through, and IPv6 reserved space such as ::/8.
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved)


def network_of(ip: IPAddress) -> str:
    """The network an IP is in for the one-piece-per-network rule: /24 for IPv4, /64 for IPv6."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # the same host as its plain IPv4 form, so the same network
    prefix = 24 if ip.version == 4 else 64
    # From the packed bytes: an IPv6 scope (fe80::1%eth0) is no part of a network's address.
    return str(ipaddress.ip_network((ip.packed, prefix), strict=False))


def _failure_code(stored: str | None) -> PingFailure | None:
    if stored is None:
        return None
    for code in PING_FAILURES:
        if stored == code:
            return code
    # Rows written before failures were codes hold an exception's text, which must not be shown;
    # the node's next check-in replaces it.
    return "unreachable"
