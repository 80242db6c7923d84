"""Piece hashing and Merkle proofs: incremental hashing, proofs for every leaf, attacks, vectors."""

from __future__ import annotations

import array
import json
import random
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadisk.core.erasure import GLOBAL, LOCAL, ErasureCodec
from metadisk.core.errors import DecodeError, IntegrityError
from metadisk.core.merkle import (
    LEAF_SIZE,
    MAX_DEPTH,
    MerkleProof,
    PieceDigest,
    PieceHasher,
    digest_piece,
    leaf_count,
    leaf_hash,
    leaf_span,
    merkle_root,
    prove,
    verify_leaf,
    verify_piece,
)

VECTORS = Path(__file__).parent / "vectors" / "merkle.json"


def piece_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def fixed_bytes(size: int) -> bytes:
    """Deterministic test-vector input: the BLAKE3 XOF of a fixed label."""
    return blake3.blake3(b"metadisk test vector").digest(length=size)


# Sizes around leaf boundaries, up to a few leaves so every odd/even tree shape shows up.
SIZES = st.one_of(
    st.sampled_from([0, 1, LEAF_SIZE - 1, LEAF_SIZE, LEAF_SIZE + 1, 2 * LEAF_SIZE, 3 * LEAF_SIZE]),
    st.integers(0, 7 * LEAF_SIZE + 100),
)


@given(SIZES, st.lists(st.integers(1, 3 * LEAF_SIZE), max_size=12), st.integers(0, 2))
def test_hasher_equals_digest_for_any_chunking(size: int, cuts: list[int], kind: int) -> None:
    piece = piece_of(size, size)
    hasher = PieceHasher()
    pos = 0
    for cut in [*cuts, size]:
        chunk = piece[pos : pos + cut]
        # Every buffer type a caller streams from: bytes, bytearray, memoryview slices.
        hasher.update((bytes, bytearray, memoryview)[kind](chunk))
        pos += len(chunk)
    digest = hasher.finish()
    assert digest == digest_piece(piece)
    assert digest.size == size
    assert len(digest.leaf_hashes) == leaf_count(size)
    assert digest.piece_hash == merkle_root(digest.leaf_hashes)
    # A plain BLAKE3 of the bytes is not the piece hash: the root binds leaf positions and count.
    assert digest.piece_hash != blake3.blake3(piece).digest()


def test_hasher_accepts_wide_buffers_and_refuses_reuse() -> None:
    words = array.array("I", range(50_000))  # itemsize 4: hashed as its raw bytes
    hasher = PieceHasher()
    hasher.update(memoryview(words))
    assert hasher.finish() == digest_piece(words.tobytes())
    with pytest.raises(ValueError):
        hasher.update(b"more")
    with pytest.raises(ValueError):
        hasher.finish()


@settings(max_examples=25)
@given(st.integers(1, 9 * LEAF_SIZE), st.integers(0, 2**32))
def test_every_leaf_proves_and_verifies(size: int, seed: int) -> None:
    piece = piece_of(size, seed)
    digest = digest_piece(piece)
    for index in range(leaf_count(size)):
        proof = prove(digest.leaf_hashes, index)
        start, end = leaf_span(size, index)
        verify_leaf(digest.piece_hash, piece[start:end], proof)
        assert MerkleProof.decode(proof.encode()) == proof


@given(st.integers(1, 1000), st.data())
def test_proofs_over_many_leaves(count: int, data: st.DataObject) -> None:
    # Deep and odd-shaped trees, cheaply: only the proven leaf needs real bytes; the tree takes
    # any 32-byte values as the other leaf hashes.
    index = data.draw(st.integers(0, count - 1))
    size = LEAF_SIZE if index < count - 1 else data.draw(st.integers(1, LEAF_SIZE))
    leaf = piece_of(size, index)
    hashes = [random.Random(i).randbytes(32) for i in range(count)]
    hashes[index] = leaf_hash(index, leaf)
    proof = prove(hashes, index)
    assert len(proof.siblings) <= (count - 1).bit_length()
    verify_leaf(merkle_root(hashes), leaf, proof)
    assert MerkleProof.decode(proof.encode()) == proof


