"""The `metadisk` command: user commands at the top, a sub-app per role, and the error edge.

Commands raise; `main` is the one place that turns whatever reached it into one line on stderr
and an exit status (`metadisk.cli.errors`), so no command prints a traceback or exits on its own.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.core import Command, Context
from typer.core import TyperArgument, TyperGroup, TyperOption

import metadisk
from metadisk.allocator import tune_for_streaming
from metadisk.cli import config as cfg
from metadisk.cli.context import CliContext, enter
from metadisk.cli.errors import UsageError, click_errors, describe
from metadisk.runtime import logs

DEBUG_ENV = "METADISK_DEBUG"
LOG_ENV = "METADISK_LOG_LEVEL"
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE

# The root's commands, in the order `metadisk --help` lists them, and the module under
# metadisk/cli whose `register(app)` adds each. A module is imported only when one of its commands
# is looked up: `metadisk ls` then loads listing.py and what a listing needs, not the transfer
# plan, progress bars, the bridge's and farmer's configuration, `up`'s launchers or the sync
# engine (docs/client.md, "Start-up"). tests/cli/test_lazy_imports.py holds it to that.
COMMANDS = {
    "setup": "setup",
    **dict.fromkeys(("mb", "rb", "ls"), "listing"),
    **dict.fromkeys(("cp", "mv", "rm", "cat", "share"), "objects"),
    "stat": "stat",
    "usage": "usage",
    "du": "usage",
    "uploads": "uploads",
    "up": "up",
    "sync": "sync",
    "access": "access",
    "farmer": "farmer",
    "bridge": "bridge",
    "gateway": "gateway",
}


def _typer(**settings: Any) -> typer.Typer:
    """A Typer app set as the root is; each module's commands are built in one of these."""
    # Markdown: a docstring's wrapped lines form one paragraph in --help, as they read in code.
    return typer.Typer(pretty_exceptions_enable=False, rich_markup_mode="markdown", **settings)


class _Commands(MutableMapping[str, Command]):
    """The root's commands by name: every name is known from `COMMANDS`, but a command is built
    (and its module imported) when it is first looked up. Listing names (a typo's suggestions)
    imports nothing; root help, which shows every command's summary, imports every module."""

    def __init__(self) -> None:
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built and name in COMMANDS:
            self._built.update(_build(COMMANDS[name]))
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self._built.keys())


def _build(module: str) -> dict[str, Command]:
    """The commands `metadisk.cli.<module>` registers, built as the root would build them."""
    app = _typer()
    importlib.import_module(f"metadisk.cli.{module}").register(app)
    return {name: _plain_help(cmd) for name, cmd in typer.main.get_group(app).commands.items()}


class _LazyGroup(TyperGroup):
    """The root group, over `_Commands`."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.commands = _Commands()


app = _typer(
    name="metadisk",  # the help text is the root callback's docstring
    no_args_is_help=True,
    cls=_LazyGroup,
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
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress and no notes; errors are still shown."),
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
    enter(CliContext(cfg.config_dir(config_dir, os.environ), quiet=quiet))


class _PlainArgument(TyperArgument):
    """An argument shown as click shows one: `SRC`, `[PATH]`, `PATHS...`, with no type column."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


# What a value option takes, in click's words; a range's bounds are shown beside it anyway.
_KINDS = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "NUMBER",
          "float range": "NUMBER"}  # fmt: skip


def _plain_help(command: Command) -> Command:
    """Help without Typer's type noise (`<bool>` on every flag, `{src}`, `<list[str]>`).

    Done over each command as it is built rather than in each declaration, so commands added
    later read the same without anyone remembering a metavar. The root's own commands are done
    by `_build`, when they are looked up.
    """
    context = Context(command)
    help_option = command.get_help_option(context)
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperArgument):
            param.__class__ = _PlainArgument
            param.metavar = param.metavar or (param.name or "").upper()
        elif isinstance(param, TyperOption) and param.metavar is None:
            # A flag takes no value, so it shows none.
            kind = param.display_type(context).strip("<>")
            param.metavar = "" if param.is_flag or param.count else _KINDS.get(kind, kind.upper())
    if isinstance(command, TyperGroup) and not isinstance(command, _LazyGroup):
        for sub in command.commands.values():
            _plain_help(sub)
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `metadisk` console script: run a command, return its exit status."""
    tune_for_streaming()  # this process is ours: its transfers may keep freed buffers
    try:
        command = _plain_help(typer.main.get_command(app))
        result = command.main(args=list(argv) if argv is not None else None,
                              prog_name="metadisk", standalone_mode=False)  # fmt: skip
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
