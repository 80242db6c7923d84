"""Measure the transfer pipeline on loopback: 10 real farmer processes, a bridge double.

Not a test (pytest does not collect it); run it by hand::

    python -m tests.client.bench_pipeline --size 256 --offload process
    python -m tests.client.bench_pipeline --size 1024 --offload thread --download-extra 1

Prints upload and download MiB/s and the peak RSS of the client process (and of its worker
processes) beside the targets (upload >= 150 MiB/s, download >= 250 MiB/s, RSS <= 300 MiB at
1 GiB). The bridge's half is `tests.client.doubles.PipelineBridge`: it signs real order limits,
so farmers check everything they would check for a real bridge; bridge latency is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import tempfile
import time
from pathlib import Path

from metadisk.client.download import DownloadConfig, DownloadPipeline
from metadisk.client.farmer_transport import HttpFarmerTransport
from metadisk.client.offload import Offload
from metadisk.client.segmenter import SegmentSizing, SourceReader
from metadisk.client.upload import UploadConfig, UploadPipeline
from metadisk.core.erasure import LOCAL
from metadisk.core.identity import Identity
from metadisk.devnet.farmer import farmer_process
from metadisk.farmer.config import TrustedBridge
from tests.client.doubles import Farmer, PipelineBridge

MiB = 1 << 20


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by processes `pids` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pss_mib(pid: int) -> float:
    """Proportional set size now: shared pages split between the processes mapping them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_peaks(pids: list[int]) -> list[float]:
    """Peak RSS (VmHWM) of the offload's worker processes, in MiB."""
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        peaks.append(int(fields["VmHWM"].split()[0]) / 1024)
    return peaks


def other_offload(mode: str) -> Offload:
    return Offload(processes=mode == "process")


async def download(
    args: argparse.Namespace,
    transport: HttpFarmerTransport,
    offload: Offload,
    bridge: PipelineBridge,
    key: bytes,
    target: Path,
    size: int,
    farmer_pids: list[int],
    worker_pids: list[int],
    label: str,
) -> None:
    pipeline = DownloadPipeline(
        transport, offload, DownloadConfig(extra_pieces=args.download_extra)
    )
    started = time.perf_counter()
    cpu = time.process_time()
    farmer_cpu, worker_cpu = cpu_seconds(farmer_pids), cpu_seconds(worker_pids)
    got = 0
    with open(target, "wb") as out:  # noqa: ASYNC230 - a bench script, not the client
        async with contextlib.aclosing(
            pipeline.chunks(bridge.segments(), object_key=key, scheme=LOCAL, coordinator=bridge)
        ) as chunks:
            async for view in chunks:
                await asyncio.to_thread(out.write, view)
                got += len(view)
    down = time.perf_counter() - started
    down_cpu = time.process_time() - cpu
    farmer_cpu = cpu_seconds(farmer_pids) - farmer_cpu
    worker_cpu = cpu_seconds(worker_pids) - worker_cpu
    assert got == size
    print(
        f"download {size / MiB / down:7.1f} MiB/s  ({label}, client CPU "
        f"{down_cpu / (size / MiB) * 1000:.2f} ms/MiB, farmers "
        f"{farmer_cpu / (size / MiB) * 1000:.2f}, workers "
        f"{worker_cpu / (size / MiB) * 1000:.2f}, extra pieces {args.download_extra})"
        "  target >= 250"
    )


