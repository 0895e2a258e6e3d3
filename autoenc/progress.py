"""Progress bars on the terminal (rich), on stderr: a training's epochs, a study's trials, a download."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def shown(progress: bool | None) -> bool:
    """Whether to draw bars: `progress`, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class Bars:
    """Bars in one live display (none when `enabled` is false, or while another display is
    live: a study's bars stay, a training inside it draws none). bytes: a download's columns."""

    def __init__(self, enabled: bool = True, transient: bool = True, bytes: bool = False) -> None:
        columns = [TextColumn("{task.description}"), BarColumn()]
        columns += [DownloadColumn(), TransferSpeedColumn()] if bytes else [MofNCompleteColumn(), TextColumn("{task.fields[info]}")]
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=Console(stderr=True), transient=transient) if enabled else None
        if self._progress is not None:
            try:
                self._progress.start()
            except LiveError:
                self._progress = None

    def add(self, description: str, total: float | None, completed: float = 0) -> TaskID | None:
        """A new bar of `total` steps; its id for `update`."""
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, completed=completed, info="")

    def update(self, task: TaskID | None, completed: float | None = None, advance: float = 0, info: str = "") -> None:
        """Set (completed) or advance a bar, with a short text after it (e.g. "val psnr 22.40 dB")."""
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=completed, advance=advance or None, info=info)

    def remove(self, task: TaskID | None) -> None:
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "Bars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: int, description: str, completed: int = 0, enabled: bool = True) -> tuple[Bars, TaskID | None]:
    """One bar: (its Bars, to close; its task, to update)."""
    bars = Bars(enabled)
    return bars, bars.add(description, total, completed)
