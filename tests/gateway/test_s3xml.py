"""S3's XML bodies and errors, read back by botocore as boto3 reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree as ET

import botocore.handlers
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.gateway import s3xml
from metadisk.gateway.listing import (
    Entry,
    Part,
    Upload,
    decode_token,
    page,
    page_parts,
    page_uploads,
)
from metadisk.gateway.s3errors import CODES, S3Error, error_body

MODEL = botocore.session.get_session().get_service_model("s3")
WHEN = datetime(2026, 12, 5, 6, 0, 0, 123456, tzinfo=UTC)
OWNER = s3xml.Owner("owner-id", "me")
# Keys XML 1.0 can carry, with what XML escapes and what parsers normalize (CR) among them.
XML_KEYS = st.text(
    alphabet=st.one_of(
        st.sampled_from("&<>\"' \r\n\t/+%?#=;é€\U0001f600"),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=12,
).filter(lambda k: "\ufffe" not in k and "\uffff" not in k)


def _parse(operation: str, body: bytes, status: int = 200) -> dict[str, Any]:
    shape = MODEL.operation_model(operation).output_shape
    response = {"body": body, "headers": {}, "status_code": status}
    parsed: dict[str, Any] = botocore.parsers.RestXMLParser().parse(response, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def _request_body(operation: str, params: dict[str, Any]) -> bytes:
    serializer = botocore.serialize.create_serializer("rest-xml")
    body: bytes = serializer.serialize_to_request(params, MODEL.operation_model(operation))["body"]
    return body


def _entries(keys: list[str] | set[str]) -> list[Entry]:
    return [Entry(k, 7, "0123abcd", WHEN) for k in sorted(set(keys))]


@given(keys=st.lists(XML_KEYS, min_size=1, max_size=8))
def test_list_objects_v2_reads_back_the_keys_unencoded(keys: list[str]) -> None:
    result = page(_entries(keys))
    body = s3xml.list_objects_v2("bkt", result, prefix="", delimiter=None, max_keys=1000)
    parsed = _parse("ListObjectsV2", body)
    assert [c["Key"] for c in parsed["Contents"]] == sorted(set(keys))
    assert parsed["KeyCount"] == len(set(keys))
    assert parsed["Contents"][0]["ETag"] == '"0123abcd"'
    assert parsed["Contents"][0]["LastModified"] == WHEN.replace(microsecond=123000)


@given(
    keys=st.lists(
        st.text(min_size=1, max_size=10).filter(lambda k: k.isprintable() or True),
        min_size=1,
        max_size=8,
    ),
    delimiter=st.sampled_from(["/", "+", " ", "\x01"]),
)
def test_encoding_type_url_carries_any_key_and_botocore_decodes_it(
    keys: list[str], delimiter: str
) -> None:
    keys = [k for k in keys if not any(0xD800 <= ord(c) <= 0xDFFF for c in k)] or ["k"]
    result = page(_entries(keys), delimiter=delimiter)
    body = s3xml.list_objects_v2(
        "bkt", result, prefix="", delimiter=delimiter, max_keys=1000, encoding_url=True
    )
    parsed = _parse("ListObjectsV2", body)
    assert parsed["EncodingType"] == "url"
    botocore.handlers.decode_list_object_v2(parsed, {"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed.get("Contents", [])] == [e.key for e in result.contents]
    prefixes = [p["Prefix"] for p in parsed.get("CommonPrefixes", [])]
    assert prefixes == list(result.common_prefixes)
    assert parsed["Delimiter"] == delimiter


def test_encoding_type_url_encodes_as_s3_tests_expect() -> None:
    keys = ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b"]
    result = page(_entries(keys), delimiter="/")
    for render, operation in [
        (s3xml.list_objects_v2, "ListObjectsV2"),
        (s3xml.list_objects_v1, "ListObjects"),
    ]:
        extra = {"marker": ""} if operation == "ListObjects" else {}
        body = render(
            "bkt", result, prefix="", delimiter="/", max_keys=1000, encoding_url=True, **extra
        )
        parsed = _parse(operation, body)
        assert parsed["Delimiter"] == "/"
        assert [c["Key"] for c in parsed["Contents"]] == ["asdf%2Bb"]
        assert [p["Prefix"] for p in parsed["CommonPrefixes"]] == [
            "foo%2B1/",
            "foo/",
            "quux%20ab/",
        ]


def test_a_character_xml_cannot_carry_asks_for_encoding_type_url() -> None:
    result = page(_entries(["a\x01b"]))
    with pytest.raises(S3Error) as caught:
        s3xml.list_objects_v2("bkt", result, prefix="", delimiter=None, max_keys=1000)
    assert caught.value.code == "InvalidArgument"
    assert "encoding-type=url" in caught.value.message
    body = s3xml.list_objects_v2(
        "bkt", result, prefix="", delimiter=None, max_keys=1000, encoding_url=True
    )
    assert b"<Key>a%01b</Key>" in body


def test_list_objects_v2_truncated_page_and_its_token() -> None:
    result = page(_entries(["a", "b/1", "b/2", "c"]), delimiter="/", max_keys=2)
    body = s3xml.list_objects_v2(
        "bkt",
        result,
        prefix="",
        delimiter="/",
        max_keys=2,
        start_after="0",
        continuation_token="tok",
        owner=OWNER,
    )
    parsed = _parse("ListObjectsV2", body)
    assert parsed["IsTruncated"] is True
    assert parsed["KeyCount"] == 2
    assert parsed["StartAfter"] == "0"
    assert parsed["ContinuationToken"] == "tok"
    assert decode_token(parsed["NextContinuationToken"]) == "b/"
    assert parsed["Contents"][0]["Owner"] == {"ID": "owner-id", "DisplayName": "me"}
    assert parsed["CommonPrefixes"] == [{"Prefix": "b/"}]
    last = page(_entries(["a"]))
    parsed = _parse(
        "ListObjectsV2",
        s3xml.list_objects_v2("bkt", last, prefix="p", delimiter="", max_keys=5),
    )
    assert "NextContinuationToken" not in parsed
    assert "Delimiter" not in parsed  # an empty delimiter is not echoed, as in S3


def test_list_objects_v1_markers() -> None:
    entries = _entries(["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud"])
    truncated = page(entries, delimiter="/", max_keys=2)
    parsed = _parse(
        "ListObjects",
        s3xml.list_objects_v1(
            "bkt", truncated, prefix="", delimiter="/", marker="", max_keys=2, owner=OWNER
        ),
    )
    assert parsed["Marker"] == ""
    assert parsed["NextMarker"] == "boo/"
    assert parsed["IsTruncated"] is True
    assert parsed["MaxKeys"] == 2
    assert parsed["Contents"][0]["Owner"]["ID"] == "owner-id"
    plain = page(entries, max_keys=1)
    parsed = _parse(
        "ListObjects",
        s3xml.list_objects_v1("bkt", plain, prefix="", delimiter=None, marker="", max_keys=1),
    )
    # Without a delimiter S3 sends no NextMarker: clients resume after the last key.
    assert parsed["IsTruncated"] is True
    assert "NextMarker" not in parsed
    assert "Delimiter" not in parsed


def test_list_buckets() -> None:
    body = s3xml.list_buckets([("alpha", WHEN), ("b&b", WHEN + timedelta(days=1))], owner=OWNER)
    parsed = _parse("ListBuckets", body)
    assert parsed["Owner"] == {"ID": "owner-id", "DisplayName": "me"}
    assert [b["Name"] for b in parsed["Buckets"]] == ["alpha", "b&b"]
    assert parsed["Buckets"][1]["CreationDate"] == datetime(2026, 12, 6, 6, 0, 0, 123000, UTC)
    assert _parse("ListBuckets", s3xml.list_buckets([], owner=OWNER))["Buckets"] == []


def test_location_and_versioning() -> None:
    for region, expected in [("us-east-1", None), ("eu-west-1", "eu-west-1"), ("", None)]:
        root = ET.fromstring(s3xml.location_constraint(region))
        assert root.tag == f"{{{s3xml.NAMESPACE}}}LocationConstraint"
        assert root.text == expected
    assert _parse("GetBucketVersioning", s3xml.versioning_configuration()) == {}


def test_multipart_documents() -> None:
    parsed = _parse("CreateMultipartUpload", s3xml.initiate_multipart_upload("b", "k<1>", "u-1"))
    assert parsed == {"Bucket": "b", "Key": "k<1>", "UploadId": "u-1"}
    body = s3xml.complete_multipart_upload("http://127.0.0.1:9/b/k", "b", "k", "abc-3")
    parsed = _parse("CompleteMultipartUpload", body)
    assert parsed == {
        "Location": "http://127.0.0.1:9/b/k",
        "Bucket": "b",
        "Key": "k",
        "ETag": '"abc-3"',
    }
    for operation, render in [
        ("CopyObject", s3xml.copy_object_result),
        ("UploadPartCopy", s3xml.copy_part_result),
    ]:
        parsed = _parse(operation, render("e1", WHEN))
        result = parsed["CopyObjectResult" if operation == "CopyObject" else "CopyPartResult"]
        assert result == {"ETag": '"e1"', "LastModified": WHEN.replace(microsecond=123000)}


def test_list_multipart_uploads() -> None:
    items = [Upload(k, u, WHEN) for k, u in [("a", "1"), ("a", "2"), ("d/x", "3"), ("z z", "4")]]
    result = page_uploads(items, upload_id=lambda u: u.upload_id, delimiter="/", max_uploads=3)
    body = s3xml.list_multipart_uploads(
        "b",
        result,
        prefix="",
        delimiter="/",
        key_marker="",
        upload_id_marker="",
        max_uploads=3,
        owner=OWNER,
    )
    parsed = _parse("ListMultipartUploads", body)
    assert parsed["IsTruncated"] is True
    assert (parsed["NextKeyMarker"], parsed.get("NextUploadIdMarker", "")) == ("d/", "")
    assert [(u["Key"], u["UploadId"]) for u in parsed["Uploads"]] == [("a", "1"), ("a", "2")]
    assert parsed["Uploads"][0]["Initiator"] == {"ID": "owner-id", "DisplayName": "me"}
    assert parsed["CommonPrefixes"] == [{"Prefix": "d/"}]
    assert parsed["MaxUploads"] == 3
    rest = page_uploads(items, upload_id=lambda u: u.upload_id, key_marker="d/", delimiter="/")
    body = s3xml.list_multipart_uploads(
        "b",
        rest,
        prefix="",
        delimiter="/",
        key_marker="d/",
        upload_id_marker="",
        max_uploads=1000,
        encoding_url=True,
    )
    parsed = _parse("ListMultipartUploads", body)
    assert [u["Key"] for u in parsed["Uploads"]] == ["z%20z"]
    assert parsed["EncodingType"] == "url"
    assert parsed["IsTruncated"] is False


def test_list_parts() -> None:
    parts = [Part(n, 5 * 2**20, f"e{n}", WHEN) for n in range(1, 6)]
    result = page_parts(parts, part_number_marker=1, max_parts=2)
    body = s3xml.list_parts("b", "k", "u", result, part_number_marker=1, max_parts=2, owner=OWNER)
    parsed = _parse("ListParts", body)
    assert parsed["IsTruncated"] is True
    assert parsed["NextPartNumberMarker"] == 3
    assert parsed["PartNumberMarker"] == 1
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parsed["Parts"]] == [
        (2, '"e2"', 5 * 2**20),
        (3, '"e3"', 5 * 2**20),
    ]
    assert (parsed["Bucket"], parsed["Key"], parsed["UploadId"]) == ("b", "k", "u")


def test_delete_result_quiet_and_not() -> None:
    failed = (S3Error("AccessDenied", Key="x&y"), ("z", S3Error("InternalError")))
    parsed = _parse("DeleteObjects", s3xml.delete_result(["a", "b"], failed, quiet=False))
    assert parsed["Deleted"] == [{"Key": "a"}, {"Key": "b"}]
    assert parsed["Errors"] == [
        {"Key": "x&y", "Code": "AccessDenied", "Message": "Access Denied"},
        {"Key": "z", "Code": "InternalError", "Message": CODES["InternalError"].message},
    ]
    quiet = _parse("DeleteObjects", s3xml.delete_result(["a"], [], quiet=True))
    assert "Deleted" not in quiet
    assert "Errors" not in quiet


def test_format_time() -> None:
    assert s3xml.format_time(datetime(2026, 12, 5, 6, 0)) == "2026-12-05T06:00:00.000Z"
    east = datetime(2026, 12, 5, 8, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    assert s3xml.format_time(east) == "2026-12-05T06:00:00.999Z"


def test_check_key() -> None:
    s3xml.check_key("photos/2026/é 1+2.jpg")
    s3xml.check_key("x" * 1024)
    for key, code in [
        ("x" * 1025, "KeyTooLongError"),
        ("é" * 513, "KeyTooLongError"),
        ("", "InvalidArgument"),
        ("a\x01", "InvalidObjectName"),
        ("a\ufffe", "InvalidObjectName"),
        ("a\ud800", "InvalidObjectName"),
    ]:
        with pytest.raises(S3Error) as caught:
            s3xml.check_key(key)
        assert caught.value.code == code
        assert caught.value.status == 400


# -- errors ----------------------------------------------------------------------------------


def test_error_body_reads_back_with_its_fields() -> None:
    err = S3Error("NoSuchKey", resource="/b/k&1", Key="k&1", BucketName="b")
    body = error_body(err, "req-1", "/ignored", host_id="host")
    parsed = _parse("GetObject", body, status=err.status)
    assert err.status == 404
    assert parsed["Error"]["Code"] == "NoSuchKey"
    assert parsed["Error"]["Message"] == "The specified key does not exist."
    assert parsed["Error"]["Key"] == "k&1"
    assert parsed["Error"]["BucketName"] == "b"
    root = ET.fromstring(body)
    assert [child.tag for child in root] == [
        "Code",
        "Message",
        "Resource",
        "RequestId",
        "HostId",
        "Key",
        "BucketName",
    ]
    assert root.findtext("Resource") == "/b/k&1"
    plain = ET.fromstring(error_body(S3Error("InvalidRange", ActualObjectSize=10), "r", "/b/k"))
    assert (plain.findtext("Resource"), plain.findtext("ActualObjectSize")) == ("/b/k", "10")


def test_error_body_survives_what_the_client_sent() -> None:
    err = S3Error("InvalidArgument", ArgumentName="x-amz-foo", ArgumentValue="a\x00b\r<")
    root = ET.fromstring(error_body(err, "r"))
    assert root.findtext("ArgumentValue") == "a\ufffdb\r<"


def test_codes_and_statuses() -> None:
    expected = {
        "NoSuchBucket": 404,
        "NoSuchUpload": 404,
        "BucketAlreadyOwnedByYou": 409,
        "BucketNotEmpty": 409,
        "InvalidRange": 416,
        "PreconditionFailed": 412,
        "SignatureDoesNotMatch": 403,
        "RequestTimeTooSkewed": 403,
        "MissingContentLength": 411,
        "MethodNotAllowed": 405,
        "NotImplemented": 501,
        "SlowDown": 503,
        "XAmzContentSHA256Mismatch": 400,
    }
    assert {code: S3Error(code).status for code in expected} == expected
    assert error_body(S3Error("NotModified"), "r") == b""
    assert not S3Error("NotModified").has_body
    with pytest.raises(ValueError, match="explicit status"):
        S3Error("NoSuchThing")
    teapot = S3Error("Teapot", status=418)
    assert (teapot.status, teapot.message) == (418, "Teapot")
    assert str(S3Error("NoSuchKey", "gone")) == "NoSuchKey: gone"


# -- parsers ---------------------------------------------------------------------------------


@given(
    parts=st.lists(
        st.tuples(st.integers(1, 10_000), st.text("0123456789abcdef-", min_size=1, max_size=40)),
        min_size=1,
        max_size=20,
        unique_by=lambda p: p[0],
    ),
    quoted=st.booleans(),
)
def test_complete_multipart_reads_what_botocore_sends(
    parts: list[tuple[int, str]], quoted: bool
) -> None:
    parts.sort()
    listed = [
        {"PartNumber": n, "ETag": f'"{e}"' if quoted else e, "ChecksumCRC32": "AAAAAA=="}
        for n, e in parts
    ]
    params = {"Bucket": "b", "Key": "k", "UploadId": "u", "MultipartUpload": {"Parts": listed}}
    assert s3xml.parse_complete_multipart(_request_body("CompleteMultipartUpload", params)) == parts


def test_complete_multipart_tolerates_no_namespace_and_whitespace() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
    <CompleteMultipartUpload>
      <Part>
        <ETag> &quot;aa&quot; </ETag>
        <PartNumber> 1 </PartNumber>
      </Part>
      <Part><PartNumber>3</PartNumber><ETag>bb</ETag></Part>
    </CompleteMultipartUpload>"""
    assert s3xml.parse_complete_multipart(body) == [(1, "aa"), (3, "bb")]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>"""


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "MalformedXML"),
        (b"not xml", "MalformedXML"),
        (b"<Delete><Object><Key>a</Key></Object>", "MalformedXML"),
        (b"<Other><Object><Key>a</Key></Object></Other>", "MalformedXML"),
        (BILLION_LAUGHS, "MalformedXML"),
        (EXTERNAL, "MalformedXML"),
        (b"<!DOCTYPE Delete><Delete><Object><Key>a</Key></Object></Delete>", "MalformedXML"),
        (b"<Delete><Object><Key>&undefined;</Key></Object></Delete>", "MalformedXML"),
        (b"<Delete></Delete>", "MalformedXML"),
        (b"<Delete><Object><VersionId>1</VersionId></Object></Delete>", "MalformedXML"),
        (b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>", "MalformedXML"),
        (b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>", "MalformedXML"),
        (b"<Delete>" + b"<a>" * 20 + b"</a>" * 20 + b"</Delete>", "MalformedXML"),
        (b"<Delete>" + b" " * s3xml.MAX_DELETE_BODY + b"</Delete>", "MaxMessageLengthExceeded"),
        (b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>", "MalformedXML"),
    ],
)
def test_delete_refuses_what_is_not_a_delete_document(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as caught:
        s3xml.parse_delete(body)
    assert caught.value.code == code
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ("", "MalformedXML"),
        ("<Part><ETag>a</ETag></Part>", "MalformedXML"),
        ("<Part><PartNumber>1</PartNumber></Part>", "MalformedXML"),
        ("<Part><PartNumber>one</PartNumber><ETag>a</ETag></Part>", "MalformedXML"),
        ("<Part><PartNumber>-1</PartNumber><ETag>a</ETag></Part>", "MalformedXML"),
        ("<Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>", "InvalidArgument"),
        ("<Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>", "InvalidArgument"),
        (
            "<Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
            "<Part><PartNumber>1</PartNumber><ETag>b</ETag></Part>",
            "InvalidPartOrder",
        ),
        (
            "<Part><PartNumber>2</PartNumber><ETag>a</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>b</ETag></Part>",
            "InvalidPartOrder",
        ),
    ],
)
def test_complete_multipart_refuses_bad_parts(parts: str, code: str) -> None:
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    with pytest.raises(S3Error) as caught:
        s3xml.parse_complete_multipart(body)
    assert caught.value.code == code


@given(keys=st.lists(XML_KEYS, min_size=1, max_size=30), quiet=st.booleans())
def test_delete_reads_what_botocore_sends(keys: list[str], quiet: bool) -> None:
    # botocore writes a carriage return raw, which every XML parser must read as a line feed.
    keys = [k.replace("\r", "\n") for k in keys]
    objects = [{"Key": k, "VersionId": "v"} for k in keys]
    params = {"Bucket": "b", "Delete": {"Objects": objects, "Quiet": quiet}}
    assert s3xml.parse_delete(_request_body("DeleteObjects", params)) == (quiet, keys)


def test_delete_takes_a_thousand_keys() -> None:
    body = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1000 + b"</Delete>"
    assert s3xml.parse_delete(body) == (False, ["k"] * 1000)


def test_create_bucket_location() -> None:
    params = {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}
    assert s3xml.parse_create_bucket(_request_body("CreateBucket", params)) == "eu-west-1"
    assert s3xml.parse_create_bucket(b"") is None
    assert s3xml.parse_create_bucket(b"  \n") is None
    assert s3xml.parse_create_bucket(b"<CreateBucketConfiguration/>") is None
    with pytest.raises(S3Error) as caught:
        s3xml.parse_create_bucket(b"<CreateBucketConfiguration>")
    assert caught.value.code == "MalformedXML"
