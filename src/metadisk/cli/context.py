"""What every user command needs: the config dir, the config in it, consoles, an open project.

The root callback of `metadisk` builds one `CliContext` per invocation and `enter`s it; commands
fetch it with `current()`. A context variable carries it rather than the parser's context object,
so coroutines run by the commands see it too. Nothing here runs at import time, so ``--help``
stays fast and never touches the config; the client library and Rich are imported by the
functions that use them, so importing this module costs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from metadisk.cli import config as cfg
from metadisk.cli.errors import CliError, describe
from metadisk.client import ClientError

if TYPE_CHECKING:
    from rich.console import Console

    from metadisk.client import AsyncProject

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CliContext:
    """Per-invocation state: where the config lives, and whether to keep quiet (`--quiet`)."""

    config_dir: Path
    quiet: bool = False

    def config(self) -> cfg.CliConfig:
        return cfg.load(self.config_dir)

    @property
    def uploads_dir(self) -> Path:
        """Where interrupted uploads keep their resume state."""
        return self.config_dir / cfg.UPLOADS_DIR

    @contextlib.asynccontextmanager
    async def project(self) -> AsyncIterator[AsyncProject]:
        """The configured grant opened as a project, closed on exit."""
        from metadisk.client import AsyncProject  # the client library: only commands that use it

        loaded = self.config()
        grant = loaded.access_grant(self.config_dir)
        project = await AsyncProject.open(grant, config=loaded.client.client_config())
        try:
            yield project
        finally:
            await project.aclose()


_CURRENT: ContextVar[CliContext] = ContextVar("metadisk_cli_context")


def enter(context: CliContext) -> None:
    """Make `context` the one `current()` returns for this invocation."""
    _CURRENT.set(context)


def current() -> CliContext:
    """The context of the running command (set by the root callback)."""
    found = _CURRENT.get(None)
    if found is None:  # a command run without the root callback (a sub-app on its own)
        found = CliContext(cfg.config_dir(None, os.environ))
    return found


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body; Ctrl-C cancels it and surfaces as KeyboardInterrupt."""
    return asyncio.run(coroutine)


def stderr() -> Console:
    """Human-facing output (progress, notes): stderr, so stdout stays data; silent with --quiet.

    Rich leaves colour out when NO_COLOR is set, so every note and bar honours it.
    """
    from rich.console import Console  # not at import time: `ls` never needs it

    # No markup: paths and names are shown as they are, even with "[" in them.
    return Console(stderr=True, highlight=False, markup=False, quiet=current().quiet)


@contextlib.contextmanager
def about(what: object) -> Iterator[None]:
    """Prefix a library error's one-line message with the path it is about."""
    try:
        yield
    except ClientError as exc:
        message, status = describe(exc)
        raise CliError(f"{what}: {message}", status=status) from exc
