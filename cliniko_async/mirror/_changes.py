"""Change events: from a mirror's log (``Mirror.changes``) or straight from the API
(:class:`ChangeFeed`, no database: the webhook Cliniko does not have)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._filters import q
from ._cursors import from_iso, to_iso
from ._plan import ResourcePlan, plan
from ._schema import record_id

if TYPE_CHECKING:
    from .._client import Cliniko

__all__ = ["Change", "ChangeFeed", "ChangeKind", "classify"]

ChangeKind = Literal["created", "updated", "archived", "cancelled", "deleted"]


@attrs.frozen
class Change:
    """One change to one record.

    ``seq`` is the event's position in a mirror's log (pass it back as ``since=``); it is None
    for events from a :class:`ChangeFeed`. ``at`` is when it happened by the record's own
    timestamps (``deleted_at``, ``archived_at``, ``cancelled_at`` or ``updated_at``), ISO UTC.
    ``record`` is the record as Cliniko sent it (ChangeFeed only).
    """

    kind: ChangeKind
    resource: str
    id: int
    at: str | None = None
    seq: int | None = None
    record: dict[str, Any] | None = attrs.field(default=None, eq=False, repr=False)


def _when(raw: dict[str, Any], name: str) -> dt.datetime | None:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        return None
    try:
        return from_iso(value)
    except ValueError:
        return None


def classify(raw: dict[str, Any], since: dt.datetime) -> tuple[ChangeKind, str | None]:
    """What happened to ``raw`` since ``since``, judged by its own timestamps."""
    for name, kind in (("deleted_at", "deleted"), ("archived_at", "archived"),
                       ("cancelled_at", "cancelled")):  # fmt: skip
        when = _when(raw, name)
        if when is not None and (kind == "deleted" or when >= since):
            return kind, to_iso(when)  # type: ignore[return-value]
    created = _when(raw, "created_at")
    updated = _when(raw, "updated_at")
    at = to_iso(updated) if updated else None
    if created is not None and created >= since:
        return "created", to_iso(created)
    return "updated", at


class ChangeFeed:
    """Changes to an account since a cursor, read from the API with no database.

    ::

        feed = ChangeFeed(cliniko, resources=["patients"], cursor=saved)  # saved: str | None
        async for change in feed.poll():
            ...
        saved = feed.cursor   # store it; advanced only when poll() has run to the end

    The cursor holds, per resource, the time of the last poll and the records seen in the
    overlap window before it, so a record re-read because of the overlap is not reported twice.
    A feed without a cursor starts now (its first poll reports nothing older).
    """

    def __init__(
        self,
        cliniko: Cliniko,
        *,
        resources: Iterable[str] | None = None,
        cursor: str | None = None,
        overlap: dt.timedelta = dt.timedelta(minutes=5),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cliniko = cliniko
        self._plans = [p for p in plan(resources) if p.incremental]
        self._overlap = overlap
        self._clock = clock
        self._state: dict[str, dict[str, Any]] = json.loads(cursor) if cursor else {}
        self.cursor = cursor or self._start()

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _start(self) -> str:
        now = to_iso(self._now())
        self._state = {p.name: {"since": now, "seen": {}} for p in self._plans}
        return json.dumps(self._state, sort_keys=True)

    async def poll(self) -> AsyncIterator[Change]:
        """Every change since the cursor, resource by resource; then the cursor advances."""
        started = self._now()
        new_state: dict[str, dict[str, Any]] = {}
        for p in self._plans:
            state = self._state.get(p.name) or {"since": to_iso(started), "seen": {}}
            since = from_iso(state["since"])
            seen: dict[str, str] = state["seen"]
            keep: dict[str, str] = {}
            reported: dict[int, str] = {}
            horizon = started - self._overlap
            async for raw in self._read(p, since - self._overlap):
                rid = record_id(raw)
                if rid is None:
                    continue
                stamp = f"{raw.get('updated_at')}|{raw.get('deleted_at')}"
                updated = _when(raw, "updated_at")
                if updated is not None and updated >= horizon:
                    keep[str(rid)] = stamp
                if seen.get(str(rid)) == stamp or reported.get(rid) == stamp:
                    continue  # seen by the last poll (overlap) or by this one (two queries)
                reported[rid] = stamp
                kind, at = classify(raw, since)
                yield Change(kind=kind, resource=p.name, id=rid, at=at, record=raw)
            new_state[p.name] = {"since": to_iso(started), "seen": keep}
        self._state = new_state
        self.cursor = json.dumps(new_state, sort_keys=True)

    async def _read(self, p: ResourcePlan, since: dt.datetime) -> AsyncIterator[dict[str, Any]]:
        from ._engine import raw_pages

        filters = [q("updated_at") >= since, *(q(f).any() for f in p.lifecycle)]
        by_id = p.resume_by_id  # keyset pages: nothing deleted meanwhile can shift a page
        async for page in raw_pages(self._cliniko, p, "list", filters, concurrency=1, by_id=by_id):
            for raw, _ in page.items:
                yield raw
        if p.deletions in ("filter", "list"):
            op = "list" if p.deletions == "filter" else "list_deleted"
            async for page in raw_pages(
                self._cliniko, p, op, [q("deleted_at") >= since], concurrency=1, by_id=by_id
            ):
                for raw, _ in page.items:
                    yield raw
