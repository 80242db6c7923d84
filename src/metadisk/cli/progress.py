"""Progress bars for transfers (Rich), on stderr so stdout stays clean for data and scripts.

One bar per file in flight with bytes, speed and ETA, plus an overall bar when several files move
at once. Bars are drawn only on a terminal: piped or captured stderr gets no escape codes. Sizes
and speeds are both binary (MiB, MiB/s): one unit family, so the two can be compared at a glance.
Lines a command reports while bars are live (`report`) are held until the bars are finished and
printed below them, so no line is glued onto a bar still being drawn on the same terminal.
The library calls `progress(done, total)` on its event loop, which is the thread the CLI runs
it on; Rich locks its own state, so updates are safe from there.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


class BinarySpeedColumn(ProgressColumn):
    """Speed in the units `DownloadColumn(binary_units=True)` shows sizes in (Rich's own speed
    column is decimal only)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("?", style="progress.data.speed")
        unit, suffix = filesize.pick_unit_and_suffix(int(speed), BINARY_UNITS, 1024)
        return Text(f"{speed / unit:.1f} {suffix}/s", style="progress.data.speed")


class TransferProgress:
    """A group of transfer bars; use as a context manager around the transfers.

    Example::

        with TransferProgress(console, files=2, total_bytes=3 << 20) as bars:
            bar = bars.file("cat.jpg", size)
            await project.upload("photos", "cat.jpg", "cat.jpg", progress=bar.update)
            bar.finish()
    """

    def __init__(
        self,
        console: Console,
        *,
        files: int = 1,
        total_bytes: int | None = None,
        enabled: bool | None = None,
    ) -> None:
        show = console.is_terminal if enabled is None else enabled
        self._quiet = console.quiet
        self._live = show and not console.quiet
        self._held: list[str] = []
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            BinarySpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self._live,
            transient=False,
            # Data on stdout goes straight there; Rich's proxy would send it to stderr.
            redirect_stdout=False,
        )
        self._overall: TaskID | None = None
        if files > 1:
            self._overall = self._progress.add_task(f"total ({files} files)", total=total_bytes)

    def __enter__(self) -> TransferProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()
        held, self._held = self._held, []
        for line in held:
            self._print(line)

    def report(self, line: str) -> None:
        """Tell the user a transfer is done (stdout): below the bars once they stop, if live;
        nothing with --quiet."""
        if self._quiet:
            return
        if self._live and self._progress.live.is_started:
            self._held.append(line)
        else:
            self._print(line)

    @staticmethod
    def _print(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def file(self, name: str, total: int | None) -> FileBar:
        """A bar for one transfer of `total` bytes (None: unknown)."""
        task = self._progress.add_task(_shorten(name), total=total)
        return FileBar(self._progress, task, self._overall)


class FileBar:
    """One transfer's bar; `update` is a `ProgressCallback`."""

    def __init__(self, progress: Progress, task: TaskID, overall: TaskID | None) -> None:
        self._progress = progress
        self._task = task
        self._overall = overall
        self._done = 0

    def update(self, done: int, total: int | None) -> None:
        advance = done - self._done
        self._done = done
        self._progress.update(self._task, completed=done, total=total)
        if self._overall is not None and advance > 0:
            self._progress.advance(self._overall, advance)

    def finish(self) -> None:
        """Mark the transfer complete; with several files its bar gives way to the next."""
        self._progress.update(self._task, completed=self._done, total=self._done)
        if self._overall is not None:
            self._progress.remove_task(self._task)


def _shorten(name: str, width: int = 40) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]
