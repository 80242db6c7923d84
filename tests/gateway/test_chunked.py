"""aws-chunked decoding and payload checksums: AWS's published examples, botocore's encoder, an
encoder written here from the specification, any split of the input, and tampered bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import zlib
from collections.abc import Sequence

import google_crc32c
import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha1Checksum, Sha256Checksum
from hypothesis import given
from hypothesis import strategies as st

from metadisk.gateway.chunked import MAX_CHUNK, ChunkedDecoder, PayloadChecks, PayloadError
from metadisk.gateway.sigv4 import ChunkSigning, Payload, Verified, signing_key

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
KEY = signing_key(SECRET, "20130524", "us-east-1")
EMPTY = hashlib.sha256(b"").hexdigest()

DOC_DATA = b"a" * 66560
DOC_SIGNED = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n"
    + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n"
    + b"\r\n"
)
DOC_SIGNED_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_TRAILER = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536
    + b"\r\n"
    + b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"\r\nx-amz-checksum-crc32c:sOO8/Q==\r\n"
    + b"x-amz-trailer-signature:"
    + b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    + b"\r\n"
)
DOC_TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"


def verified(
    payload: Payload,
    seed: str = DOC_SIGNED_SEED,
    trailers: Sequence[str] = (),
    length: int | None = None,
) -> Verified:
    return Verified(
        access_key="AKIAIOSFODNN7EXAMPLE",
        region="us-east-1",
        payload=payload,
        signing=ChunkSigning(KEY, SCOPE, DATE, seed),
        decoded_length=length,
        trailer_names=tuple(trailers),
    )


def doc_signed(length: int | None = 66560) -> Verified:
    return verified(Payload.STREAMING_SIGNED, DOC_SIGNED_SEED, length=length)


def doc_trailer() -> Verified:
    return verified(
        Payload.STREAMING_SIGNED_TRAILER, DOC_TRAILER_SEED, ["x-amz-checksum-crc32c"], 66560
    )


def decode(result: Verified, body: bytes, cuts: Sequence[int] = ()) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(result)
    out = bytearray()
    start = 0
    for cut in sorted({*cuts, len(body)}):
        for piece in decoder.feed(body[start:cut]):
            out += piece
        start = cut
    return bytes(out), decoder.finish()


def cuts_of(body: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(body)), max_size=12)


# -- an independent encoder, from the specification ----------------------------------------------


def _mac(text: str) -> str:
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()


def encode_signed(
    data: bytes, chunk: int, seed: str, trailers: dict[str, str] | None = None
) -> bytes:
    """aws-chunked with chunk signatures; a signed trailer when `trailers` is given."""
    out = bytearray()
    previous = seed
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        digest = hashlib.sha256(piece).hexdigest()
        sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{previous}\n{EMPTY}\n{digest}"
        previous = _mac(sts)
        out += f"{len(piece):x};chunk-signature={previous}\r\n".encode()
        if piece or trailers is None:
            out += piece + b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(trailers.items()))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        signature = _mac(f"AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{previous}\n{digest}")
        for name, value in trailers.items():
            out += f"{name}:{value}\r\n".encode()
        out += f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return bytes(out)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def checksum_of(name: str, data: bytes) -> str:
    if name == "x-amz-checksum-crc32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if name == "x-amz-checksum-crc32c":
        return b64(google_crc32c.value(data).to_bytes(4, "big"))
    return b64(hashlib.new(name.removeprefix("x-amz-checksum-"), data).digest())


CHECKSUMS = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-sha512",
]


# -- AWS's published examples ---------------------------------------------------------------------


def test_aws_example_signed_chunks_decode() -> None:
    assert decode(doc_signed(), DOC_SIGNED) == (DOC_DATA, {})


def test_aws_example_signed_trailer_decodes_and_checks_crc32c() -> None:
    assert decode(doc_trailer(), DOC_TRAILER) == (DOC_DATA, {"x-amz-checksum-crc32c": "sOO8/Q=="})


@given(cuts=cuts_of(DOC_SIGNED))
def test_aws_example_decodes_in_any_split(cuts: list[int]) -> None:
    assert decode(doc_signed(), DOC_SIGNED, cuts)[0] == DOC_DATA


@given(cuts=cuts_of(DOC_TRAILER))
def test_aws_trailer_example_decodes_in_any_split(cuts: list[int]) -> None:
    assert decode(doc_trailer(), DOC_TRAILER, cuts)[0] == DOC_DATA


def test_the_encoder_here_reproduces_aws_examples() -> None:
    assert encode_signed(DOC_DATA, 65536, DOC_SIGNED_SEED) == DOC_SIGNED
    trailer = encode_signed(
        DOC_DATA, 65536, DOC_TRAILER_SEED, {"x-amz-checksum-crc32c": "sOO8/Q=="}
    )
    # The documentation's example puts the final chunk's empty line before the trailer too.
    assert trailer.replace(b"\r\nx-amz-checksum", b"\r\n\r\nx-amz-checksum") == DOC_TRAILER


# -- attacks --------------------------------------------------------------------------------------


def refused(result: Verified, body: bytes, code: str) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        decode(result, body)
    assert caught.value.code == code, caught.value.message
    return caught.value


def test_a_tampered_chunk_is_refused() -> None:
    body = bytearray(DOC_SIGNED)
    body[5000] = ord("b")
    refused(doc_signed(), bytes(body), "SignatureDoesNotMatch")
    body = bytearray(DOC_SIGNED)
    body[30] = ord("0") if body[30] != ord("0") else ord("1")  # in the first chunk's signature
    error = refused(doc_signed(None), bytes(body), "SignatureDoesNotMatch")
    assert error.status == 403


def test_reordered_dropped_or_replayed_chunks_are_refused() -> None:
    data = bytes(range(256)) * 40
    body = encode_signed(data, 4096, DOC_SIGNED_SEED)
    parts = body.split(b"\r\n")
    # header, data pairs
    chunks = [parts[i] + b"\r\n" + parts[i + 1] + b"\r\n" for i in range(0, len(parts) - 2, 2)]
    assert b"".join(chunks) == body
    swapped = [chunks[1], chunks[0], *chunks[2:]]
    refused(verified(Payload.STREAMING_SIGNED), b"".join(swapped), "SignatureDoesNotMatch")
    dropped = [chunks[0], *chunks[2:]]
    refused(verified(Payload.STREAMING_SIGNED), b"".join(dropped), "SignatureDoesNotMatch")
    replayed = [chunks[0], chunks[0], *chunks[1:]]
    refused(verified(Payload.STREAMING_SIGNED), b"".join(replayed), "SignatureDoesNotMatch")
    other_seed = verified(Payload.STREAMING_SIGNED, seed=DOC_TRAILER_SEED)
    refused(other_seed, body, "SignatureDoesNotMatch")


@given(end=st.integers(0, len(DOC_SIGNED) - 1))
def test_a_truncated_body_is_refused(end: int) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(doc_signed(None), DOC_SIGNED[:end])
    assert caught.value.code == "IncompleteBody"


@given(end=st.integers(0, len(DOC_TRAILER) - 5))
def test_a_body_cut_before_its_trailer_signature_is_refused(end: int) -> None:
    with pytest.raises(PayloadError):
        decode(doc_trailer(), DOC_TRAILER[:end])


def test_a_trailer_missing_only_its_closing_line_is_accepted() -> None:
    assert decode(doc_trailer(), DOC_TRAILER[:-2])[0] == DOC_DATA


def test_a_tampered_trailer_is_refused() -> None:
    body = DOC_TRAILER.replace(b"sOO8/Q==", b"sOO8/A==")
    refused(doc_trailer(), body, "SignatureDoesNotMatch")
    missing_signature = DOC_TRAILER.split(b"x-amz-trailer-signature")[0] + b"\r\n"
    refused(doc_trailer(), missing_signature, "IncompleteBody")


def test_a_wrong_but_signed_trailer_checksum_is_bad_digest() -> None:
    data = b"payload" * 1000
    wrong = checksum_of("x-amz-checksum-crc32", b"other")
    body = encode_signed(data, 1000, DOC_TRAILER_SEED, {"x-amz-checksum-crc32": wrong})
    result = verified(
        Payload.STREAMING_SIGNED_TRAILER, DOC_TRAILER_SEED, ["x-amz-checksum-crc32"], len(data)
    )
    error = refused(result, body, "BadDigest")
    assert "CRC32" in error.message


def test_a_wrong_unsigned_trailer_checksum_is_bad_digest() -> None:
    body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    result = verified(Payload.STREAMING_UNSIGNED_TRAILER, trailers=["x-amz-checksum-crc32"])
    refused(result, body, "BadDigest")
    garbled = body.replace(b"AAAAAA==", b"not base64!")
    refused(result, garbled, "InvalidRequest")


def test_decoded_length_must_match() -> None:
    refused(doc_signed(66561), DOC_SIGNED, "IncompleteBody")
    refused(doc_signed(66559), DOC_SIGNED, "InvalidRequest")
    body = b"5\r\nhello\r\n0\r\n\r\n"
    decoder = ChunkedDecoder(verified(Payload.STREAMING_UNSIGNED_TRAILER), decoded_length=4)
    with pytest.raises(PayloadError):
        decoder.feed(body)


def test_framing_errors_are_refused() -> None:
    unsigned = verified(Payload.STREAMING_UNSIGNED_TRAILER)
    for body in (
        b"5\r\nhello!\r\n0\r\n\r\n",  # longer than declared
        b"5;chunk-signature=00\r\nhello\r\n0\r\n\r\n",  # an extension the unsigned form has not
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",  # LF alone
        b"0\r\n\r\nmore",  # data after the end
        b"0\r\nx-amz-meta-sneaky:1\r\n\r\n",  # an unannounced trailer
        b"0\r\nno colon\r\n\r\n",
    ):
        with pytest.raises(PayloadError) as caught:
            decode(unsigned, body)
        assert caught.value.code == "InvalidRequest", body
    refused(doc_signed(None), DOC_SIGNED.replace(b"10000;", b"10000 ;"), "InvalidRequest")


def test_memory_is_bounded() -> None:
    unsigned = verified(Payload.STREAMING_UNSIGNED_TRAILER)
    with pytest.raises(PayloadError) as caught:
        ChunkedDecoder(unsigned).feed(f"{MAX_CHUNK + 1:x}\r\n".encode())
    assert caught.value.code == "InvalidRequest"
    with pytest.raises(PayloadError):
        ChunkedDecoder(unsigned, max_chunk=1024).feed(b"401\r\n")
    with pytest.raises(PayloadError):
        ChunkedDecoder(unsigned).feed(b"1" * 5000)  # a header line that never ends
    decoder = ChunkedDecoder(
        verified(Payload.STREAMING_UNSIGNED_TRAILER, trailers=["x-amz-checksum-sha256"])
    )
    decoder.feed(b"0\r\n")
    with pytest.raises(PayloadError):
        for _ in range(10):
            decoder.feed(b"x-amz-checksum-sha256:" + b"A" * 1000)


def test_payload_streams_before_its_chunk_ends() -> None:
    decoder = ChunkedDecoder(doc_signed())
    head = DOC_SIGNED.index(b"\r\n") + 2
    pieces = decoder.feed(DOC_SIGNED[: head + 1000])
    assert b"".join(bytes(p) for p in pieces) == b"a" * 1000
    assert decoder.decoded == 1000


def test_unsupported_trailer_checksums_are_refused_up_front() -> None:
    for name in ("x-amz-checksum-crc64nvme", "x-amz-meta-other"):
        with pytest.raises(PayloadError) as caught:
            ChunkedDecoder(verified(Payload.STREAMING_UNSIGNED_TRAILER, trailers=[name]))
        assert caught.value.code == "InvalidRequest" and name in caught.value.message
    with pytest.raises(ValueError):
        ChunkedDecoder(verified(Payload.UNSIGNED))


# -- round trips ----------------------------------------------------------------------------------


@given(
    data=st.binary(max_size=5000),
    chunk=st.integers(1, 2000),
    checksum=st.sampled_from([None, *CHECKSUMS]),
    cuts=st.lists(st.integers(0, 8000), max_size=10),
)
def test_signed_bodies_round_trip(
    data: bytes, chunk: int, checksum: str | None, cuts: list[int]
) -> None:
    if checksum is None:
        body = encode_signed(data, chunk, DOC_SIGNED_SEED)
        result = verified(Payload.STREAMING_SIGNED, length=len(data))
        assert decode(result, body, [c for c in cuts if c <= len(body)]) == (data, {})
        return
    trailers = {checksum: checksum_of(checksum, data)}
    body = encode_signed(data, chunk, DOC_TRAILER_SEED, trailers)
    result = verified(Payload.STREAMING_SIGNED_TRAILER, DOC_TRAILER_SEED, [checksum], len(data))
    assert decode(result, body, [c for c in cuts if c <= len(body)]) == (data, trailers)


BOTOCORE_CHECKSUMS = [
    ("x-amz-checksum-crc32", Crc32Checksum),
    ("x-amz-checksum-sha1", Sha1Checksum),
    ("x-amz-checksum-sha256", Sha256Checksum),
]


@given(
    data=st.binary(max_size=5000),
    chunk=st.integers(1, 2000),
    algorithm=st.sampled_from(BOTOCORE_CHECKSUMS),
    cuts=st.lists(st.integers(0, 8000), max_size=10),
)
def test_botocore_unsigned_trailer_bodies_round_trip(
    data: bytes, chunk: int, algorithm: tuple[str, type], cuts: list[int]
) -> None:
    name, checksum_cls = algorithm
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=checksum_cls, checksum_name=name, chunk_size=chunk
    )
    body = b"".join(wrapper)
    result = verified(Payload.STREAMING_UNSIGNED_TRAILER, trailers=[name], length=len(data))
    out, trailers = decode(result, body, [c for c in cuts if c <= len(body)])
    assert out == data and trailers == {name: checksum_of(name, data)}


# -- PayloadChecks --------------------------------------------------------------------------------


def checked(result: Verified, headers: dict[str, str], data: bytes, cuts: Sequence[int]) -> None:
    checks = PayloadChecks(result, headers)
    start = 0
    for cut in sorted({*cuts, len(data)}):
        checks.update(memoryview(data)[start:cut])
        start = cut
    checks.finish()


@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_payload_checks_accept_the_right_digests(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    sha = hashlib.sha256(data).hexdigest()
    result = Verified("k", "r", Payload.SHA256, ChunkSigning(KEY, SCOPE, DATE, ""), False, sha)
    headers = {name: checksum_of(name, data) for name in CHECKSUMS}
    headers["x-amz-checksum-algorithm"] = "CRC32"
    checked(result, headers, data, cuts)


def test_payload_checks_known_values() -> None:
    unsigned = verified(Payload.UNSIGNED)
    check = b"123456789"
    checked(unsigned, {"x-amz-checksum-crc32": b64(bytes.fromhex("cbf43926"))}, check, [3])
    checked(unsigned, {"x-amz-checksum-crc32c": b64(bytes.fromhex("e3069283"))}, check, [3])


def test_payload_checks_refuse_wrong_digests() -> None:
    data = b"the body"
    wrong_sha = hashlib.sha256(b"another body").hexdigest()
    result = Verified(
        "k", "r", Payload.SHA256, ChunkSigning(KEY, SCOPE, DATE, ""), False, wrong_sha
    )
    with pytest.raises(PayloadError) as caught:
        checked(result, {}, data, [])
    assert caught.value.code == "XAmzContentSHA256Mismatch"
    for name in CHECKSUMS:
        with pytest.raises(PayloadError) as caught:
            checked(verified(Payload.UNSIGNED), {name: checksum_of(name, b"other")}, data, [])
        assert caught.value.code == "BadDigest"


def test_payload_checks_refuse_bad_or_unsupported_headers() -> None:
    for headers in (
        {"x-amz-checksum-crc32": "!!"},
        {"x-amz-checksum-crc32": b64(b"12345")},
        {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="},
    ):
        with pytest.raises(PayloadError) as caught:
            PayloadChecks(verified(Payload.UNSIGNED), headers)
        assert caught.value.code == "InvalidRequest"
