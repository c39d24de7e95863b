"""What the command prints on stderr: the progress bar and the one-line errors."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar", "fail", "stderr"]

stderr = Console(stderr=True, highlight=False)


class ProgressBar:
    """A progress bar on stderr, drawn from the first report on, never before.

    The first report carries the list's ``total_entries``, so the bar is sized from the start,
    and a command that fails before its first page prints its error line and nothing else.
    """

    def __init__(self, description: str) -> None:
        self._description = description
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=stderr,
            )  # fmt: skip
            self._task = self._progress.add_task(self._description, total=total)
            self._progress.start()
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


def fail(message: str, code: int, secrets: Iterable[str] = ()) -> int:
    """Print ``error: <first line of message>`` on stderr (secrets masked); return ``code``."""
    text = message.strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    first_line = text.splitlines()[0] if text else "failed"
    click.echo(f"error: {first_line}", err=True)
    return code
