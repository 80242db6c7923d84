"""CLI start-up: how long `metadisk --version` and `metadisk ls` take, end to end.

Each command runs as a user runs it (the console script, a fresh process), several times; the
median and the best are printed beside the target (<= 0.25 s). `ls` lists the buckets of a
tenant on a local network (a bridge and one farmer on loopback), so it includes reading the
config, opening the project and one request. Then the modules that cost `ls` the most to import
(`python -X importtime`), to show where start-up goes. Prints; never asserts.

    python bench/cli.py            # 10 runs each
    python bench/cli.py --quick    # 3 runs each: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metadisk.cli import config as cfg
from metadisk.core.grant import AccessGrant
from metadisk.devnet.network import LocalNetwork

TARGET = 0.25  # seconds


def _command() -> list[str]:
    """The console script next to this interpreter, as installed; else the module it runs."""
    script = Path(sys.executable).parent / "metadisk"
    return [str(script)] if script.exists() else [sys.executable, "-m", "metadisk.cli.entry"]


def _time(args: list[str], runs: int, env: dict[str, str]) -> list[float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env, timeout=60)
        took.append(time.perf_counter() - started)
    return took


def _heaviest_imports(args: list[str], env: dict[str, str], count: int = 8) -> list[str]:
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


async def _network(root: Path) -> tuple[LocalNetwork, str]:
    network = LocalNetwork(root / "net", farmers=1)
    await network.start()
    tenant = await network.create_tenant()
    return network, tenant.grant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each: a smoke run")
    parser.add_argument("--runs", type=int, help="runs of each command (default 10)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 10)

    root = Path(tempfile.mkdtemp(prefix="metadisk-bench-cli-"))
    loop = asyncio.new_event_loop()
    network, grant = loop.run_until_complete(_network(root))
    try:
        config_dir = root / "config"
        account = cfg.Account(AccessGrant.parse(grant).bridge_url, "bench@example.org", "")
        cfg.save(config_dir, cfg.CliConfig(grant=grant, account=account, origin="bench"))
        env = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir), "NO_COLOR": "1"}
        command = _command()
        subprocess.run([*command, "mb", "md://bench"], check=True, capture_output=True, env=env)

        print(f"{'measure':<28}{'median':>8}{'best':>8}  {'unit':<6}{'target':<10}runs")
        for name, extra in (("metadisk --version", ["--version"]), ("metadisk ls", ["ls"])):
            took = _time([*command, *extra], runs, env)
            print(f"{name:<28}{statistics.median(took):>8.3f}{min(took):>8.3f}  "
                  f"{'s':<6}{f'<={TARGET} s':<10}{runs}")  # fmt: skip
        print("import time of `metadisk ls` by package (self time, largest first):")
        for row in _heaviest_imports(["ls"], env):
            print(f"  {row}")
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("note: PYTHONDONTWRITEBYTECODE is set, so without cached bytecode every start "
                  "compiles the modules it imports anew")  # fmt: skip
        print(f"load average: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on "
              f"{os.cpu_count()} CPUs")  # fmt: skip
    finally:
        loop.run_until_complete(network.stop())
        loop.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