def proof_case(size: int = 5 * LEAF_SIZE + 1234) -> tuple[bytes, PieceDigest]:
    piece = piece_of(size, 77)
    return piece, digest_piece(piece)


def leaf_of(piece: bytes, index: int) -> bytes:
    start, end = leaf_span(len(piece), index)
    return piece[start:end]


@given(st.integers(0, 5), st.data())
def test_flipped_bit_fails(index: int, data: st.DataObject) -> None:
    piece, digest = proof_case()
    leaf = bytearray(leaf_of(piece, index))
    bit = data.draw(st.integers(0, len(leaf) * 8 - 1))
    leaf[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, bytes(leaf), prove(digest.leaf_hashes, index))


@given(st.integers(0, 5), st.integers(0, 5))
def test_leaf_under_another_index_fails(index: int, other: int) -> None:
    piece, digest = proof_case(6 * LEAF_SIZE)  # all leaves full size, so only the index differs
    if index == other:
        return
    proof = prove(digest.leaf_hashes, index)
    moved = MerkleProof(other, proof.leaf_count, proof.siblings)
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, leaf_of(piece, index), moved)
    with pytest.raises(IntegrityError):  # another leaf's bytes with this leaf's proof
        verify_leaf(digest.piece_hash, leaf_of(piece, other), proof)


def test_wrong_root_fails() -> None:
    piece, digest = proof_case()
    proof = prove(digest.leaf_hashes, 2)
    other = digest_piece(piece[:-1]).piece_hash
    for root in (other, bytes(32), digest.piece_hash[:31], digest.piece_hash + b"\0", b""):
        with pytest.raises(IntegrityError):
            verify_leaf(root, leaf_of(piece, 2), proof)
    with pytest.raises(IntegrityError):
        verify_leaf(blake3.blake3(piece).digest(), leaf_of(piece, 2), proof)


@pytest.mark.parametrize("index", range(6))
def test_truncated_and_extended_siblings_fail(index: int) -> None:
    piece, digest = proof_case()
    proof = prove(digest.leaf_hashes, index)
    leaf = leaf_of(piece, index)
    variants = [
        proof.siblings[:-1],
        proof.siblings[1:],
        (*proof.siblings, bytes(32)),
        (*proof.siblings, proof.siblings[-1]),
        (bytes(32), *proof.siblings),
        (),
    ]
    for siblings in variants:
        with pytest.raises(IntegrityError):
            verify_leaf(digest.piece_hash, leaf, MerkleProof(index, proof.leaf_count, siblings))


def test_wrong_leaf_count_fails() -> None:
    piece, digest = proof_case(4 * LEAF_SIZE)
    proof = prove(digest.leaf_hashes, 0)  # two siblings in a 4-leaf tree, as in a 3-leaf one
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, leaf_of(piece, 0), MerkleProof(0, 3, proof.siblings))


def test_leaf_sizes_are_checked() -> None:
    piece, digest = proof_case()  # 6 leaves, the last one 1234 bytes
    middle = prove(digest.leaf_hashes, 1)
    with pytest.raises(IntegrityError, match="expected"):
        verify_leaf(digest.piece_hash, leaf_of(piece, 1)[:-1], middle)
    last = prove(digest.leaf_hashes, 5)
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, leaf_of(piece, 5) + b"\0", last)
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, b"", last)
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, "text", last)  # type: ignore[arg-type]


def test_node_cannot_pass_for_a_leaf() -> None:
    # Two leaf hashes side by side are the input of their parent node; as a one-leaf piece of 64
    # bytes they must give another root, or a prover could cut a tree short.
    piece = piece_of(2 * LEAF_SIZE, 5)
    digest = digest_piece(piece)
    pair = digest.leaf_hashes[0] + digest.leaf_hashes[1]
    with pytest.raises(IntegrityError):
        verify_leaf(digest.piece_hash, pair, MerkleProof(0, 1, ()))
    assert digest_piece(pair).piece_hash != digest.piece_hash


