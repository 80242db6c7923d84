"""The farmers' data plane: the contract (`contract`) and its one client (`PieceClient`).

Every party that moves pieces speaks it: the client library (uploads and downloads), the
bridge's chores (deletes, audits, repair, retain requests for garbage collection) and farmers
(graceful exit). The farmer serves it.
"""

# Underscored: the package's public names are `__all__` and its modules, nothing else.
import typing as _typing

from metadisk.core.lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:  # what mypy and IDEs see; at run time `__getattr__` imports these
    from metadisk.wire.dataplane.client import PieceClient, PieceTransferError
    from metadisk.wire.dataplane.config import PieceClientConfig
    from metadisk.wire.dataplane.contract import (
        ORDER_LIMIT_HEADER,
        PIECE_HASH_HEADER,
        AuditAnswer,
        AuditRequest,
        NodeInfo,
        PieceStored,
        RetainAccepted,
    )

__all__ = [
    "ORDER_LIMIT_HEADER",
    "PIECE_HASH_HEADER",
    "AuditAnswer",
    "AuditRequest",
    "NodeInfo",
    "PieceClient",
    "PieceClientConfig",
    "PieceStored",
    "PieceTransferError",
    "RetainAccepted",
]

# Where each name lives, imported on first use (PEP 562): the client library's configuration
# names `PieceClientConfig` without paying for aiohttp, the contract's models and TLS pinning
# (`metadisk ls` moves no piece). Kept in step with the block above by tests/wire.
_HOMES = {
    "metadisk.wire.dataplane.client": ("PieceClient", "PieceTransferError"),
    "metadisk.wire.dataplane.config": ("PieceClientConfig",),
    "metadisk.wire.dataplane.contract": (
        "ORDER_LIMIT_HEADER",
        "PIECE_HASH_HEADER",
        "AuditAnswer",
        "AuditRequest",
        "NodeInfo",
        "PieceStored",
        "RetainAccepted",
    ),
}
_HOME_OF, __getattr__, __dir__ = _lazy_names(__name__, _HOMES)
