"""Who may do what through the gateway: signatures, presigned URLs, replays and restricted grants.

Each test is an attack a real client could make, sent to a real gateway over loopback.
"""

from __future__ import annotations

import datetime
import time
import urllib.error
import urllib.request
from typing import Any

import botocore.auth
import pytest
from botocore.exceptions import ClientError

from metadisk.gateway.config import Credential
from tests.gateway.harness import SHARED_BUCKET, SHARED_PREFIX, S3World, boto3_client
from tests.gateway.test_boto3 import error_code, status


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_presigned_get_and_put(world: S3World, s3: Any, bucket: str) -> None:
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "signed/up"}, ExpiresIn=300
    )
    assert fetch(put_url, "PUT", b"through a URL")[0] == 200
    get_url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "signed/up", "ResponseContentType": "text/x-test"},
        ExpiresIn=300,
    )
    request = urllib.request.Request(get_url)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.read() == b"through a URL"
        assert answer.headers["Content-Type"] == "text/x-test"


def test_expired_presigned_url_is_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="soon", Body=b"gone soon")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "soon"}, ExpiresIn=1
    )
    time.sleep(2.1)
    code, body = fetch(url)
    assert code == 403
    assert b"<Code>AccessDenied</Code>" in body
    assert b"gone soon" not in body


def test_presigned_url_cannot_be_bent_to_another_key(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mine", Body=b"mine")
    s3.put_object(Bucket=bucket, Key="secret", Body=b"secret")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "mine"}, ExpiresIn=300
    )
    code, body = fetch(url.replace("/mine?", "/secret?"))
    assert code == 403
    assert b"SignatureDoesNotMatch" in body
    code, _ = fetch(url + "&x-id=extra")
    assert code == 403


def test_wrong_secret_is_signature_does_not_match(world: S3World) -> None:
    forged = Credential(world.full.access_key, "not-the-secret-at-all", world.full.grant)
    client = boto3_client(world, forged)
    with pytest.raises(ClientError) as refused:
        client.list_buckets()
    assert error_code(refused) == "SignatureDoesNotMatch"
    assert status(refused) == 403


def test_unknown_access_key(world: S3World) -> None:
    stranger = Credential("MDNOBODY", "some-secret-of-sixteen", world.full.grant)
    with pytest.raises(ClientError) as refused:
        boto3_client(world, stranger).list_buckets()
    assert error_code(refused) == "InvalidAccessKeyId"


def test_anonymous_request_is_refused(world: S3World) -> None:
    code, body = fetch(world.url + "/")
    assert code == 403
    assert b"AccessDenied" in body


def test_request_replayed_outside_the_skew_window(
    world: S3World, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request signed 20 minutes ago (as a captured request replayed now would be)."""
    signed_at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    signed_at -= datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_: signed_at)
    client = boto3_client(world)
    with pytest.raises(ClientError) as refused:
        client.list_objects_v2(Bucket=bucket)
    assert error_code(refused) == "RequestTimeTooSkewed"
    assert status(refused) == 403


# -- restricted grants ------------------------------------------------------------------------


def test_read_only_credentials_stay_inside_their_prefix(world: S3World) -> None:
    owner = boto3_client(world)
    owner.put_object(Bucket=SHARED_BUCKET, Key=SHARED_PREFIX + "readable", Body=b"shared")
    owner.put_object(Bucket=SHARED_BUCKET, Key="private/secret", Body=b"secret")
    reader = boto3_client(world, world.reader)
    key = SHARED_PREFIX + "readable"
    assert reader.get_object(Bucket=SHARED_BUCKET, Key=key)["Body"].read() == b"shared"
    listed = reader.list_objects_v2(Bucket=SHARED_BUCKET, Prefix=SHARED_PREFIX)
    assert key in [o["Key"] for o in listed["Contents"]]
    for call in (
        lambda: reader.get_object(Bucket=SHARED_BUCKET, Key="private/secret"),
        lambda: reader.put_object(Bucket=SHARED_BUCKET, Key=SHARED_PREFIX + "new", Body=b"x"),
        lambda: reader.list_objects_v2(Bucket=SHARED_BUCKET, Prefix="private/"),
        lambda: reader.create_multipart_upload(Bucket=SHARED_BUCKET, Key=SHARED_PREFIX + "m"),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert error_code(refused) == "AccessDenied"
    answer = reader.delete_objects(Bucket=SHARED_BUCKET, Delete={"Objects": [{"Key": key}]})
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    assert owner.get_object(Bucket=SHARED_BUCKET, Key=key)["Body"].read() == b"shared"


def test_write_credentials_write_only_inside_their_prefix(world: S3World) -> None:
    writer = boto3_client(world, world.writer)
    writer.put_object(Bucket=SHARED_BUCKET, Key=SHARED_PREFIX + "written", Body=b"ok")
    with pytest.raises(ClientError) as outside:
        writer.put_object(Bucket=SHARED_BUCKET, Key="elsewhere/file", Body=b"no")
    assert error_code(outside) == "AccessDenied"
    with pytest.raises(ClientError) as copy_out:
        writer.copy_object(
            Bucket=SHARED_BUCKET,
            Key="elsewhere/copy",
            CopySource={"Bucket": SHARED_BUCKET, "Key": SHARED_PREFIX + "written"},
        )
    assert error_code(copy_out) == "AccessDenied"
    with pytest.raises(ClientError) as new_bucket:
        writer.create_bucket(Bucket="not-theirs")
    assert error_code(new_bucket) == "AccessDenied"


def test_expired_grant_is_refused(world: S3World) -> None:
    client = boto3_client(world, world.expired)
    with pytest.raises(ClientError) as refused:
        client.get_object(Bucket=SHARED_BUCKET, Key=SHARED_PREFIX + "readable")
    assert error_code(refused) == "AccessDenied"