def test_root_follows_the_documented_construction() -> None:
    # Recomputed from the module docstring with plain BLAKE3, independent of merkle.py's code.
    def key(name: str) -> bytes:
        return blake3.blake3(b"", derive_key_context=f"metadisk 2026 merkle {name} v1").digest()

    def h(name: str, data: bytes) -> bytes:
        return blake3.blake3(data, key=key(name)).digest()

    piece = piece_of(2 * LEAF_SIZE + 10, 4)
    leaves = [
        h("leaf", piece[i * LEAF_SIZE : (i + 1) * LEAF_SIZE] + i.to_bytes(8, "big"))
        for i in range(3)
    ]
    top = h("node", h("node", leaves[0] + leaves[1]) + leaves[2])
    digest = digest_piece(piece)
    assert list(digest.leaf_hashes) == leaves
    assert digest.piece_hash == h("root", (3).to_bytes(8, "big") + top)
    assert digest_piece(b"").piece_hash == h("root", bytes(8))


def test_odd_node_is_not_duplicated() -> None:
    # With a duplicated last node, 3 leaves and 4 leaves (the last repeated) would share a root.
    hashes = [leaf_hash(i, bytes([i]) * LEAF_SIZE) for i in range(3)]
    assert merkle_root(hashes) != merkle_root([*hashes, hashes[2]])
    assert len(prove(hashes, 2).siblings) == 1  # promoted past the level where it had no pair


def test_empty_piece() -> None:
    digest = digest_piece(b"")
    assert digest.size == 0
    assert digest.leaf_hashes == ()
    assert leaf_count(0) == 0
    assert digest.piece_hash == merkle_root(())
    assert digest.piece_hash != digest_piece(b"\0").piece_hash
    with pytest.raises(IntegrityError):
        prove((), 0)
    with pytest.raises(IntegrityError):
        leaf_span(0, 0)


def test_leaf_geometry() -> None:
    assert [leaf_count(s) for s in (0, 1, LEAF_SIZE, LEAF_SIZE + 1)] == [0, 1, 1, 2]
    assert leaf_span(LEAF_SIZE * 2 + 5, 2) == (2 * LEAF_SIZE, 2 * LEAF_SIZE + 5)
    for index in (-1, 3, 1.0):
        with pytest.raises(IntegrityError):
            leaf_span(LEAF_SIZE * 2 + 5, index)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        leaf_count(-1)


def test_prove_rejects_bad_input() -> None:
    hashes = digest_piece(piece_of(3 * LEAF_SIZE, 1)).leaf_hashes
    for index in (-1, 3, 1.0):
        with pytest.raises(IntegrityError):
            prove(hashes, index)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        prove([*hashes[:2], b"short"], 0)


def test_verify_piece() -> None:
    piece = piece_of(1000, 3)
    verify_piece(piece, digest_piece(piece).piece_hash)
    for wrong in (digest_piece(piece[1:]).piece_hash, blake3.blake3(piece).digest(), b"", "hash"):
        with pytest.raises(IntegrityError):
            verify_piece(piece, wrong)  # type: ignore[arg-type]


def test_piece_digest_checks_itself() -> None:
    digest = digest_piece(piece_of(LEAF_SIZE + 1, 2))
    with pytest.raises(DecodeError):
        PieceDigest(digest.size + LEAF_SIZE, digest.piece_hash, digest.leaf_hashes)
    with pytest.raises(DecodeError):
        PieceDigest(digest.size, digest.piece_hash[:31], digest.leaf_hashes)
    with pytest.raises(DecodeError):
        PieceDigest(-1, digest.piece_hash, ())
    with pytest.raises(DecodeError):
        PieceDigest(digest.size, digest.piece_hash, (b"x" * 32, b"y"))
    as_list: Any = list(digest.leaf_hashes)  # a list from storage is kept as a tuple
    assert PieceDigest(digest.size, digest.piece_hash, as_list) == digest


def test_proof_fields_are_checked() -> None:
    for index, count, siblings in [
        (0, 0, ()),
        (1, 1, ()),
        (-1, 2, ()),
        (0, 1 << 32, ()),
        (0, 2, (b"short",)),
        (0, 2, (bytes(32),) * (MAX_DEPTH + 1)),
        (0, 2, ("x" * 32,)),
    ]:
        with pytest.raises(DecodeError):
            MerkleProof(index, count, siblings)  # type: ignore[arg-type]


