"""Checking a root key against the passphrase verifier its project keeps at the bridge.

The bridge keeps `metadisk.core.keys.passphrase_verifier` of each project's root key (none for
projects made before it did). A client that derived a root key from a passphrase compares it
before saving anything, so a mistyped passphrase is refused instead of showing an empty project.
"""

from __future__ import annotations

import enum

from metadisk.client.bridge_api import BridgeAccounts, BridgeAPI
from metadisk.client.errors import ClientError, Conflict
from metadisk.core.keys import passphrase_verifier, verifier_matches
from metadisk.wire.api.accounts import Project

VERIFIER_MISMATCH = "verifier-mismatch"  # the bridge's code when another verifier is stored


class WrongPassphrase(ClientError):
    """The root key does not match the verifier the project keeps: a wrong passphrase."""

    code = "wrong-passphrase"

    def __init__(self) -> None:
        super().__init__("wrong passphrase for this project")


class Checked(enum.Enum):
    """What a check of a root key found."""

    MATCHED = "matched"  # the project's verifier matches
    STORED = "stored"  # the project had none: this root key's verifier is now stored
    UNSET = "unset"  # the project has none and this check could not store one


async def check_with_session(
    accounts: BridgeAccounts, project: Project, root_key: bytes
) -> Checked:
    """Check `root_key` against `project`'s verifier (as fetched by its owner's session).

    None stored yet: store this one (first writer wins). `WrongPassphrase` if it differs, or
    if another setup stored a different one first.
    """
    if project.passphrase_verifier is not None:
        if not verifier_matches(root_key, project.passphrase_verifier):
            raise WrongPassphrase
        return Checked.MATCHED
    try:
        await accounts.set_passphrase_verifier(project.id, passphrase_verifier(root_key))
    except Conflict as exc:
        if exc.code != VERIFIER_MISMATCH:
            raise
        raise WrongPassphrase from exc
    return Checked.STORED


async def check_with_key(api: BridgeAPI, root_key: bytes) -> Checked:
    """Check `root_key` against the verifier of the API key's project (any key may read it).

    Nothing is stored: a grant's holder is not the project's owner, and the owner's next setup
    with the right passphrase stores the verifier. `WrongPassphrase` if it differs.
    """
    stored = await api.passphrase_verifier()
    if stored is None:
        return Checked.UNSET
    if not verifier_matches(root_key, stored):
        raise WrongPassphrase
    return Checked.MATCHED
