"""The farmers' data plane: the contract (`contract`) and its one client (`PieceClient`).

Every party that moves pieces speaks it: the client library (uploads and downloads), the
bridge's chores (deletes, audits, repair, retain requests for garbage collection) and farmers
(graceful exit). The farmer serves it.
"""

from metadisk.wire.dataplane.client import PieceClient, PieceClientConfig, PieceTransferError
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
