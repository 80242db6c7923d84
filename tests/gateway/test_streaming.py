"""aws-chunked uploads with chunk signatures, end to end through a real gateway.

No S3 SDK in Python sends them over plain HTTP, so the request is built here: botocore signs the
headers (its signature is the seed), and each chunk's signature is chained from it with the
signing key derived here, independently of the gateway's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import urllib.error
import urllib.request
import zlib
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.gateway.harness import S3World

EMPTY = hashlib.sha256(b"").hexdigest()
CHUNK = 64 * 1024


class StreamingAuth(S3SigV4Auth):
    """botocore's S3 signer, told the payload is aws-chunked with chunk signatures."""

    def __init__(self, credentials: Credentials, trailer: bool) -> None:
        super().__init__(credentials, "s3", "us-east-1")
        self._trailer = trailer

    def payload(self, request: Any) -> str:
        if self._trailer:
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def chunked_put(
    world: S3World, bucket: str, key: str, data: bytes, *, trailer: bool, tamper: bool = False
) -> tuple[int, bytes]:
    url = f"{world.url}/{bucket}/{key}"
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    request = AWSRequest(method="PUT", url=url, headers=headers, data=b"")
    credentials = Credentials(world.full.access_key, world.full.secret_key)
    StreamingAuth(credentials, trailer).add_auth(request)
    authorization = request.headers["Authorization"]
    seed = authorization.rsplit("Signature=", 1)[1]
    amz_date = request.headers["X-Amz-Date"]
    day = amz_date[:8]
    scope = f"{day}/us-east-1/s3/aws4_request"
    key_bytes = _hmac(("AWS4" + world.full.secret_key).encode(), day)
    for part in ("us-east-1", "s3", "aws4_request"):
        key_bytes = _hmac(key_bytes, part)

    body = bytearray()
    previous = seed
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]
    for number, piece in enumerate(pieces):
        digest = hashlib.sha256(piece).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{EMPTY}\n{digest}"
        previous = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper and number == 1:
            piece = bytes([piece[0] ^ 1]) + piece[1:]
        body += f"{len(piece):x};chunk-signature={previous}\r\n".encode()
        if piece or not trailer:
            body += piece + b"\r\n"
    if trailer:
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        canonical = f"x-amz-checksum-crc32:{crc}\n"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{digest}"
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        body += (
            f"x-amz-checksum-crc32:{crc}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()
        )
    sent = urllib.request.Request(url, data=bytes(body), method="PUT")
    for name, value in request.headers.items():
        sent.add_header(name, value)
    sent.add_header("Content-Length", str(len(body)))
    try:
        with urllib.request.urlopen(sent, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("trailer", [False, True])
def test_signed_chunks_upload(world: S3World, s3: Any, bucket: str, trailer: bool) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    status, body = chunked_put(world, bucket, "streamed", data, trailer=trailer)
    assert status == 200, body
    got = s3.get_object(Bucket=bucket, Key="streamed")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_a_tampered_chunk_stores_nothing(world: S3World, s3: Any, bucket: str) -> None:
    data = os.urandom(300_000)
    status, body = chunked_put(world, bucket, "forged", data, trailer=False, tamper=True)
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="forged")
