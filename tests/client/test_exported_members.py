"""The public names of `metadisk.client`: adding one is a decision, removing one a break."""

from __future__ import annotations

import metadisk.client as client


def test_all_is_pinned() -> None:
    assert sorted(client.__all__) == [
        "AccessDenied",
        "AsyncProject",
        "BridgeAPI",
        "BridgeAccounts",
        "BridgeError",
        "BridgeNodes",
        "BridgeUnavailable",
        "Bucket",
        "Checked",
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
        "WrongPassphrase",
        "check_with_key",
        "check_with_session",
    ]


def test_every_name_exists_and_nothing_else_is_public() -> None:
    for name in client.__all__:
        assert getattr(client, name) is not None, name
    modules = {"bridge_api", "config", "coordinators", "download", "errors", "farmer_transport"}
    modules |= {"formats"}
    modules |= {"offload", "project", "records", "relocate", "resume", "segment_codec"}
    modules |= {"segmenter", "sync", "transfers", "upload", "passphrase"}
    public = {n for n in dir(client) if not n.startswith("_")}
    assert public - modules == set(client.__all__)


def test_errors_form_one_hierarchy_with_stable_codes() -> None:
    errors = [getattr(client, n) for n in client.__all__ if n.endswith(("Error", "Failed"))]
    errors += [client.AccessDenied, client.Conflict, client.NotFound, client.PermissionDenied]
    errors += [client.IntegrityFailure, client.InvalidArgument, client.ResumeMismatch]
    errors += [client.Unauthenticated, client.BridgeUnavailable]
    codes = {}
    for error in errors:
        assert issubclass(error, client.ClientError), error
        codes[error.__name__] = error.code
    assert codes == {
        "AccessDenied": "access-denied",
        "BridgeError": "bridge-error",
        "BridgeUnavailable": "unavailable",
        "ClientError": "client-error",
        "Conflict": "conflict",
        "DownloadFailed": "segment-unavailable",
        "IntegrityFailure": "integrity",
        "InvalidArgument": "invalid-argument",
        "NotFound": "not-found",
        "PermissionDenied": "access-denied",
        "PieceError": "piece-failed",
        "ResumeMismatch": "resume-mismatch",
        "TransferError": "client-error",
        "Unauthenticated": "unauthenticated",
        "UploadFailed": "not-enough-pieces",
    }