def valid_proof() -> MerkleProof:
    return prove(digest_piece(piece_of(5 * LEAF_SIZE, 8)).leaf_hashes, 4)


def test_malformed_proof_encodings() -> None:
    encoded = valid_proof().encode()
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            MerkleProof.decode(encoded[:cut])
    header, body = encoded[:2], encoded[2:]
    bad = [
        encoded + b"\0",  # trailing byte
        b"\x40" + encoded[1:],  # another message's tag
        encoded[:1] + b"\x02" + body,  # unknown version
        header + (5).to_bytes(4, "big") + body[4:],  # index = count
        header + body[:4] + (0).to_bytes(4, "big") + body[8:],  # no leaves
        header + body[:8] + bytes([MAX_DEPTH + 1]) + body[9:] + bytes(32 * 31),  # too deep
        header + body[:8] + bytes([3]) + body[9:],  # count says 3, 1 sibling follows
    ]
    for data in bad:
        with pytest.raises(DecodeError):
            MerkleProof.decode(data)
    with pytest.raises(DecodeError):
        MerkleProof.decode("text")  # type: ignore[arg-type]


@given(st.binary(max_size=120))
def test_proof_decode_is_canonical_or_fails(data: bytes) -> None:
    try:
        proof = MerkleProof.decode(data)
    except DecodeError:
        return
    assert proof.encode() == data


# ---- fixed vectors: any change to these formats must be deliberate ----


def compute_vectors() -> dict[str, Any]:
    """The contents of vectors/merkle.json; `python tests/core/test_merkle.py` prints them."""
    digests = []
    for size in (0, 1, LEAF_SIZE, LEAF_SIZE * 5 // 2):
        digest = digest_piece(fixed_bytes(size))
        digests.append(
            {
                "size": size,
                "piece_hash": digest.piece_hash.hex(),
                "leaf_hashes": [h.hex() for h in digest.leaf_hashes],
            }
        )
    five = digest_piece(fixed_bytes(5 * LEAF_SIZE - 7))
    rs: dict[str, Any] = {}
    for name, scheme, size in (("local", LOCAL, 1000), ("global", GLOBAL, 3001)):
        codec = ErasureCodec(scheme.k, scheme.n)
        pieces = codec.encode(fixed_bytes(size))
        rs[name] = {
            "k": scheme.k,
            "n": scheme.n,
            "segment_size": size,
            "piece_size": codec.piece_size(size),
            "pieces": [
                {"head": p[:16].hex(), "blake3": blake3.blake3(p).hexdigest()} for p in pieces
            ],
        }
    return {
        "input": "BLAKE3 XOF of b'metadisk test vector', first `size` bytes",
        "leaf_size": LEAF_SIZE,
        "digests": digests,
        "proof": {
            "piece_size": 5 * LEAF_SIZE - 7,
            "merkle_root": five.piece_hash.hex(),
            "leaf_index": 4,
            "encoded": prove(five.leaf_hashes, 4).encode().hex(),
        },
        "redundancy": {"local": LOCAL.encode().hex(), "global": GLOBAL.encode().hex()},
        "erasure": rs,
    }


def test_vectors() -> None:
    stored = json.loads(VECTORS.read_text())
    computed = compute_vectors()
    assert stored.keys() == computed.keys()
    for key in stored:
        assert stored[key] == computed[key], key


def test_vector_proof_verifies() -> None:
    vector = json.loads(VECTORS.read_text())["proof"]
    piece = fixed_bytes(vector["piece_size"])
    proof = MerkleProof.decode(bytes.fromhex(vector["encoded"]))
    verify_leaf(bytes.fromhex(vector["merkle_root"]), leaf_of(piece, vector["leaf_index"]), proof)


def test_vector_pieces_decode() -> None:
    for vector in json.loads(VECTORS.read_text())["erasure"].values():
        codec = ErasureCodec(vector["k"], vector["n"])
        data = fixed_bytes(vector["segment_size"])
        pieces = codec.encode(data)
        tail = {i: pieces[i] for i in range(vector["n"] - vector["k"], vector["n"])}
        assert codec.decode(tail, vector["segment_size"]) == data


if __name__ == "__main__":
    print(json.dumps(compute_vectors(), indent=1))
