# ruff: noqa: S608  (table and column names come from the models, always quoted by _q)
"""The SQLite backend: stdlib ``sqlite3`` on one writer thread, WAL, one table per resource.

Every write is one transaction holding a batch of rows, the change events they cause and (when
given) the resource's new cursor, so a cursor never runs ahead of the rows it accounts for.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs

from .._converter import structure
from ._changes import Change, ChangeKind
from ._cursors import CursorState
from ._plan import ResourcePlan
from ._schema import Column, columns, project

__all__ = ["COUNTER", "Counts", "Row", "SQLiteStore", "classify_row"]

SCHEMA_VERSION = 1
T = TypeVar("T")


@attrs.frozen
class Row:
    """One record to store: its cells (the model's columns, id first) and lifecycle times."""

    id: int
    cells: tuple[Any, ...]
    raw: str
    deleted_at: str | None
    archived_at: str | None
    cancelled_at: str | None
    minimal: bool = False  # a deleted-list record with only deleted_at and links


@attrs.define
class Counts:
    """What a batch did to a table."""

    inserted: int = 0
    updated: int = 0
    archived: int = 0
    cancelled: int = 0
    deleted: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        for f in attrs.fields(Counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def classify_row(r: Row, old: tuple[Any, ...] | None, lifecycle: list[str]) -> ChangeKind | None:
    """The event a stored row gets from ``r``: ``old`` is (id, raw, deleted_at, *lifecycle)."""
    if old is None:
        return "deleted" if r.deleted_at else "created"
    _, raw, deleted_at, *states = old
    was = dict(zip(lifecycle, states, strict=True))
    if r.deleted_at:
        return None if deleted_at else "deleted"
    if r.archived_at and not was.get("archived_at"):
        return "archived"
    if r.cancelled_at and not was.get("cancelled_at"):
        return "cancelled"
    if raw != r.raw or deleted_at:
        return "updated"
    return None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SQLiteStore:
    """A mirror database in one SQLite file (``path``), written from one worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cliniko-mirror")
        self._db: sqlite3.Connection | None = None
        self._plans: dict[str, ResourcePlan] = {}

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- opening and migrating ------------------------------------------------------------
    async def open(self, plans: Sequence[ResourcePlan]) -> list[str]:
        """Create or migrate the tables for ``plans``; return the columns added (``t.c``)."""
        return await self._run(self._open, list(plans))

    def _open(self, plans: list[ResourcePlan]) -> list[str]:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._db = db
        db = self._db
        added: list[str] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS _mirror_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM _mirror_meta WHERE key='schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer cliniko-async (schema {row[0]})"
                )
            db.execute(
                "INSERT OR REPLACE INTO _mirror_meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_cursors (resource TEXT PRIMARY KEY,"
                " phase TEXT NOT NULL, cursor TEXT, run_started TEXT, resume_id INTEGER)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_changes (seq INTEGER PRIMARY KEY"
                " AUTOINCREMENT, resource TEXT NOT NULL, id INTEGER NOT NULL, kind TEXT NOT NULL,"
                " at TEXT)"
            )
            for p in plans:
                added += self._table(db, p)
                self._plans[p.name] = p
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    def _table(self, db: sqlite3.Connection, p: ResourcePlan) -> list[str]:
        cols = columns(p.model)
        existing = {r[1] for r in db.execute(f"PRAGMA table_info({_q(p.table)})")}
        if not existing:
            body = ", ".join(
                [f"{_q('id')} INTEGER PRIMARY KEY"]
                + [f"{_q(c.name)} {c.sql_type}" for c in cols[1:]]
                + ['"_raw" TEXT NOT NULL', '"_deleted_at" TEXT']
            )
            db.execute(f"CREATE TABLE {_q(p.table)} ({body})")
            if any(c.name == "updated_at" for c in cols):
                db.execute(
                    f"CREATE INDEX IF NOT EXISTS {_q(p.table + '_updated_at')}"
                    f" ON {_q(p.table)} (updated_at)"
                )
            return []
        missing = [c for c in cols if c.name not in existing]
        for c in missing:  # additive migration: new model fields become new columns
            db.execute(f"ALTER TABLE {_q(p.table)} ADD COLUMN {_q(c.name)} {c.sql_type}")
        if missing:
            self._backfill(db, p, missing)
        return [f"{p.table}.{c.name}" for c in missing]

    def _backfill(self, db: sqlite3.Connection, p: ResourcePlan, missing: list[Column]) -> None:
        """Fill new columns of rows already stored, from the JSON kept beside them."""
        cols = columns(p.model)
        index = {c.name: i for i, c in enumerate(cols)}
        sets = ", ".join(f"{_q(c.name)} = ?" for c in missing)
        rows = db.execute(f"SELECT id, _raw FROM {_q(p.table)}").fetchall()
        for rid, raw_text in rows:
            raw = json.loads(raw_text)
            cells = project(p.model, structure(raw, p.model), raw)
            values = [cells[index[c.name]] for c in missing]
            db.execute(f"UPDATE {_q(p.table)} SET {sets} WHERE id = ?", (*values, rid))

    # -- cursors ---------------------------------------------------------------------------
    async def cursor(self, resource: str) -> CursorState:
        return await self._run(self._cursor, resource)

    def _cursor(self, resource: str) -> CursorState:
        assert self._db is not None
        row = self._db.execute(
            "SELECT phase, cursor, run_started, resume_id FROM _mirror_cursors WHERE resource=?",
            (resource,),
        ).fetchone()
        if row is None:
            return CursorState(resource)
        return CursorState(resource, row[0], row[1], row[2], row[3])

    async def cursors(self) -> list[CursorState]:
        return await self._run(self._cursors)

    def _cursors(self) -> list[CursorState]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT resource, phase, cursor, run_started, resume_id FROM _mirror_cursors"
            " ORDER BY resource"
        ).fetchall()
        return [CursorState(*r) for r in rows]

    @staticmethod
    def _save_cursor(db: sqlite3.Connection, state: CursorState) -> None:
        db.execute(
            "INSERT OR REPLACE INTO _mirror_cursors VALUES (?, ?, ?, ?, ?)",
            (state.resource, state.phase, state.cursor, state.run_started, state.resume_id),
        )

    async def save_cursor(self, state: CursorState) -> None:
        await self.write(state.resource, [], cursor=state)

    # -- writing ---------------------------------------------------------------------------
    async def write(
        self, resource: str, rows: Sequence[Row], *, cursor: CursorState | None = None
    ) -> Counts:
        """Upsert ``rows``, log their changes and save ``cursor``: one transaction."""
        return await self._run(self._write, resource, list(rows), cursor)

    def _write(self, resource: str, rows: list[Row], cursor: CursorState | None) -> Counts:
        assert self._db is not None
        db = self._db
        p = self._plans[resource]
        table = _q(p.table)
        cols = columns(p.model)
        names = [c.name for c in cols] + ["_raw", "_deleted_at"]
        marks = ", ".join("?" * len(names))
        updates = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names[1:])
        upsert = (
            f"INSERT INTO {table} ({', '.join(map(_q, names))}) VALUES ({marks})"
            f" ON CONFLICT(id) DO UPDATE SET {updates}"
        )
        lifecycle = [c.name for c in cols if c.name in ("archived_at", "cancelled_at")]
        counts = Counts()
        db.execute("BEGIN IMMEDIATE")
        try:
            old: dict[int, tuple[Any, ...]] = {}
            ids = [r.id for r in rows]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                select = ", ".join(["id", "_raw", "_deleted_at", *map(_q, lifecycle)])
                for found in db.execute(
                    f"SELECT {select} FROM {table} WHERE id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ):
                    old[found[0]] = found
            events: list[tuple[str, int, str, str | None]] = []
            for r in rows:
                kind = classify_row(r, old.get(r.id), lifecycle)
                if kind is None:
                    counts.unchanged += 1
                    continue
                setattr(counts, COUNTER[kind], getattr(counts, COUNTER[kind]) + 1)
                at = {"deleted": r.deleted_at, "archived": r.archived_at,
                      "cancelled": r.cancelled_at}.get(kind)  # fmt: skip
                events.append((resource, r.id, kind, at))
                if r.minimal and r.id in old:  # keep the full record, mark it deleted
                    db.execute(
                        f"UPDATE {table} SET _deleted_at = ? WHERE id = ?", (r.deleted_at, r.id)
                    )
                else:
                    db.execute(upsert, (*r.cells, r.raw, r.deleted_at))
                old[r.id] = (r.id, r.raw, r.deleted_at, r.archived_at, r.cancelled_at)
            if events:
                db.executemany(
                    "INSERT INTO _mirror_changes (resource, id, kind, at) VALUES (?, ?, ?, ?)",
                    events,
                )
            if cursor is not None:
                self._save_cursor(db, cursor)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return counts

    # -- reading ---------------------------------------------------------------------------
    async def changes(self, since: int, limit: int = 1000) -> list[Change]:
        return await self._run(self._changes, since, limit)

    def _changes(self, since: int, limit: int) -> list[Change]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT seq, resource, id, kind, at FROM _mirror_changes WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (since, limit),
        ).fetchall()
        return [Change(kind=r[3], resource=r[1], id=r[2], at=r[4], seq=r[0]) for r in rows]

    async def last_seq(self) -> int:
        """The position of the last logged change (0: none)."""
        return await self._run(self._last_seq)

    def _last_seq(self) -> int:
        assert self._db is not None
        (seq,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM _mirror_changes").fetchone()
        return int(seq)

    async def table_counts(self) -> dict[str, tuple[int, int]]:
        """Rows and tombstones per table."""
        return await self._run(self._table_counts)

    def _table_counts(self) -> dict[str, tuple[int, int]]:
        assert self._db is not None
        out = {}
        for name, p in self._plans.items():
            rows, dead = self._db.execute(
                f"SELECT count(*), count(_deleted_at) FROM {_q(p.table)}"
            ).fetchone()
            out[name] = (int(rows), int(dead))
        return out

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)


COUNTER: dict[ChangeKind, str] = {
    "created": "inserted", "updated": "updated", "archived": "archived",
    "cancelled": "cancelled", "deleted": "deleted",
}  # fmt: skip
