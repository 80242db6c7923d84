"""The CLI as a user's shell runs it: start-up of `metadisk --version` and `metadisk ls`, and
`metadisk sync` of many small files (objects/s) beside `rclone sync` to a local directory.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`, as `metadisk up` runs
them) and runs every command as a separate process of the console script, start-up included.

- Start-up: each command several times; the median and the best beside the target (<= 0.25 s),
  and the CPU seconds (user + system) each run took, which a busy shared machine inflates less.
  `ls` lists the tenant's buckets, so it includes reading the config, opening the project and
  one request. When PYTHONDONTWRITEBYTECODE is set (nothing cached, so every start compiles
  metadisk's modules anew) `ls` is timed again with a bytecode cache in a scratch directory, as
  an installed package runs. Then where `ls`'s imports go (`python -X importtime`).
- Sync of a tree of small files: the first ``metadisk sync DIR md://bench/`` (every file
  uploaded), the same command again (every file unchanged: a listing only), and
  ``metadisk sync md://bench/ DIR2`` into an empty directory. The yardstick is
  ``rclone sync DIR DIR3`` (a local copy: no network, no encryption, no erasure coding), first
  run and again; skipped with a note when rclone is not installed (Debian: ``apt-get install
  rclone``).

Prints; never asserts.

    python bench/cli.py                        # 10 runs each; 2,000 files of 1 KiB
    python bench/cli.py --quick                # 3 runs each; 200 files: a smoke run
    python bench/cli.py --files 500 --size 4096 --parallelism 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metadisk.cli import config as cfg
from metadisk.core.grant import AccessGrant
from metadisk.devnet.network import LocalNetwork, Tenant

TARGET = 0.25  # seconds


def command() -> list[str]:
    """The console script next to this interpreter, as installed; else the module it runs."""
    script = Path(sys.executable).parent / "metadisk"
    return [str(script)] if script.exists() else [sys.executable, "-m", "metadisk.cli.entry"]


def timed(args: list[str], env: dict[str, str]) -> float:
    """Seconds `args` took as a process of its own; a failure stops the bench with its stderr."""
    return run_timed(args, env)[0]


def run_timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of `args` as a process of its own. On a shared
    machine the CPU seconds say what the command costs; the wall seconds add the wait for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}… failed: {done.stderr.strip()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def make_tree(root: Path, files: int, size: int) -> None:
    for number in range(files):
        # 100 files a directory, as a tree of documents or photos would be spread.
        path = root / f"d{number // 100:03}" / f"f{number:05}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def write_config(directory: Path, tenant: Tenant) -> None:
    grant = AccessGrant.parse(tenant.grant)
    account = cfg.Account(grant.bridge_url, tenant.email, tenant.project_id)
    cfg.save(directory, cfg.CliConfig(grant=tenant.grant, account=account, origin="bench"))


def heaviest_imports(args: list[str], env: dict[str, str], count: int = 8) -> list[str]:
    """Where importing goes for `args` (python -X importtime): self time summed by package,
    metadisk's by sub-package, largest first."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "metadisk.cli.entry", *args],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    totals: dict[str, int] = {}
    for line in run.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip().split(".")
        package = ".".join(name[:2] if name[0] == "metadisk" else name[:1])
        totals[package] = totals.get(package, 0) + int(parts[0])
    heaviest = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [f"{package} {micros / 1e6:.3f} s" for package, micros in heaviest]


def start_up(cli: list[str], runs: int, env: dict[str, str], scratch: Path) -> None:
    print(f"{'start-up':<32}{'median':>8}{'best':>8}  {'unit':<6}{'target':<10}runs  "
          "cpu median (best)")  # fmt: skip
    rows = [("metadisk --version", ["--version"], env), ("metadisk ls", ["ls"], env)]
    if env.get("PYTHONDONTWRITEBYTECODE"):
        cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        timed([*cli, "ls"], cached)  # fills the cache
        rows.append(("metadisk ls, bytecode cached", ["ls"], cached))
    for name, extra, where in rows:
        took, cpu = zip(*(run_timed([*cli, *extra], where) for _ in range(runs)), strict=True)
        print(f"{name:<32}{statistics.median(took):>8.3f}{min(took):>8.3f}  "
              f"{'s':<6}{f'<={TARGET} s':<10}{runs:<6}"
              f"{statistics.median(cpu):.3f} ({min(cpu):.3f}) s")  # fmt: skip
    print("import time of `metadisk ls` by package (self time, largest first):")
    for row in heaviest_imports(["ls"], env):
        print(f"  {row}")


def rate(name: str, files: int, seconds: float) -> str:
    return f"{name:<32}{files / seconds:>10.1f} objects/s  ({seconds:.2f} s)"


def sync(
    cli: list[str], env: dict[str, str], tree: Path, scratch: Path, args: argparse.Namespace
) -> None:
    print(f"sync of {args.files} files of {args.size} B, parallelism {args.parallelism}:")
    up = [*cli, "sync", "-p", str(args.parallelism), str(tree), "md://bench/"]
    print(rate("metadisk sync up", args.files, timed(up, env)), flush=True)
    print(rate("metadisk sync up again", args.files, timed(up, env)), flush=True)
    down = [*cli, "sync", "-p", str(args.parallelism), "md://bench/", str(scratch / "down")]
    print(rate("metadisk sync down", args.files, timed(down, env)), flush=True)


def rclone(tree: Path, scratch: Path, args: argparse.Namespace) -> None:
    found = shutil.which("rclone")
    if found is None:
        print(f"{'rclone sync (local)':<32}skipped: rclone is not installed")
        return
    local = [
        found,
        "sync",
        "--transfers",
        str(args.parallelism),
        str(tree),
        str(scratch / "rclone"),
    ]
    print(rate("rclone sync (local)", args.files, timed(local, dict(os.environ))))
    print(rate("rclone sync (local) again", args.files, timed(local, dict(os.environ))))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each, 200 files: a smoke run")
    parser.add_argument("--runs", type=int, help="runs of each start-up (default 10)")
    parser.add_argument("--files", type=int, help="files to sync (default 2000)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--parallelism", type=int, default=16)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 10)
    args.files = args.files or (200 if args.quick else 2000)

    with tempfile.TemporaryDirectory(prefix="metadisk-bench-cli-") as name:
        scratch = Path(name)
        tree = scratch / "tree"
        make_tree(tree, args.files, args.size)
        network = LocalNetwork(scratch / "network", farmers=10)
        await network.start()
        try:
            config_dir = scratch / "config"
            write_config(config_dir, await network.create_tenant())
            env = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir), "NO_COLOR": "1"}
            cli = command()
            timed([*cli, "mb", "md://bench"], env)
            start_up(cli, runs, env, scratch)
            sync(cli, env, tree, scratch, args)
        finally:
            await network.stop()
        rclone(tree, scratch, args)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so without cached bytecode every start "
              "compiles the modules it imports anew")  # fmt: skip
    print(f"load average: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
