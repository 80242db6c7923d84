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

# Underscored: the package's public names are `__all__` and its modules, nothing else.
import typing as _typing

from metadisk.core.lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:  # what mypy and IDEs see; at run time `__getattr__` imports these
    from metadisk.client.bridge_api import BridgeAccounts, BridgeAPI, BridgeNodes
    from metadisk.client.config import (
        ClientConfig,
        DownloadConfig,
        LongTail,
        TransportConfig,
        UploadConfig,
    )
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
    from metadisk.client.passphrase import (
        Checked,
        WrongPassphrase,
        check_with_key,
        check_with_session,
    )
    from metadisk.client.project import AsyncProject
    from metadisk.client.records import (
        Bucket,
        ObjectInfo,
        ObjectPage,
        PartWritten,
        PendingUploadInfo,
        Permissions,
    )
    from metadisk.client.segmenter import SegmentSizing, UploadSource
    from metadisk.client.sync import Project
    from metadisk.client.upload import ProgressCallback
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
    "PartWritten",
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

# Where each public name lives. A name's module is imported when the name is first used
# (PEP 562), so `from metadisk.client import NotFound` costs client/errors.py alone, not the
# transfer pipelines, aiohttp and pydantic: the CLI's start-up counts on it. The block above
# names the same things for type checkers; tests/cli/test_lazy_imports.py keeps the three in step.
_HOMES = {
    "metadisk.client.bridge_api": ("BridgeAccounts", "BridgeAPI", "BridgeNodes"),
    "metadisk.client.config": (
        "ClientConfig",
        "DownloadConfig",
        "LongTail",
        "TransportConfig",
        "UploadConfig",
    ),
    "metadisk.client.errors": (
        "AccessDenied",
        "BridgeError",
        "BridgeUnavailable",
        "ClientError",
        "Conflict",
        "DownloadFailed",
        "IntegrityFailure",
        "InvalidArgument",
        "NotFound",
        "PermissionDenied",
        "PieceError",
        "ResumeMismatch",
        "TransferError",
        "Unauthenticated",
        "UploadFailed",
    ),
    "metadisk.client.passphrase": (
        "Checked",
        "WrongPassphrase",
        "check_with_key",
        "check_with_session",
    ),
    "metadisk.client.project": ("AsyncProject",),
    "metadisk.client.records": (
        "Bucket",
        "ObjectInfo",
        "ObjectPage",
        "PartWritten",
        "PendingUploadInfo",
        "Permissions",
    ),
    "metadisk.client.segmenter": ("SegmentSizing", "UploadSource"),
    "metadisk.client.sync": ("Project",),
    "metadisk.client.upload": ("ProgressCallback",),
    "metadisk.core.grant": ("SharePrefix",),
}
_HOME_OF, __getattr__, __dir__ = _lazy_names(__name__, _HOMES)
