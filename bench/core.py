"""Per-core throughput of metadisk's core stages on this machine.

    python bench/core.py            # full run: 64 MiB segments, ~1 minute
    python bench/core.py --quick    # smoke run: 8 MiB segments, a few seconds
    python bench/core.py --tuned-malloc   # glibc keeps freed memory (see docs/core-erasure.md)

Every stage runs on one thread, so MiB/s is per core, counted in bytes of segment (plaintext for
encryption, ciphertext for erasure coding). Each figure is the best of several runs after a
warm-up. Two columns: "new" returns fresh bytes (`encrypt_segment`, `ErasureCodec.encode`), whose
page faults cost more than the work on these machines; "reused" writes into buffers allocated once
(`*_into`), as a pipeline does. Targets are checked against the better column. The script never
fails on a missed target: it prints "short".
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import blake3

from metadisk.core.content import (
    ciphertext_size,
    decrypt_segment,
    decrypt_segment_into,
    encrypt_segment,
    encrypt_segment_into,
)
from metadisk.core.erasure import ErasureCodec
from metadisk.core.merkle import LEAF_SIZE, PieceHasher

MiB = 1 << 20
KEY = bytes(range(32))

TARGETS = {  # MiB/s per core
    "encrypt+hash": 1536,
    "rs encode 4/10": 500,
    "rs encode 29/80": 300,
}


@dataclass
class Row:
    stage: str
    size: int
    new: float
    reused: float | None

    def line(self) -> str:
        target = TARGETS.get(self.stage)
        best = max(self.new, self.reused or 0.0)
        reused = f"{self.reused:8.0f}" if self.reused is not None else f"{'-':>8}"
        mark = ""
        if target is not None:
            mark = f">= {target:5d}  {'pass' if best >= target else 'short'}"
        return f"{self.stage:24} {self.size / MiB:6.1f} {self.new:8.0f} {reused}   {mark}"


def best_rate(size: int, run: Callable[[], object], reps: int) -> float:
    """MiB/s of the fastest of `reps` runs, after one warm-up run."""
    run()
    fastest = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - start)
    return size / MiB / fastest


def tune_malloc() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the kernel (what a worker
    process can do at start); False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return bool(
        libc.mallopt(m_mmap_threshold, 512 * MiB)
        and libc.mallopt(m_trim_threshold, 1 << 30)
        and libc.mallopt(m_top_pad, 64 * MiB)
    )


def bench_crypto(segment: int, reps: int) -> list[Row]:
    plaintext = os.urandom(segment)
    sealed = encrypt_segment(KEY, 7, plaintext)
    out = bytearray(ciphertext_size(segment))
    back = bytearray(segment)
    piece = bytearray(sealed)
    size = len(sealed)

    def hash_buffer(data: bytes | bytearray | memoryview) -> object:
        hasher = PieceHasher()
        hasher.update(data)
        return hasher.finish()

    def encrypt_hash_new() -> object:
        return hash_buffer(encrypt_segment(KEY, 7, plaintext))

    def encrypt_hash_reused() -> object:
        written = encrypt_segment_into(KEY, 7, plaintext, out)
        return hash_buffer(memoryview(out)[:written])

    return [
        Row(
            "aes-gcm encrypt",
            segment,
            best_rate(segment, lambda: encrypt_segment(KEY, 7, plaintext), reps),
            best_rate(segment, lambda: encrypt_segment_into(KEY, 7, plaintext, out), reps),
        ),
        Row(
            "aes-gcm decrypt",
            segment,
            best_rate(segment, lambda: decrypt_segment(KEY, 7, sealed), reps),
            best_rate(segment, lambda: decrypt_segment_into(KEY, 7, sealed, back), reps),
        ),
        # Hashing allocates nothing per byte: one column.
        Row("blake3+merkle", size, best_rate(size, lambda: hash_buffer(piece), reps), None),
        Row(
            "encrypt+hash",
            segment,
            best_rate(segment, encrypt_hash_new, reps),
            best_rate(segment, encrypt_hash_reused, reps),
        ),
    ]


def bench_rs(k: int, n: int, segment: int, reps: int, *, best_case: bool) -> list[Row]:
    codec = ErasureCodec(k, n)
    data = os.urandom(segment)
    pieces = codec.encode(data)
    size = codec.piece_size(segment)
    out: list[bytearray | memoryview | None] = [bytearray(size) for _ in range(n)]
    back = bytearray(segment)
    # Worst case: as many data pieces missing as can be, rebuilt from the highest-numbered pieces.
    worst = {i: pieces[i] for i in range(n - k, n)}
    shape = f"{k}/{n}"
    rows = [
        Row(
            f"rs encode {shape}",
            segment,
            best_rate(segment, lambda: codec.encode(data), reps),
            best_rate(segment, lambda: codec.encode_into(data, out), reps),
        )
    ]
    cases = [("best", {i: pieces[i] for i in range(k)})] if best_case else []
    for case, chosen in [*cases, ("worst", worst)]:
        rows.append(_decode_row(codec, f"rs decode {shape} {case}", chosen, segment, back, reps))
    return rows


def _decode_row(
    codec: ErasureCodec,
    stage: str,
    chosen: dict[int, bytes],
    segment: int,
    back: bytearray,
    reps: int,
) -> Row:
    return Row(
        stage,
        segment,
        best_rate(segment, lambda: codec.decode(chosen, segment), reps),
        best_rate(segment, lambda: codec.decode_into(chosen, segment, back), reps),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    parser.add_argument("--tuned-malloc", action="store_true", help="keep freed memory (glibc)")
    args = parser.parse_args(argv)
    tuned = tune_malloc() if args.tuned_malloc else False
    reps = 2 if args.quick else 5
    local = 8 * MiB if args.quick else 64 * MiB
    wide = 29 * 256 * 1024 if args.quick else 58 * MiB

    print(f"metadisk core stages, MiB/s per core ({'quick' if args.quick else 'full'} run)")
    print(f"cpu: {_cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}")
    leaf = LEAF_SIZE // 1024
    print(f"aes: metadisk.core.content; blake3 {blake3.__version__}; merkle leaf {leaf} KiB")
    print(f"malloc: {'tuned (keeps freed memory)' if tuned else 'defaults'}")
    print()
    print(f"{'stage':24} {'MiB':>6} {'new':>8} {'reused':>8}   target (MiB/s)")
    _emit(bench_crypto(local, reps))
    _emit(bench_rs(4, 10, local, reps, best_case=True))
    _emit(bench_rs(29, 80, wide, reps, best_case=True))
    _emit(bench_rs(29, 110, wide, reps, best_case=False))
    return 0


def _emit(rows: list[Row]) -> None:
    for row in rows:
        print(row.line(), flush=True)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
