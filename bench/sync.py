"""What `metadisk sync` of many small files achieves: objects per second, with `rclone sync` to a
local directory as a yardstick.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`, as `metadisk up` runs
them), makes a tree of small files, and times, each as a separate `metadisk` process (what a
user's shell runs, start-up included):

- ``sync up``: the first ``metadisk sync DIR md://bench/`` (every file uploaded);
- ``sync up again``: the same command once more (every file found unchanged: a listing only);
- ``sync down``: ``metadisk sync md://bench/ DIR2`` into an empty directory.

The yardstick is ``rclone sync DIR DIR3`` (a local copy: no network, no encryption, no erasure
coding), first run and again. It is skipped with a note when rclone is not installed
(Debian: ``apt-get install rclone``). Prints a table; never asserts.

    python bench/sync.py                   # 2,000 files of 1 KiB
    python bench/sync.py --files 200       # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metadisk.cli import config as cfg
from metadisk.core.grant import AccessGrant
from metadisk.devnet.network import LocalNetwork, Tenant

CLI = [sys.executable, "-m", "metadisk.cli.main"]


def make_tree(root: Path, files: int, size: int) -> None:
    for number in range(files):
        # 100 files a directory, as a tree of documents or photos would be spread.
        path = root / f"d{number // 100:03}" / f"f{number:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def write_config(directory: Path, tenant: Tenant) -> None:
    grant = AccessGrant.parse(tenant.grant)
    config = cfg.CliConfig(
        grant=tenant.grant,
        account=cfg.Account(grant.bridge_url, tenant.email, tenant.project_id),
        client=cfg.ClientTuning(),
        origin="bench",
    )
    cfg.save(directory, config)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}… failed: {done.stderr.strip()[-500:]}")
    return seconds


def row(name: str, files: int, seconds: float) -> str:
    return f"{name:<28} {files / seconds:>10.1f} objects/s  ({seconds:.2f} s)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--parallelism", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as scratch:
        root = Path(scratch)
        tree = root / "tree"
        make_tree(tree, args.files, args.size)
        network = LocalNetwork(root / "network", farmers=10)
        await network.start()
        try:
            tenant = await network.create_tenant()
            config_dir = root / "config"
            write_config(config_dir, tenant)
            env = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
            timed([*CLI, "mb", "md://bench"], env)
            sync = [*CLI, "sync", "-p", str(args.parallelism)]
            print(f"{args.files} files of {args.size} B, parallelism {args.parallelism}")
            up = timed([*sync, str(tree), "md://bench/"], env)
            print(row("metadisk sync up", args.files, up), flush=True)
            again = timed([*sync, str(tree), "md://bench/"], env)
            print(row("metadisk sync up again", args.files, again), flush=True)
            down = timed([*sync, "md://bench/", str(root / "down")], env)
            print(row("metadisk sync down", args.files, down), flush=True)
        finally:
            await network.stop()

        rclone = shutil.which("rclone")
        if rclone is None:
            print("rclone sync (local)          skipped: rclone is not installed")
            return
        local = [rclone, "sync", "--transfers", str(args.parallelism), str(tree)]
        first = timed([*local, str(root / "rclone")], dict(os.environ))
        print(row("rclone sync (local)", args.files, first))
        second = timed([*local, str(root / "rclone")], dict(os.environ))
        print(row("rclone sync (local) again", args.files, second))


if __name__ == "__main__":
    asyncio.run(main())
