"""Where each resource's mirror stands: its phase, its ``updated_at`` cursor, its resume point."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

__all__ = ["CursorState", "from_iso", "to_iso"]

Phase = Literal["full", "incremental"]


def to_iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@attrs.frozen
class CursorState:
    """One resource's progress, stored in ``_mirror_cursors`` and changed only in the same
    transaction as the rows it accounts for.

    ``phase``: ``"full"`` until the first complete copy is committed, then ``"incremental"``.
    ``cursor``: the time from which the next run asks for changes (``updated_at``), minus the
    overlap window. ``run_started``: when the current (unfinished) run began; it becomes the
    cursor once the run's last rows are committed. ``resume_id``: during a first copy, the last
    id committed (the copy resumes after it).
    """

    resource: str
    phase: Phase = "full"
    cursor: str | None = None
    run_started: str | None = None
    resume_id: int | None = None
