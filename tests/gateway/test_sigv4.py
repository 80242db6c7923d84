"""SigV4 verification against botocore as the independent signer, AWS's published examples and
the attacks a gateway must refuse."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import boto3
import pytest
import urllib3
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st
from minio import Minio

from metadisk.gateway.chunked import ChunkedDecoder, PayloadChecks
from metadisk.gateway.sigv4 import (
    AuthError,
    Payload,
    Request,
    Verified,
    canonical_query,
    verify,
)

KEY = "AKIDMETADISKTEST"
SECRET = "s3cr3t/with+odd=chars"
AWKWARD_KEYS = [
    "plain.txt",
    "with space",
    "a+b",
    "ü/ñ/日本語.txt",
    "tilde~x",
    "eq=1&b=2",
    "per%cent%20",
    "double//slash",
    "/leading",
    "trailing/",
    "star*(bang)!'",
    "semi;colon:comma,",
    "emoji🙂",
    "?question#hash",
]


def secrets(key: str) -> str | None:
    return {KEY: SECRET}.get(key)


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def _abort(request: Any, **_: Any) -> None:
    raise _Captured(request)


def client(endpoint: str = "http://127.0.0.1:9000", **config: Any) -> Any:
    made = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}, **config),
    )
    # The request exactly as boto3 would put it on the wire, stopped before it is sent.
    made.meta.events.register("before-send.s3.*", _abort)
    return made


def from_url(method: str, url: str, headers: dict[str, str]) -> Request:
    """What the server hands `verify`: the path as sent, decoded query pairs, lower-case names."""
    parts = urlsplit(url)
    lowered = {name.lower(): value for name, value in headers.items()}
    lowered.setdefault("host", parts.netloc)
    return Request(method, parts.path, parse_qsl(parts.query, keep_blank_values=True), lowered)


def sent(call: Callable[[], object]) -> tuple[Request, bytes]:
    with pytest.raises(_Captured) as caught:
        call()
    prepared = caught.value.request
    headers = {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in prepared.headers.items()
    }
    body = prepared.body
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = body.read()
    return from_url(prepared.method, prepared.url, headers), raw


def now() -> datetime:
    return datetime.now(UTC)


def verified_body(request: Request, body: bytes) -> bytes:
    """Read `body` the way the server will and return the payload it stores."""
    result = verify(request, secrets, now())
    checks = PayloadChecks(result, request.headers)
    if result.payload.streaming:
        decoder = ChunkedDecoder(result)
        payload = b"".join(bytes(piece) for piece in decoder.feed(body))
        decoder.finish()
    else:
        payload = body
    checks.update(payload)
    checks.finish()
    return payload


# -- what boto3 sends -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_boto3_put_object_over_http_signs_the_body_and_verifies(key: str) -> None:
    request, body = sent(lambda: client().put_object(Bucket="bkt", Key=key, Body=b"hello"))
    result = verify(request, secrets, now())
    assert result.access_key == KEY and result.region == "us-east-1"
    assert result.payload is Payload.SHA256
    assert result.content_sha256 == hashlib.sha256(b"hello").hexdigest()
    assert verified_body(request, body) == b"hello"


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_boto3_put_object_over_https_streams_an_unsigned_trailer_and_verifies(key: str) -> None:
    data = bytes(range(256)) * 50
    request, body = sent(
        lambda: client("https://127.0.0.1:9443").put_object(Bucket="bkt", Key=key, Body=data)
    )
    result = verify(request, secrets, now())
    assert result.payload is Payload.STREAMING_UNSIGNED_TRAILER
    assert result.trailer_names == ("x-amz-checksum-crc32",)
    assert result.decoded_length == len(data)
    assert verified_body(request, body) == data


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_boto3_get_list_delete_and_multipart_verify(key: str) -> None:
    s3 = client()
    calls: list[Callable[[], object]] = [
        lambda: s3.get_object(Bucket="bkt", Key=key, Range="bytes=0-9"),
        lambda: s3.head_object(Bucket="bkt", Key=key),
        lambda: s3.delete_object(Bucket="bkt", Key=key),
        lambda: s3.list_objects_v2(Bucket="bkt", Prefix=key, Delimiter="/", MaxKeys=7),
        lambda: s3.list_objects_v2(Bucket="bkt", StartAfter=key, ContinuationToken="a+b=/c"),
        lambda: s3.create_multipart_upload(Bucket="bkt", Key=key),
        lambda: s3.upload_part(
            Bucket="bkt", Key=key, UploadId="up/+id=", PartNumber=3, Body=b"part"
        ),
        lambda: s3.copy_object(Bucket="bkt", Key=key, CopySource={"Bucket": "src", "Key": key}),
    ]
    for call in calls:
        request, body = sent(call)
        result = verify(request, secrets, now())
        assert result.access_key == KEY
        verified_body(request, body)


@given(
    key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    prefix=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
def test_any_key_and_prefix_botocore_signs_verifies(key: str, prefix: str) -> None:
    s3 = client()
    for call in (
        lambda: s3.put_object(Bucket="bkt", Key=key, Body=b"x"),
        lambda: s3.list_objects_v2(Bucket="bkt", Prefix=prefix, StartAfter=key),
    ):
        request, body = sent(call)
        verified_body(request, body)


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_boto3_presigned_urls_verify(key: str) -> None:
    s3 = client(signature_version="s3v4")
    for method, operation in (("GET", "get_object"), ("PUT", "put_object")):
        url = s3.generate_presigned_url(
            operation, Params={"Bucket": "bkt", "Key": key}, ExpiresIn=300
        )
        result = verify(from_url(method, url, {}), secrets, now())
        assert result.presigned and result.payload is Payload.UNSIGNED


class _MinioCapture(urllib3.PoolManager):
    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        raise _Captured((method, url, dict(kwargs.get("headers") or {}), kwargs.get("body")))


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_minio_py_requests_and_presigned_urls_verify(key: str) -> None:
    # A second, independent signer: MinIO's Python client.
    mc = Minio(
        "127.0.0.1:9000", KEY, SECRET, secure=False, region="us-east-1", http_client=_MinioCapture()
    )
    calls: list[Callable[[], object]] = [
        lambda: mc.put_object("bkt", key, io.BytesIO(b"hello"), 5),
        lambda: list(mc.list_objects("bkt", prefix=key, start_after=key)),
        lambda: mc.get_object("bkt", key, offset=2, length=3),
        lambda: mc.remove_object("bkt", key),
    ]
    for call in calls:
        with pytest.raises(_Captured) as caught:
            call()
        method, url, headers, body = caught.value.request
        verified_body(from_url(method, url, headers), body or b"")
    for method, url in (
        ("GET", mc.presigned_get_object("bkt", key)),
        ("PUT", mc.presigned_put_object("bkt", key)),
    ):
        assert verify(from_url(method, url, {}), secrets, now()).presigned


def test_botocore_signers_over_an_awsrequest_with_odd_headers_and_repeated_query() -> None:
    credentials = Credentials(KEY, SECRET)
    query = "?b=2&a=2&a=1&empty=&tag=x%2By"
    # SigV4Auth (other services) normalises and re-encodes the path: only a plain one agrees.
    for auth, path in ((S3SigV4Auth, "/bkt/k%20e%2By"), (SigV4Auth, "/bkt/plain-key.txt")):
        url = f"http://127.0.0.1:9000{path}{query}"
        request = AWSRequest(
            "PUT",
            url,
            headers={
                "X-Amz-Meta-Spaced": "  two   words  here ",
                "Content-Type": "text/plain",
                # SigV4Auth leaves it out; S3 requires it (checked below).
                "X-Amz-Content-SHA256": hashlib.sha256(b"body").hexdigest(),
            },
            data=b"body",
        )
        auth(credentials, "s3", "eu-west-3").add_auth(request)
        headers = {name: str(value) for name, value in request.headers.items()}
        result = verify(from_url("PUT", url, headers), secrets, now())
        assert result.region == "eu-west-3"
        assert result.content_sha256 == hashlib.sha256(b"body").hexdigest()


def test_s3_does_not_double_encode_the_path() -> None:
    credentials = Credentials(KEY, SECRET)
    url = "http://127.0.0.1:9000/bkt/k%20ey"
    request = AWSRequest("GET", url, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    refused(from_url("GET", url, headers), "SignatureDoesNotMatch")


def test_a_signed_expect_header_consumed_by_the_http_stack_still_verifies() -> None:
    class SignsExpect(S3SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            headers = super().headers_to_sign(request)
            headers["expect"] = "100-continue"
            return headers

    url = "http://127.0.0.1:9000/bkt/k?uploads"
    request = AWSRequest("POST", url, headers={"Expect": "100-continue"})
    SignsExpect(Credentials(KEY, SECRET), "s3", "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    assert "expect" in headers["Authorization"]
    verify(from_url("POST", url, headers), secrets, now())
    del headers["Expect"]
    verify(from_url("POST", url, headers), secrets, now())
    # aiohttp's raw_path keeps the query: it is not part of the canonical URI
    with_query = from_url("POST", url, headers)
    verify(Request("POST", "/bkt/k?uploads", with_query.query, with_query.headers), secrets, now())


def test_canonical_query_sorts_encoded_keys_then_values() -> None:
    pairs = [("b", "2"), ("a", "z"), ("a", "1"), ("uploads", ""), ("k y", "v/ü~")]
    assert canonical_query(pairs) == "a=1&a=z&b=2&k%20y=v%2F%C3%BC~&uploads="


# -- AWS's published examples ---------------------------------------------------------------------

DOC_KEY = "AKIAIOSFODNN7EXAMPLE"
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)
DOC_SCOPE = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


def doc_secrets(key: str) -> str | None:
    return DOC_SECRET if key == DOC_KEY else None


def test_aws_example_get_object_with_range() -> None:
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date": "20130524T000000Z",
        "authorization": f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE},"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    result = verify(Request("GET", "/test.txt", (), headers), doc_secrets, DOC_NOW)
    assert result.payload is Payload.SHA256 and result.region == "us-east-1"


def test_aws_example_presigned_get() -> None:
    query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", DOC_SCOPE),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Signature", "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
    ]
    request = Request("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})
    assert verify(request, doc_secrets, DOC_NOW).payload is Payload.UNSIGNED
    late = datetime(2013, 5, 25, 0, 0, 1, tzinfo=UTC)
    with pytest.raises(AuthError) as caught:
        verify(request, doc_secrets, late)
    assert (caught.value.code, caught.value.message) == ("AccessDenied", "Request has expired")


def test_aws_example_chunked_put_seed_signature() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "content-encoding": "aws-chunked",
        "content-length": "66824",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-date": "20130524T000000Z",
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "authorization": f"AWS4-HMAC-SHA256 Credential={DOC_SCOPE},SignedHeaders=content-encoding;"
        "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class,"
        "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    }
    request = Request("PUT", "/examplebucket/chunkObject.txt", (), headers)
    result = verify(request, doc_secrets, DOC_NOW)
    assert result.payload is Payload.STREAMING_SIGNED and result.decoded_length == 66560
    assert result.signing.seed_signature.startswith("4f232c43")
    assert result.signing.scope == "20130524/us-east-1/s3/aws4_request"


# -- attacks and malformed requests ---------------------------------------------------------------


def signed_get(key: str = "k") -> Request:
    request, _ = sent(lambda: client().get_object(Bucket="bkt", Key=key))
    return request


def with_headers(request: Request, **changes: str | None) -> Request:
    headers = dict(request.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return Request(request.method, request.raw_path, request.query, headers)


def refused(request: Request, code: str, at: datetime | None = None, **options: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        verify(request, secrets, at or now(), **options)
    assert caught.value.code == code, caught.value.message
    return caught.value


def amz_date(request: Request) -> datetime:
    return datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_a_wrong_signature_is_refused_and_says_what_was_signed() -> None:
    request = signed_get()
    auth = request.headers["authorization"]
    last = auth[-1]
    flipped = auth[:-1] + ("0" if last != "0" else "1")
    error = refused(with_headers(request, authorization=flipped), "SignatureDoesNotMatch")
    assert error.status == 403
    assert error.details["CanonicalRequest"].startswith("GET\n/bkt/k\n")
    assert error.details["StringToSign"].startswith("AWS4-HMAC-SHA256\n")


def test_a_wrong_secret_is_refused() -> None:
    request = signed_get()
    with pytest.raises(AuthError) as caught:
        verify(request, lambda key: "another secret", now())
    assert caught.value.code == "SignatureDoesNotMatch"


def test_tampering_with_path_or_signed_header_is_refused() -> None:
    request = signed_get("photo.jpg")
    moved = Request(request.method, "/bkt/other.jpg", request.query, request.headers)
    refused(moved, "SignatureDoesNotMatch")
    refused(with_headers(request, host="evil.example:9000"), "SignatureDoesNotMatch")
    sha = hashlib.sha256(b"other").hexdigest()
    refused(with_headers(request, x_amz_content_sha256=sha), "SignatureDoesNotMatch")
    put, _ = sent(lambda: client().put_object(Bucket="b", Key="k", Body=b"x"))
    refused(with_headers(put, x_amz_checksum_crc32="AAAAAA=="), "SignatureDoesNotMatch")
    refused(
        Request("DELETE", request.raw_path, request.query, request.headers), "SignatureDoesNotMatch"
    )


def test_an_added_query_parameter_is_refused() -> None:
    request = signed_get()
    added = Request(request.method, request.raw_path, [("versionId", "1")], request.headers)
    refused(added, "SignatureDoesNotMatch")


def test_unsigned_amz_headers_and_missing_signed_headers_are_refused() -> None:
    request = signed_get()
    error = refused(with_headers(request, x_amz_meta_extra="1"), "AccessDenied")
    assert "x-amz-meta-extra" in error.message
    error = refused(with_headers(request, x_amz_content_sha256=None), "InvalidRequest")
    assert "x-amz-content-sha256" in error.message
    error = refused(with_headers(request, host=None), "AccessDenied")
    assert "host" in error.message


def test_replay_outside_the_skew_window_is_refused_both_ways() -> None:
    request = signed_get()
    sent_at = amz_date(request)
    verify(request, secrets, sent_at + timedelta(minutes=14))
    verify(request, secrets, sent_at - timedelta(minutes=14))
    refused(request, "RequestTimeTooSkewed", sent_at + timedelta(minutes=16))
    refused(request, "RequestTimeTooSkewed", sent_at - timedelta(minutes=16))
    refused(
        request, "RequestTimeTooSkewed", sent_at + timedelta(seconds=61), skew=timedelta(minutes=1)
    )
    # naive datetimes are UTC
    verify(request, secrets, sent_at.replace(tzinfo=None))


def test_unknown_key_is_refused() -> None:
    request = signed_get()
    with pytest.raises(AuthError) as caught:
        verify(request, lambda key: None, now())
    assert caught.value.code == "InvalidAccessKeyId"


def presigned(key: str = "k", expires: int = 300, **params: str) -> Request:
    s3 = client(signature_version="s3v4")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=expires
    )
    if params:
        url += "&" + urlencode(params)
    return from_url("GET", url, {})


def query_value(request: Request, name: str) -> str:
    return next(value for key, value in request.query if key == name)


def with_query(request: Request, **changes: str) -> Request:
    query = [(key, changes.get(key.replace("-", "_"), value)) for key, value in request.query]
    return Request(request.method, request.raw_path, query, request.headers)


def test_presigned_url_with_an_added_parameter_is_refused() -> None:
    refused(presigned(**{"response-content-type": "text/html"}), "SignatureDoesNotMatch")
    request = presigned()
    refused(
        Request("PUT", request.raw_path, request.query, request.headers), "SignatureDoesNotMatch"
    )


def test_presigned_url_expiry_and_bounds() -> None:
    request = presigned(expires=60)
    issued = datetime.strptime(query_value(request, "X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(
        tzinfo=UTC
    )
    verify(request, secrets, issued + timedelta(seconds=60))
    error = refused(request, "AccessDenied", issued + timedelta(seconds=61))
    assert error.message == "Request has expired" and error.status == 403
    error = refused(request, "AccessDenied", issued - timedelta(minutes=16))
    assert "not valid yet" in error.message
    refused(presigned(expires=604801), "AuthorizationQueryParametersError")
    refused(presigned(expires=3600), "AuthorizationQueryParametersError", max_expires=600)
    refused(with_query(request, X_Amz_Expires="0"), "AuthorizationQueryParametersError")
    refused(with_query(request, X_Amz_Expires="-5"), "AuthorizationQueryParametersError")
    refused(
        with_query(request, X_Amz_Algorithm="AWS4-ECDSA-P256-SHA256"),
        "AuthorizationQueryParametersError",
    )


def test_presigned_url_with_unsigned_amz_header_is_refused() -> None:
    request = presigned()
    refused(with_headers(request, x_amz_meta_a="b"), "AccessDenied")


def test_presigned_and_header_auth_together_are_refused() -> None:
    request = presigned()
    header = signed_get().headers["authorization"]
    refused(with_headers(request, authorization=header), "InvalidRequest")


def test_signature_version_2_is_refused_clearly() -> None:
    # boto3's generate_presigned_url without signature_version="s3v4" makes a V2 URL.
    s3 = client()
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"})
    error = refused(from_url("GET", url, {}), "InvalidRequest")
    assert "Signature Version 4" in error.message
    request = signed_get()
    error = refused(
        with_headers(request, authorization=f"AWS {KEY}:c2lnbmF0dXJl"), "InvalidRequest"
    )
    assert "Signature Version 2" in error.message


def test_anonymous_request_is_refused() -> None:
    refused(Request("GET", "/bkt/k", (), {"host": "h"}), "AccessDenied")


def test_scope_must_name_the_day_s3_and_aws4_request() -> None:
    request = signed_get()
    auth = request.headers["authorization"]
    day = request.headers["x-amz-date"][:8]
    other_day = (amz_date(request) - timedelta(days=1)).strftime("%Y%m%d")
    for wrong in (
        auth.replace(f"/{day}/", f"/{other_day}/"),
        auth.replace("/s3/", "/ec2/"),
        auth.replace("/aws4_request", "/aws5_request"),
        auth.replace(f"Credential={KEY}/", "Credential="),
        auth.replace("SignedHeaders=host;", "SignedHeaders="),
        auth.replace("SignedHeaders=", "SignedHeaders=Host;"),
        auth.replace(", Signature=", ", Signature=zz"),
        auth.split(", Signature=")[0],
        auth + ", Extra=1",
    ):
        refused(with_headers(request, authorization=wrong), "AuthorizationHeaderMalformed")
    refused(
        with_headers(request, authorization=auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512")),
        "InvalidRequest",
    )


def test_any_region_is_accepted_and_echoed() -> None:
    credentials = Credentials(KEY, SECRET)
    request = AWSRequest("GET", "http://127.0.0.1:9000/bkt/k", headers={})
    S3SigV4Auth(credentials, "s3", "metadisk-local-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    assert (
        verify(from_url("GET", request.url, headers), secrets, now()).region == "metadisk-local-1"
    )


def test_a_signature_for_another_service_is_refused() -> None:
    credentials = Credentials(KEY, SECRET)
    request = AWSRequest("GET", "http://127.0.0.1:9000/bkt/k", headers={})
    SigV4Auth(credentials, "ec2", "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    refused(from_url("GET", request.url, headers), "AuthorizationHeaderMalformed")


def test_missing_or_bad_date_and_payload_hash() -> None:
    request = signed_get()
    refused(with_headers(request, x_amz_date=None), "AccessDenied")
    refused(with_headers(request, x_amz_date="2013-05-24T00:00:00Z"), "AccessDenied")
    refused(with_headers(request, x_amz_content_sha256="SOMETHING-ELSE"), "InvalidRequest")


def test_a_presigned_url_signs_no_payload_but_a_digest_sent_along_is_checked() -> None:
    request = presigned()
    digest = hashlib.sha256(b"body").hexdigest()
    result = verify(with_headers(request, x_amz_content_sha256=digest), secrets, now())
    assert result.payload is Payload.SHA256 and result.content_sha256 == digest
    streaming = with_headers(request, x_amz_content_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    refused(streaming, "InvalidRequest")


def test_verified_is_a_plain_value() -> None:
    result = verify(signed_get(), secrets, now())
    assert isinstance(result, Verified)
    assert "key=" not in repr(result.signing)  # the derived key stays out of logs
