"""What the command prints on stderr: the progress bar and the one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any

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
from rich.text import Text

__all__ = ["ProgressBar", "fail", "json_text", "plain", "stderr", "visible"]

stderr = Console(stderr=True, highlight=False)

# Control characters in record data (patients type their own names in online bookings) must
# not reach the terminal: ESC starts sequences that set the clipboard (OSC 52), clear the
# screen or hide text, and U+009B is an 8-bit CSI. Tables show them as Python-style escapes;
# tab and newline stay, they move the cursor only as text does.
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)}
_VISIBLE[0x0D] = "\\r"
# JSON escapes C0 itself (\u001b); DEL and C1 are valid raw in JSON strings, so escape them.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def visible(text: str) -> str:
    """``text`` with its control characters (C0 but tab and newline, DEL, C1) as ``\\x1b``."""
    return text.translate(_VISIBLE)


def plain(text: str) -> Text:
    """``text`` for a rich table or print: control characters shown, ``[...]`` not markup."""
    return Text(visible(text))


def json_text(value: Any) -> str:
    """``value`` as indented JSON with no raw control character: C0, DEL and C1 as ``\\u00XX``.

    They can only be inside strings (JSON's own syntax is printable ASCII), where the escape
    means the same character: the data is unchanged for a JSON reader."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_JSON_ESCAPES)


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
    first_line = visible(text.splitlines()[0]) if text else "failed"
    click.echo(f"error: {first_line}", err=True)
    return code
