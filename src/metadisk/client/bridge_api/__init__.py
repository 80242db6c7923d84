"""Typed clients of the bridge's JSON API: one method per route, the wire's models in and out.

`BridgeAPI` speaks for an API key (buckets, objects, transfers, revocations); `BridgeAccounts`
for a user session (accounts, projects, root API keys): what a front end needs to make a first
grant and manage its keys; `BridgeNodes` reads the public node directory. No policy here:
`AsyncProject` holds the logic. Bodies are `metadisk.wire.api` models, so the client and the
bridge share one definition of each.

Every error answer ``{"error": {"code", "message"}}`` becomes the `BridgeError` subclass for its
status, keeping the bridge's code (`metadisk.client.errors.bridge_error`); an unreachable bridge
is `BridgeUnavailable` with code ``connection-failed`` (or ``timeout``); an answer that does not
parse is `BridgeError` with code ``bad-response``.
"""

# Underscored: the package's public names are `__all__` and its modules, nothing else.
import typing as _typing

from metadisk.core.lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:  # what mypy and IDEs see; at run time `__getattr__` imports these
    from metadisk.client.bridge_api.accounts import BridgeAccounts, BridgeNodes
    from metadisk.client.bridge_api.objects import BridgeAPI

__all__ = ["BridgeAPI", "BridgeAccounts", "BridgeNodes"]

# Each client imported on first use: an API key's (`BridgeAPI`) needs neither the account
# models nor the node directory's.
_HOMES = {
    "metadisk.client.bridge_api.accounts": ("BridgeAccounts", "BridgeNodes"),
    "metadisk.client.bridge_api.objects": ("BridgeAPI",),
}
_HOME_OF, __getattr__, __dir__ = _lazy_names(__name__, _HOMES)
