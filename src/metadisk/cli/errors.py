"""The CLI's edge: every failure becomes one line on stderr and an exit status.

Commands raise what they raise (`CliError` for the CLI's own checks, `ClientError` from the
library, `CoreError` from parsing grants, `OSError` from local files, the parser's usage errors);
`describe` turns each into one line and a status, and `metadisk.cli.main.main` prints it. No
traceback ever reaches a user unless ``METADISK_DEBUG=1`` asks for one.

Exit statuses::

    0    success
    1    the operation failed (bridge, farmers, network, local files)
    2    bad input: usage, a malformed md:// path, a bad grant, a missing config
    3    not found: no such bucket or object
    4    refused: the grant or API key does not allow it
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import typer

try:  # Typer 0.2x parses the command line with its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # older Typer uses click itself
    from click import exceptions as click_errors  # type: ignore[no-redef, unused-ignore]

from metadisk.client import (
    AccessDenied,
    BridgeError,
    BridgeUnavailable,
    ClientError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TransferError,
    Unauthenticated,
)
from metadisk.core.errors import CoreError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the CLI detected itself, with the message to show and the exit status."""

    def __init__(self, message: str, *, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


class UsageError(CliError):
    """Bad input caught before any I/O: a malformed path, a missing option, no config."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=EXIT_USAGE)


def one_line(text: str) -> str:
    """`text` with its lines joined, so an error is always exactly one line."""
    parts = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(parts) or "unknown error"


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit status for an exception that reached the edge."""
    if isinstance(exc, CliError):
        return one_line(str(exc)), exc.status
    if isinstance(exc, click_errors.UsageError):
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        return one_line(exc.format_message()) + hint, EXIT_USAGE
    if isinstance(exc, click_errors.ClickException):
        return one_line(exc.format_message()), exc.exit_code or EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt | typer.Abort):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(exc, ClientError):
        return _client_message(exc), _client_status(exc)
    if isinstance(exc, CoreError):
        return one_line(str(exc)), EXIT_USAGE
    if isinstance(exc, OSError):
        return _os_message(exc), EXIT_FAILED
    return f"unexpected {type(exc).__name__}: {one_line(str(exc))}", EXIT_FAILED


def _client_message(exc: ClientError) -> str:
    message = one_line(exc.message)
    code = exc.code
    if isinstance(exc, BridgeUnavailable) and code == "connection-failed":
        # The library's text ends in aiohttp's ("ssl:default [Connect call failed ...]"): keep
        # "cannot reach the bridge at URL" and say what a user can do about it.
        where = message.partition(": ")[0]
        hint = "nothing answered (is the bridge running, and is that address right?)"
        return f"{where}: {hint} [{code}]"
    if isinstance(exc, TransferError) and exc.failures:
        # The first piece failure usually says why (a dead farmer, a full disk).
        number, reason = sorted(exc.failures.items())[0]
        message += f" (piece {number}: {one_line(reason)})"
    if code and code not in message:
        message += f" [{code}]"
    return message


def _client_status(exc: ClientError) -> int:
    if isinstance(exc, InvalidArgument):
        return EXIT_USAGE
    if isinstance(exc, BridgeError) and exc.status == 400:  # the bridge refused the input
        return EXIT_USAGE
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, AccessDenied | PermissionDenied | Unauthenticated):
        return EXIT_REFUSED
    return EXIT_FAILED


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or one_line(str(exc)) or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CliError",
    "UsageError",
    "click_errors",
    "describe",
    "one_line",
]