async def main(args: argparse.Namespace) -> None:
    size = args.size * MiB
    identity = Identity.generate()
    trusted = TrustedBridge(identity.node_id, identity.public_key, "http://127.0.0.1:9")
    with tempfile.TemporaryDirectory(prefix="metadisk-bench-") as tmp:
        root = Path(tmp)
        source = root / "source.bin"
        with open(source, "wb") as out:  # noqa: ASYNC230 - a bench script, not the client
            for _ in range(args.size):
                out.write(os.urandom(MiB))
        async with contextlib.AsyncExitStack() as stack:
            started = time.perf_counter()
            farmers = await asyncio.gather(
                *[
                    stack.enter_async_context(
                        farmer_process(root / f"farmer-{i}", [trusted], allocated=8 << 30)
                    )
                    for i in range(LOCAL.n)
                ]
            )
            print(f"{LOCAL.n} farmers up in {time.perf_counter() - started:.1f} s")
            bridge = PipelineBridge(
                [Farmer(f.identity.node_id, f.url, f.identity.public_key) for f in farmers],
                LOCAL,
                identity,
            )
            offload = Offload(processes=args.offload == "process")
            transport = HttpFarmerTransport()
            sizing = SegmentSizing()
            segment_size = (
                args.segment * MiB if args.segment else sizing.segment_size(LOCAL, args.in_flight)
            )
            key = os.urandom(32)
            try:
                # Warm the workers and connections so the numbers are steady-state transfer.
                warm = PipelineBridge(bridge.farmers, LOCAL, identity)
                await UploadPipeline(transport, offload).run(
                    SourceReader.open(os.urandom(MiB)),
                    object_key=key,
                    scheme=LOCAL,
                    segment_size=segment_size,
                    coordinator=warm,
                )

                reader = SourceReader.open(source)
                farmer_pids = [f.pid for f in farmers]
                executor = offload._executor  # workers of a forkserver are not our children
                worker_pids = list(getattr(executor, "_processes", None) or {})
                started = time.perf_counter()
                cpu = time.process_time()
                farmer_cpu, worker_cpu = cpu_seconds(farmer_pids), cpu_seconds(worker_pids)
                config = UploadConfig(
                    segments_in_flight=args.in_flight, segments_uploading=args.uploading
                )
                summary = await UploadPipeline(transport, offload, config).run(
                    reader,
                    object_key=key,
                    scheme=LOCAL,
                    segment_size=segment_size,
                    coordinator=bridge,
                )
                await reader.aclose()
                up = time.perf_counter() - started
                up_cpu = time.process_time() - cpu
                pss = [pss_mib(os.getpid()), *(pss_mib(p) for p in worker_pids)]
                farmer_cpu = cpu_seconds(farmer_pids) - farmer_cpu
                worker_cpu = cpu_seconds(worker_pids) - worker_cpu
                print(
                    f"upload   {size / MiB / up:7.1f} MiB/s  ({summary.segment_count} segments of "
                    f"{segment_size // MiB} MiB, client CPU {up_cpu / (size / MiB) * 1000:.2f} "
                    f"ms/MiB, offload={args.offload})  target >= 150"
                )
                print(
                    f"         CPU ms/MiB: farmers {farmer_cpu / (size / MiB) * 1000:.2f}, "
                    f"workers {worker_cpu / (size / MiB) * 1000:.2f}; memory after upload "
                    f"(PSS): client {pss[0]:.0f} MiB + workers {sum(pss[1:]):.0f} MiB"
                )

                for round_ in range(args.downloads):
                    for mode in args.download_offload or [args.offload]:
                        down_offload = offload if mode == args.offload else other_offload(mode)
                        try:
                            await download(
                                args,
                                transport,
                                down_offload,
                                bridge,
                                key,
                                root / "out.bin",
                                size,
                                farmer_pids,
                                worker_pids,
                                f"{mode}#{round_ + 1}",
                            )
                        finally:
                            if down_offload is not offload:
                                await down_offload.aclose()
                target = root / "out.bin"
                if args.verify:
                    with open(source, "rb") as a, open(target, "rb") as b:  # noqa: ASYNC230 - a bench script, not the client
                        while chunk := a.read(MiB):
                            assert chunk == b.read(MiB), "downloaded bytes differ"
                    print("verified: downloaded bytes equal the source")
                workers = worker_peaks(worker_pids)
            finally:
                await transport.aclose()
                await offload.aclose()
        print(
            f"peak RSS {peak_rss_mib():.0f} MiB client"
            + (f", workers {', '.join(f'{w:.0f}' for w in workers)} MiB" if workers else "")
            + "  target <= 300 (at 1 GiB)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="MiB to upload and download")
    parser.add_argument("--offload", choices=["process", "thread"], default="process")
    parser.add_argument("--segment", type=int, default=0, help="segment MiB (0: per scheme)")
    parser.add_argument("--in-flight", type=int, default=3)
    parser.add_argument("--uploading", type=int, default=2)
    parser.add_argument("--download-extra", type=int, default=0)
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--downloads", type=int, default=1, help="download this many times")
    parser.add_argument(
        "--download-offload",
        action="append",
        choices=["process", "thread"],
        help="download with this offload too (repeatable; default: as --offload)",
    )
    asyncio.run(main(parser.parse_args()))
