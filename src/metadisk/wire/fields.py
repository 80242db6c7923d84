"""Field types shared by the JSON bodies: canonical base64url bytes, signed messages, node ids,
redundancy.

Each is an `Annotated` type: pydantic decodes the wire form into the Python value when it
validates (so a handler or a client gets bytes, an `OrderLimit`, a `RedundancyScheme`) and
encodes it back when it serializes; the OpenAPI document shows the wire form. Limit a `B64`
field's decoded size at the use site with ``Annotated[B64, Field(max_length=n)]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import CoreError
from metadisk.core.identity import NodeId
from metadisk.core.messages import OrderLimit, PieceReceipt

MAX_U63 = (1 << 63) - 1
# No JSON field carries more than this much base64 text: the cap is checked before decoding, so an
# oversized value costs nothing (each field's own limit is checked on the decoded bytes).
MAX_B64_TEXT = 1 << 20
HEX_PATTERN = r"^[0-9a-f]*$"
# The largest request integer: 2**53 - 1, the last one a double holds exactly (RFC 8259's
# interoperable range). Tools that compare numbers as doubles (JavaScript, JSON Schema
# generators) read 2**63 - 1 as 2**63, and drew values above it that the bridge refused.
MAX_REQUEST_INT = (1 << 53) - 1
# What an object key is (encrypted paths are printable ASCII), and a bucket name (S3's rules:
# 3 to 63 of a-z 0-9 . -, a letter or digit at each end, no ".."), for the document; the
# bridge checks both where it uses them, with its own codes (invalid-key, invalid-bucket-name).
KEY_PATTERN = r"^[!-~]*$"
BUCKET_PATTERN = r"^[a-z0-9](\.?[a-z0-9-])*\.?[a-z0-9]$"
MIN_BUCKET_NAME = 3
MAX_BUCKET_NAME = 63


def _json_int(value: Any) -> Any:
    # pydantic's lax mode would take true as 1 and "5" as 5; JSON Schema's integer is neither.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    return value


# A request's integer: a JSON number with no fraction (2.0 is 2, as JSON Schema says), never a
# boolean or a string. Bound it at the use site with ``Field(ge=..., le=...)``; inside another
# type (a list's items, an optional), bounds go before the check, or the document loses them:
# ``Annotated[int, Field(ge=0), JSON_INT]``.
JSON_INT = BeforeValidator(_json_int)
JsonInt = Annotated[int, JSON_INT]


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected base64url text")
    if len(value) > MAX_B64_TEXT:
        raise ValueError(f"longer than {MAX_B64_TEXT} characters")
    return b64decode(value)  # DecodeError is a ValueError: pydantic reports the field invalid


# Canonical unpadded base64url, exactly what `b64decode` accepts: whole quads, then a tail of
# two or three characters whose unused low bits are zero (one text per byte string).
CANONICAL_B64_PATTERN = (
    r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
)


def b64_length(size: int) -> int:
    """Characters of the unpadded base64url text of `size` bytes."""
    return 4 * (size // 3) + (0, 2, 3)[size % 3]


def b64_schema(max_bytes: int | None = None, description: str = "base64url") -> WithJsonSchema:
    """The document's view of a `B64` field: canonical text, at most `max_bytes` once decoded
    (every shorter canonical text decodes to fewer bytes, so a length bound says it exactly).

    Pair it with the decoded limit: ``Annotated[B64, Field(max_length=n), b64_schema(n)]``.
    """
    longest = MAX_B64_TEXT if max_bytes is None else b64_length(max_bytes)
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": CANONICAL_B64_PATTERN,
            "maxLength": longest,
            "description": description,
        }
    )


B64 = Annotated[
    bytes,
    PlainValidator(_bytes),
    PlainSerializer(b64encode, return_type=str),
    b64_schema(),
]


def _decoder(decode: Callable[[bytes], Any], kind: type) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        try:
            return decode(_bytes(value))
        except CoreError as exc:
            raise ValueError(str(exc)) from exc

    return parse


def _encoded(message: OrderLimit | PieceReceipt) -> str:
    return b64encode(message.encode())


def _message_schema(name: str) -> WithJsonSchema:
    return b64_schema(description=f"base64url of a {name}")


SignedOrderLimit = Annotated[
    OrderLimit,
    PlainValidator(_decoder(OrderLimit.decode, OrderLimit)),
    PlainSerializer(_encoded, return_type=str),
    _message_schema("signed OrderLimit"),
]
SignedReceipt = Annotated[
    PieceReceipt,
    PlainValidator(_decoder(PieceReceipt.decode, PieceReceipt)),
    PlainSerializer(_encoded, return_type=str),
    _message_schema("farmer-signed PieceReceipt"),
]


def _node_id(value: Any) -> NodeId:
    if isinstance(value, NodeId):
        return value
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ValueError("a node id is 64 lowercase hex digits")
    try:
        return NodeId.from_hex(value)
    except CoreError as exc:
        raise ValueError(str(exc)) from exc


HexNodeId = Annotated[
    NodeId,
    PlainValidator(_node_id),
    PlainSerializer(NodeId.hex, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "hex node id"}),
]


def _redundancy(value: Any) -> RedundancyScheme:
    if isinstance(value, RedundancyScheme):
        return value
    if not isinstance(value, dict) or set(value) != {"k", "m", "o", "n"}:
        raise ValueError("redundancy is an object of exactly k, m, o, n")
    if not all(type(v) is int for v in value.values()):
        raise ValueError("k, m, o, n are integers")
    try:
        return RedundancyScheme(value["k"], value["m"], value["o"], value["n"])
    except CoreError as exc:
        raise ValueError(str(exc)) from exc


def _redundancy_json(scheme: RedundancyScheme) -> dict[str, int]:
    return {"k": scheme.k, "m": scheme.m, "o": scheme.o, "n": scheme.n}


Redundancy = Annotated[
    RedundancyScheme,
    PlainValidator(_redundancy),
    PlainSerializer(_redundancy_json, return_type=dict),
    WithJsonSchema(
        {
            "type": "object",
            "required": ["k", "m", "o", "n"],
            "properties": {
                "k": {"type": "integer", "description": "pieces needed to rebuild a segment"},
                "m": {"type": "integer", "description": "repair threshold"},
                "o": {"type": "integer", "description": "success threshold of an upload"},
                "n": {"type": "integer", "description": "order limits handed out per segment"},
            },
            "additionalProperties": False,
        }
    ),
]
