"""The metadisk client library: end-to-end encrypted objects on farmers, through a bridge.

`AsyncProject` is the async API and `Project` its blocking face; both open from an access grant.
Everything is encrypted and erasure-coded on this machine before it leaves; the bridge sees
encrypted names and sizes, farmers see pieces of ciphertext.

Example::

    from metadisk.client import Project

    with Project.open(grant) as project:
        project.create_bucket("photos")
        project.upload("photos", "cat.jpg", "cat.jpg", content_type="image/jpeg")
        print(project.stat("photos", "cat.jpg").size)
"""

from metadisk.client.bridge_api import BridgeAccounts, BridgeAPI, BridgeNodes
from metadisk.client.download import DownloadConfig
from metadisk.client.errors import (
    AccessDenied,
    BridgeError,
    BridgeUnavailable,
    ClientError,
    Conflict,
    DownloadFailed,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PieceError,
    ResumeMismatch,
    TransferError,
    Unauthenticated,
    UploadFailed,
)
from metadisk.client.farmer_transport import LongTail, TransportConfig
from metadisk.client.passphrase import Checked, WrongPassphrase, check_with_key, check_with_session
from metadisk.client.project import AsyncProject, ClientConfig
from metadisk.client.records import (
    Bucket,
    ObjectInfo,
    ObjectPage,
    PendingUploadInfo,
    Permissions,
)
from metadisk.client.segmenter import SegmentSizing, UploadSource
from metadisk.client.sync import Project
from metadisk.client.upload import ProgressCallback, UploadConfig
from metadisk.core.grant import SharePrefix

__all__ = [
    "AccessDenied",
    "AsyncProject",
    "BridgeAPI",
    "BridgeAccounts",
    "BridgeError",
    "BridgeNodes",
    "BridgeUnavailable",
    "Bucket",
    "ClientConfig",
    "ClientError",
    "Conflict",
    "DownloadConfig",
    "DownloadFailed",
    "IntegrityFailure",
    "InvalidArgument",
    "LongTail",
    "NotFound",
    "ObjectInfo",
    "ObjectPage",
    "PendingUploadInfo",
    "PermissionDenied",
    "Permissions",
    "PieceError",
    "ProgressCallback",
    "Project",
    "ResumeMismatch",
    "SegmentSizing",
    "SharePrefix",
    "TransferError",
    "TransportConfig",
    "Unauthenticated",
    "UploadConfig",
    "UploadFailed",
    "UploadSource",
]

# The passphrase check (setup and grant import).
__all__ += ["Checked", "WrongPassphrase", "check_with_key", "check_with_session"]
