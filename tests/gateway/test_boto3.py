"""boto3 against a real gateway on a real network: every operation the gateway serves."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.gateway.harness import fresh_bucket_name

MiB = 1 << 20


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- buckets ------------------------------------------------------------------------------------


def test_bucket_lifecycle(s3: Any) -> None:
    name = fresh_bucket_name()
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    with pytest.raises(ClientError) as again:
        s3.create_bucket(Bucket=name)
    assert error_code(again) == "BucketAlreadyOwnedByYou"
    assert status(again) == 409
    s3.put_object(Bucket=name, Key="x", Body=b"x")
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket=name)
    assert error_code(not_empty) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as gone:
        s3.head_bucket(Bucket=name)
    assert status(gone) == 404
    with pytest.raises(ClientError) as missing:
        s3.delete_bucket(Bucket=name)
    assert error_code(missing) == "NoSuchBucket"


def test_bucket_names_follow_s3_rules(s3: Any) -> None:
    for bad in ("UpperCase", "a" * 64, "ab", "under_score"):
        with pytest.raises(ClientError) as refused:
            s3.create_bucket(Bucket=bad)
        assert error_code(refused) == "InvalidBucketName", bad


def test_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    name = fresh_bucket_name("missing")
    for call in (
        lambda: s3.put_object(Bucket=name, Key="k", Body=b"data"),
        lambda: s3.get_object(Bucket=name, Key="k"),
        lambda: s3.list_objects_v2(Bucket=name),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert error_code(refused) == "NoSuchBucket"


# -- objects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 3 * MiB + 5])
def test_put_get_head_round_trip(s3: Any, bucket: str, size: int) -> None:
    data = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=data)
    assert put["ETag"] == f'"{md5(data)}"'
    got = s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == size
    head = s3.head_object(Bucket=bucket, Key="dir/file.bin")
    assert head["ContentLength"] == size
    assert head["ETag"] == put["ETag"]


def test_metadata_is_stored_and_returned(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="doc.txt",
        Body=b"hello",
        ContentType="text/plain; charset=utf-8",
        ContentDisposition='attachment; filename="doc.txt"',
        ContentEncoding="identity",
        CacheControl="max-age=60",
        Metadata={"colour": "blue", "owner": "ada"},
    )
    for answer in (
        s3.head_object(Bucket=bucket, Key="doc.txt"),
        s3.get_object(Bucket=bucket, Key="doc.txt"),
    ):
        assert answer["ContentType"] == "text/plain; charset=utf-8"
        assert answer["ContentDisposition"] == 'attachment; filename="doc.txt"'
        assert answer["ContentEncoding"] == "identity"
        assert answer["CacheControl"] == "max-age=60"
        assert answer["Metadata"] == {"colour": "blue", "owner": "ada"}


def test_missing_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=bucket, Key="nope")
    assert status(head) == 404


def test_ranges(s3: Any, bucket: str) -> None:
    data = os.urandom(2 * MiB + 100)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for header, want in (
        ("bytes=0-9", data[:10]),
        ("bytes=10-", data[10:]),
        ("bytes=-5", data[-5:]),
        (f"bytes={MiB - 3}-{MiB + 3}", data[MiB - 3 : MiB + 4]),
        ("bytes=5-999999999", data[5:]),
    ):
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["Body"].read() == want, header
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].endswith(f"/{len(data)}")
    with pytest.raises(ClientError) as past_end:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert error_code(past_end) == "InvalidRange"
    assert status(past_end) == 416


def test_conditional_gets(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    etag = put["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    later = modified + datetime.timedelta(hours=1)
    earlier = modified - datetime.timedelta(hours=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as failed:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert status(failed) == 412
    with pytest.raises(ClientError) as not_modified:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(not_modified) == 304
    with pytest.raises(ClientError) as not_since:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=later)
    assert status(not_since) == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=earlier)["Body"].read()
    with pytest.raises(ClientError) as changed:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=earlier)
    assert status(changed) == 412


def test_delete_and_multi_delete(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c/d"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.delete_object(Bucket=bucket, Key="a")
    s3.delete_object(Bucket=bucket, Key="never-there")  # S3: deleting nothing succeeds
    answer = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c/d"}, {"Key": "none"}]}
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["b", "c/d", "none"]
    assert not answer.get("Errors")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.put_object(Bucket=bucket, Key="q", Body=b"q")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    assert not quiet.get("Deleted")


def test_copy_object(s3: Any, bucket: str) -> None:
    data = os.urandom(MiB + 1)
    put = s3.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"}
    assert got["ETag"] == put["ETag"]
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/plain",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"b": "2"}
    assert head["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as itself:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_code(itself) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"c": "3"},
    )
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == data


# -- listing ------------------------------------------------------------------------------------

KEYS = sorted(
    ["a.txt", "b/1", "b/2", "b/c/3", "b/c/4", "d", "é/x", "z/y/z", "b/cc", "b 1"],
    key=lambda k: k.encode(),
)


def put_keys(s3: Any, bucket: str) -> None:
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def test_list_v2_whole_and_paged(s3: Any, bucket: str) -> None:
    put_keys(s3, bucket)
    whole = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in whole["Contents"]] == KEYS
    assert whole["KeyCount"] == len(KEYS)
    assert not whole["IsTruncated"]
    seen: list[str] = []
    token = None
    while True:
        options = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=3, **options)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == KEYS
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="b/c/4")
    assert [o["Key"] for o in after["Contents"]] == [k for k in KEYS if k.encode() > b"b/c/4"]


def test_list_v2_delimiter_and_prefix(s3: Any, bucket: str) -> None:
    put_keys(s3, bucket)
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "b 1", "d"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["b/", "z/", "é/"]
    inner = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="b/")
    assert [o["Key"] for o in inner["Contents"]] == ["b/1", "b/2", "b/cc"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["b/c/"]
    partial = s3.list_objects_v2(Bucket=bucket, Prefix="b/c")
    assert [o["Key"] for o in partial["Contents"]] == ["b/c/3", "b/c/4", "b/cc"]
    encoded = s3.list_objects_v2(Bucket=bucket, Prefix="b ", EncodingType="url")
    # Asked for explicitly, boto3 hands the encoded keys over as they came.
    assert [o["Key"] for o in encoded["Contents"]] == ["b%201"]


def test_list_v1_marker_paging(s3: Any, bucket: str) -> None:
    put_keys(s3, bucket)
    seen: list[str] = []
    marker = ""
    while True:
        page = s3.list_objects(Bucket=bucket, MaxKeys=4, Marker=marker)
        keys = [o["Key"] for o in page.get("Contents", [])]
        seen += keys
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or keys[-1]
    assert seen == KEYS
    folders = s3.list_objects(Bucket=bucket, Delimiter="/", Prefix="b/")
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == ["b/c/"]


def test_paginator_over_many_keys(s3: Any, bucket: str) -> None:
    keys = [f"many/{i:04d}" for i in range(120)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix="many/", PaginationConfig={"PageSize": 50})
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == keys


# -- multipart ----------------------------------------------------------------------------------


def test_multipart_upload(s3: Any, bucket: str) -> None:
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), os.urandom(MiB // 3)]
    created = s3.create_multipart_upload(
        Bucket=bucket, Key="big", ContentType="video/mp4", Metadata={"m": "1"}
    )
    upload_id = created["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("big", upload_id)]
    etags = {}
    # Part 2 first, and part 1 twice (a client's retry): the later upload of a number wins.
    for number in (2, 1, 3, 1):
        answer = s3.upload_part(
            Bucket=bucket,
            Key="big",
            UploadId=upload_id,
            PartNumber=number,
            Body=parts_data[number - 1],
        )
        etags[number] = answer["ETag"]
        assert answer["ETag"] == f'"{md5(parts_data[number - 1])}"'
    parts = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [
        (n, len(d)) for n, d in enumerate(parts_data, start=1)
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
    )
    joined = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest()
    assert done["ETag"] == f'"{joined}-3"'
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == b"".join(parts_data)
    assert got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"m": "1"}
    assert got["ETag"] == done["ETag"]
    span = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={5 * MiB - 2}-{5 * MiB + 2}")
    assert span["Body"].read() == b"".join(parts_data)[5 * MiB - 2 : 5 * MiB + 3]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_multipart_errors(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="e")["UploadId"]
    small = s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=1, Body=b"a")
    last = s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=2, Body=b"b")

    def complete(parts: list[dict[str, Any]]) -> pytest.ExceptionInfo[ClientError]:
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="e", UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        return refused

    one = {"PartNumber": 1, "ETag": small["ETag"]}
    two = {"PartNumber": 2, "ETag": last["ETag"]}
    assert error_code(complete([one, two])) == "EntityTooSmall"
    assert error_code(complete([two, one])) == "InvalidPartOrder"
    assert error_code(complete([{"PartNumber": 1, "ETag": '"beef"'}])) == "InvalidPart"
    assert error_code(complete([{"PartNumber": 7, "ETag": small["ETag"]}])) == "InvalidPart"
    with pytest.raises(ClientError) as bad_number:
        s3.upload_part(Bucket=bucket, Key="e", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_code(bad_number) == "InvalidArgument"
    s3.abort_multipart_upload(Bucket=bucket, Key="e", UploadId=upload_id)
    with pytest.raises(ClientError) as aborted:
        s3.list_parts(Bucket=bucket, Key="e", UploadId=upload_id)
    assert error_code(aborted) == "NoSuchUpload"
    with pytest.raises(ClientError) as unknown:
        s3.upload_part(Bucket=bucket, Key="e", UploadId="00" * 16, PartNumber=1, Body=b"x")
    assert error_code(unknown) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="e")  # nothing became visible


def test_single_part_completes(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="one")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="one", UploadId=upload_id, PartNumber=1, Body=b"hi")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="one",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"hi"


def test_upload_part_copy(s3: Any, bucket: str) -> None:
    source = os.urandom(7 * MiB)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )
    second = s3.upload_part(
        Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=2, Body=b"tail"
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": second["ETag"]},
            ]
        },
    )
    got = s3.get_object(Bucket=bucket, Key="assembled")["Body"].read()
    assert got == source[: 5 * MiB] + b"tail"


def test_transfer_manager_multipart(s3: Any, bucket: str, tmp_path: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(12 * MiB + 3)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(io.BytesIO(data), bucket, "tm", Config=config)
    head = s3.head_object(Bucket=bucket, Key="tm")
    assert head["ETag"].endswith('-3"')
    out = io.BytesIO()
    s3.download_fileobj(bucket, "tm", out, Config=config)  # ranged GETs in parallel
    assert out.getvalue() == data


# -- what is not supported ----------------------------------------------------------------------


def test_unsupported_features_answer_not_implemented(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"t")
    for call in (
        lambda: s3.put_object_tagging(
            Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        ),
        lambda: s3.get_bucket_policy(Bucket=bucket),
        lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read"),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert error_code(refused) == "NotImplemented"
        assert status(refused) == 501
