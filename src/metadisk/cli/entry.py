"""The `metadisk` console script: answers `--version` before anything heavy is imported.

Building the command tree imports the client library (pydantic models, aiohttp, cryptography),
most of a second on a busy machine; a version check needs none of it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run `metadisk` with `argv` (default: the process's), return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from metadisk import __version__

        print(f"metadisk {__version__}")
        return 0
    from metadisk.cli.main import main as run

    return run(argv)


if __name__ == "__main__":  # python -m metadisk.cli.entry
    sys.exit(main())
