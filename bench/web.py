"""The web file manager's figures: a big upload through the page beside `metadisk cp`, and the
time to the first page of a big folder.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`), a gateway process
(`metadisk gateway run`, as `metadisk up` runs it) with the same CLI config as the CLI runs, and
Debian's Chromium through Playwright.

- Upload: one file of ``--mib`` MiB (default 256) with ``metadisk cp FILE md://bench/`` (a
  process, start-up included), then the same file through the page's file input (from the
  selection to the page saying it is stored). Target: the page at >= 50% of the CLI's rate.
- Folder: ``--objects`` small objects (default 10,000) in one folder, then the folder's first
  page, fetched with the session cookie (the server's answer, whole) and opened in Chromium
  (navigation to load). Target: < 200 ms. For contrast, the S3 listing's first page of the same
  folder (ListObjectsV2 with boto3), which reads and sorts the whole folder.

Prints; never asserts.

    python bench/web.py                 # 256 MiB, 10,000 objects
    python bench/web.py --quick         # 32 MiB, 1,000 objects: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from cli import command, timed, write_config  # bench/cli.py
from metadisk.client import AsyncProject
from metadisk.devnet.gateway import GatewayProcess
from metadisk.devnet.network import LocalNetwork
from metadisk.gateway.config import new_credential

CHROMIUM = os.environ.get("METADISK_CHROMIUM") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
BUCKET = "bench"
FOLDER = "many/"
PAGE_TARGET = 0.200
RUNS = 7


def mib_s(size: int, seconds: float) -> str:
    return f"{size / seconds / (1 << 20):7.1f} MiB/s ({seconds:.1f} s)"


# From the navigation's start: the page's HTML received, and the page loaded (style and script).
NAVIGATION = "() => performance.getEntriesByType('navigation')[0].toJSON()"


def browser_part(files_url: str, base: str, path: Path) -> tuple[float, list[tuple[float, float]]]:
    """(seconds of the page's upload of `path`, load times of the big folder's first page)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(files_url)
        page.goto(f"{base}/-/browse?bucket={BUCKET}")
        started = time.perf_counter()
        page.set_input_files("#files", str(path))
        expect(page.locator("#upload-list li.ok")).to_have_count(1, timeout=1_800_000)
        upload = time.perf_counter() - started
        loads = []
        for _ in range(RUNS):
            page.goto(f"{base}/-/browse?bucket={BUCKET}&prefix={FOLDER}")
            timing = page.evaluate(NAVIGATION)
            loads.append((timing["responseEnd"] / 1000, timing["loadEventEnd"] / 1000))
        rows = page.locator("tr.file").count()
        browser.close()
    print(f"  page opened in Chromium showed {rows} files on its first page")
    return upload, loads


def server_page_times(files_url: str, base: str) -> list[float]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(files_url).read()  # the token swapped for the session cookie
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        opener.open(f"{base}/-/browse?bucket={BUCKET}&prefix={FOLDER}").read()
        times.append(time.perf_counter() - started)
    return times


def s3_client(gateway: GatewayProcess) -> Any:
    try:
        import boto3
    except ImportError:
        return None
    credential = gateway.credentials[0]
    return boto3.client(
        "s3", endpoint_url=gateway.url, region_name="us-east-1",
        aws_access_key_id=credential.access_key, aws_secret_access_key=credential.secret_key,
    )  # fmt: skip


def s3_put_seconds(gateway: GatewayProcess, path: Path) -> float | None:
    s3 = s3_client(gateway)
    if s3 is None:
        return None
    started = time.perf_counter()
    with path.open("rb") as body:
        s3.put_object(Bucket=BUCKET, Key="s3.bin", Body=body)
    return time.perf_counter() - started


def s3_first_page(gateway: GatewayProcess) -> list[float]:
    s3 = s3_client(gateway)
    if s3 is None:
        return []
    times = []
    for _ in range(3):
        started = time.perf_counter()
        s3.list_objects_v2(Bucket=BUCKET, Prefix=FOLDER, Delimiter="/", MaxKeys=200)
        times.append(time.perf_counter() - started)
    return times


async def fill(grant: str, count: int) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(32)
    async with await AsyncProject.open(grant) as project:

        async def one(number: int) -> None:
            async with gate:
                await project.upload(BUCKET, f"{FOLDER}f{number:06}.txt", b"x" * 100)

        async with asyncio.TaskGroup() as group:
            for number in range(count):
                group.create_task(one(number))
    return time.perf_counter() - started


def summary(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"median {statistics.median(ms):6.1f} ms, best {min(ms):6.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 MiB and 1,000 objects")
    parser.add_argument("--mib", type=int, help="MiB to upload (default 256)")
    parser.add_argument("--objects", type=int, help="objects in the big folder (default 10000)")
    args = parser.parse_args()
    size = (args.mib or (32 if args.quick else 256)) << 20
    count = args.objects or (1000 if args.quick else 10_000)

    with tempfile.TemporaryDirectory(prefix="metadisk-bench-web-") as name:
        scratch = Path(name)
        path = scratch / "big.bin"
        with path.open("wb") as out:
            for _ in range(size >> 20):
                out.write(os.urandom(1 << 20))
        network = LocalNetwork(scratch / "network", farmers=10)
        await network.start()
        gateway: GatewayProcess | None = None
        try:
            tenant = await network.create_tenant()
            config_dir = scratch / "config"
            write_config(config_dir, tenant)
            env = {**os.environ, "METADISK_CONFIG_DIR": str(config_dir), "NO_COLOR": "1"}
            cli = command()
            timed([*cli, "mb", f"md://{BUCKET}"], env)
            gateway = GatewayProcess(
                scratch / "gateway", [new_credential(tenant.grant)], config_dir=config_dir
            )
            await gateway.start()
            assert gateway.files_url is not None
            print(f"upload of {size >> 20} MiB, {os.cpu_count()} CPUs, bridge and 10 farmers here")
            cli_s = timed([*cli, "cp", str(path), f"md://{BUCKET}/cli.bin"], env)
            print(f"  metadisk cp        {mib_s(size, cli_s)}")
            print(f"filling {FOLDER} with {count} objects…")
            print(f"  ({count / await fill(tenant.grant, count):.0f} objects/s)")
            web_s, loads = await asyncio.to_thread(
                browser_part, gateway.files_url, gateway.url, path
            )
            print(f"  the web page       {mib_s(size, web_s)}")
            print(f"  web / cli          {cli_s / web_s:7.0%}   (target >= 50%)")
            s3_put = await asyncio.to_thread(s3_put_seconds, gateway, path)
            if s3_put is not None:
                print(f"  S3 PUT (boto3)     {mib_s(size, s3_put)}  (one stream, as the page)")
            print(
                f"first page of a folder of {count} objects (target < {PAGE_TARGET * 1000:.0f} ms)"
            )
            served = await asyncio.to_thread(server_page_times, gateway.files_url, gateway.url)
            print(f"  server's answer    {summary(served)}")
            print(f"  Chromium, HTML in  {summary([html for html, _ in loads])}")
            print(f"  Chromium, loaded   {summary([load for _, load in loads])}")
            s3 = await asyncio.to_thread(s3_first_page, gateway)
            if s3:
                print(f"  S3 ListObjectsV2   {summary(s3)}  (reads and sorts the whole folder)")
        finally:
            if gateway is not None:
                await gateway.stop()
            await network.stop()
    print(f"load average: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
