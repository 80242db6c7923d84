"""The `metadisk` command: user commands at the top, a sub-app per role, and the error edge.

Commands raise; `main` is the one place that turns whatever reached it into one line on stderr
and an exit status (`metadisk.cli.errors`), so no command prints a traceback or exits on its own.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

import metadisk
from metadisk.allocator import tune_for_streaming
from metadisk.cli import access, bridge, farmer, objects, setup, up, uploads, usage
from metadisk.cli import config as cfg
from metadisk.cli.context import CliContext, enter
from metadisk.cli.errors import UsageError, click_errors, describe
from metadisk.runtime import logs

DEBUG_ENV = "METADISK_DEBUG"
LOG_ENV = "METADISK_LOG_LEVEL"
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE

app = typer.Typer(
    name="metadisk",  # the help text is the root callback's docstring
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown: a docstring's wrapped lines form one paragraph in --help, as they read in code.
    rich_markup_mode="markdown",
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"metadisk {metadisk.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            envvar=cfg.ENV_CONFIG_DIR,
            show_envvar=True,
            help="Where the CLI keeps its grant (default: the user config dir).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            envvar=LOG_ENV,
            show_envvar=True,
            help="Log to stderr from this level on: debug, info (also the farmers a transfer "
            "routed around), warning or error.",
        ),
    ] = "warning",
) -> None:
    """Decentralized, end-to-end encrypted object storage.

    Remote paths look like md://bucket/path. Start with `metadisk up` (a local network) or
    `metadisk setup BRIDGE_URL`.
    """
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise UsageError(f"--log-level must be debug, info, warning or error, not {log_level!r}")
    logs.configure(log_level.lower())
    enter(CliContext(cfg.config_dir(config_dir, os.environ)))


app.command()(setup.setup)
objects.register(app)
usage.register(app)
uploads.register(app)
app.command()(up.up)
app.add_typer(access.app, name="access")
app.add_typer(farmer.app, name="farmer")
app.add_typer(bridge.app, name="bridge")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `metadisk` console script: run a command, return its exit status."""
    tune_for_streaming()  # this process is ours: its transfers may keep freed buffers
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name="metadisk",
                     standalone_mode=False)  # fmt: skip
    except click_errors.NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # rich help is already printed; plain help is not
            exc.show()
        return exc.exit_code
    except BrokenPipeError:
        # The reader of our stdout went away (`metadisk ls | head`): stop quietly, as `ls` does,
        # and keep the interpreter's final flush from complaining about the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt) as exc:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        message, status = describe(exc)
        print(f"error: {message}", file=sys.stderr)
        return status
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # python -m metadisk.cli.main
    sys.exit(main())
