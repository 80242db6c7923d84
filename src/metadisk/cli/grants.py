"""Narrowing access grants and describing them, for `metadisk share` and `metadisk access`.

Everything here is offline: restricting a grant adds a caveat to its API key (the bridge checks
it) and drops the encryption keys the recipient must not have; describing one decodes it. A
description never shows a secret: not the API key's tail, not a root or path key.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass

from metadisk.cli.errors import UsageError
from metadisk.cli.remote import RemotePath
from metadisk.core.errors import AccessError
from metadisk.core.grant import AccessGrant, SharePrefix
from metadisk.core.macaroon import Caveat, Op

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``90s``, ``30m``, ``24h``, ``7d``, ``2w`` or ``1h30m``."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise UsageError(f"not a duration: {text!r} (try 30m, 24h or 7d)")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(compact))
    if seconds <= 0:
        raise UsageError(f"a duration must be more than 0 seconds: {text!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Allowed:
    """Operations a restricted grant keeps."""

    read: bool = True
    listing: bool = True
    write: bool = False
    delete: bool = False

    @classmethod
    def from_flags(cls, *, readonly: bool, write: bool) -> Allowed:
        """``--readonly`` (the default): read and list; ``--write``: also upload and delete.

        Writing includes deleting because replacing an existing object deletes the old one.
        """
        if readonly and write:
            raise UsageError("--readonly and --write exclude each other")
        return cls(write=write, delete=write)

    def names(self) -> list[str]:
        pairs = (
            ("read", self.read),
            ("list", self.listing),
            ("write", self.write),
            ("delete", self.delete),
        )
        return [name for name, on in pairs if on]


def restrict(
    grant: AccessGrant,
    folders: Sequence[RemotePath],
    allowed: Allowed,
    *,
    not_before: int | None = None,
    not_after: int | None = None,
) -> AccessGrant:
    """A grant for `folders` only (all of `grant`'s reach if empty), `allowed` ops and times.

    With folders, the encryption keys shrink to those folders' keys; without, the keys stay and
    only the API key is narrowed.
    """
    if not_before is not None and not_after is not None and not_after < not_before:
        raise UsageError("the grant would expire before it becomes valid")
    if folders:
        prefixes = [SharePrefix(f.bucket, f.folder) for f in folders]
        try:
            return grant.share(
                prefixes,
                read=allowed.read,
                write=allowed.write,
                list=allowed.listing,
                delete=allowed.delete,
                not_before=not_before,
                not_after=not_after,
            )
        except AccessError as exc:
            raise UsageError(str(exc)) from exc
    caveat = Caveat(
        disallow_reads=not allowed.read,
        disallow_writes=not allowed.write,
        disallow_lists=not allowed.listing,
        disallow_deletes=not allowed.delete,
        not_before=not_before,
        not_after=not_after,
    )
    return AccessGrant(grant.bridge_url, grant.api_key.restrict(caveat), grant.encryption)


def describe(grant: AccessGrant) -> list[tuple[str, str]]:
    """(label, value) lines about a grant, secrets left out."""
    key = grant.api_key
    lines = [
        ("bridge", grant.bridge_url),
        ("api key id", key.key_id.hex()),
        ("caveats", str(len(key.caveats))),
        ("allows", ", ".join(op.value for op in Op if key.allows_op(op)) or "nothing"),
        ("not before", describe_time(key.not_before)),
        ("expires", describe_time(key.expires_at)),
    ]
    names = {(pk.bucket, pk.encrypted_path): pk.path for pk in grant.encryption.path_keys}
    for number, caveat in enumerate(key.caveats, 1):
        lines.append((f"caveat {number}", _caveat(caveat, names)))
    if grant.encryption.root_key is not None:
        lines.append(("encryption", "root key (every bucket and path)"))
    for pk in grant.encryption.path_keys:
        where = f"md://{pk.bucket}/{pk.path}/" if pk.path else f"md://{pk.bucket}"
        lines.append(("encryption", f"key for {where}"))
    if grant.encryption.root_key is None and not grant.encryption.path_keys:
        lines.append(("encryption", "no keys (can list encrypted names only)"))
    return lines


def _caveat(caveat: Caveat, names: dict[tuple[str, str], str]) -> str:
    parts = []
    denied = [op.value for op in Op if caveat.disallows(op)]
    if denied:
        parts.append("no " + "/".join(denied))
    if caveat.allowed_paths:
        shown = []
        for allowed in caveat.allowed_paths:
            encrypted = allowed.encrypted_prefix.rstrip("/")
            plain = names.get((allowed.bucket, encrypted))
            if not encrypted:
                shown.append(f"md://{allowed.bucket}")
            elif plain is not None:
                shown.append(f"md://{allowed.bucket}/{plain}/")
            else:  # a prefix whose key this grant does not carry: only its encrypted form
                shown.append(f"md://{allowed.bucket}/<encrypted {encrypted[:16]}...>")
        parts.append("only " + ", ".join(shown))
    if caveat.not_before is not None:
        parts.append(f"from {describe_time(caveat.not_before)}")
    if caveat.not_after is not None:
        parts.append(f"until {describe_time(caveat.not_after)}")
    return "; ".join(parts) or "no restriction"


def describe_time(moment: int | None) -> str:
    """A unix time as UTC text; "-" for none."""
    if moment is None:
        return "-"
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
