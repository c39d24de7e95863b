# ruff: noqa: S608  (table and column names come from the models, always quoted by _q)
"""The PostgreSQL backend (asyncpg): native types, ``ON CONFLICT`` upserts, ``COPY`` for rows
a table does not have yet (the first load), the same bookkeeping tables as SQLite.

Columns: ids, integers and links ``BIGINT``, booleans ``BOOLEAN``, datetimes ``TIMESTAMPTZ``,
money and decimals ``NUMERIC`` (exact), dates and times ``TEXT`` (daily availabilities' times of
day), nested values and ``_raw`` ``JSON`` (kept as sent, unlike ``JSONB``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .._converter import structure
from ..errors import ConfigurationError
from ._changes import Change
from ._cursors import CursorState, from_iso
from ._plan import ResourcePlan
from ._schema import Column, columns, project
from ._sqlite import COUNTER, SCHEMA_VERSION, Counts, Row, classify_row

#: An asyncpg connection (typed loosely: asyncpg is an optional dependency).
Connection = Any

__all__ = ["PostgresStore"]

_TYPES = {
    "id": "BIGINT", "int": "BIGINT", "link": "BIGINT", "bool": "BOOLEAN",
    "datetime": "TIMESTAMPTZ", "decimal": "NUMERIC", "real": "DOUBLE PRECISION",
    "text": "TEXT", "date": "TEXT", "json": "JSON",
}  # fmt: skip


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg(column: Column, value: Any) -> Any:
    """A cell as projected (SQLite-ready) -> the value asyncpg sends for the column's type."""
    if value is None:
        return None
    if column.kind == "bool":
        return bool(value)
    if column.kind == "datetime":
        return from_iso(value)
    if column.kind == "decimal":
        return Decimal(value)
    return value


def _when(value: str | None) -> dt.datetime | None:
    return from_iso(value) if value else None


class PostgresStore:
    """A mirror database in PostgreSQL (``postgresql://...``), one connection, one writer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._db: Connection | None = None
        self._lock = asyncio.Lock()
        self._plans: dict[str, ResourcePlan] = {}

    async def _connect(self) -> Connection:
        if self._db is None:
            try:
                asyncpg = importlib.import_module("asyncpg")
            except ImportError:
                raise ConfigurationError(
                    "a postgresql:// mirror needs asyncpg: pip install asyncpg"
                ) from None
            self._db = await asyncpg.connect(self.url)
        return self._db

    async def open(self, plans: Sequence[ResourcePlan]) -> list[str]:
        db = await self._connect()
        added: list[str] = []
        async with self._lock, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(1717)")  # one migrator at a time
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            found = await db.fetchval("SELECT value FROM _mirror_meta WHERE key='schema_version'")
            if found is not None and int(found) > SCHEMA_VERSION:
                raise RuntimeError(f"written by a newer cliniko-async (schema {found})")
            await db.execute(
                "INSERT INTO _mirror_meta VALUES ('schema_version', $1)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(SCHEMA_VERSION),
            )
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_cursors (resource TEXT PRIMARY KEY,"
                " phase TEXT NOT NULL, cursor TEXT, run_started TEXT, resume_id BIGINT)"
            )
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_changes (seq BIGSERIAL PRIMARY KEY,"
                " resource TEXT NOT NULL, id BIGINT NOT NULL, kind TEXT NOT NULL, at TEXT)"
            )
            for p in plans:
                added += await self._table(db, p)
                self._plans[p.name] = p
        return added

    async def _table(self, db: Connection, p: ResourcePlan) -> list[str]:
        cols = columns(p.model)
        existing = {
            r["column_name"]
            for r in await db.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = $1",
                p.table,
            )
        }
        if not existing:
            body = ", ".join(
                ['"id" BIGINT PRIMARY KEY']
                + [f"{_q(c.name)} {_TYPES[c.kind]}" for c in cols[1:]]
                + ['"_raw" JSON NOT NULL', '"_deleted_at" TIMESTAMPTZ']
            )
            await db.execute(f"CREATE TABLE {_q(p.table)} ({body})")
            return []
        missing = [c for c in cols if c.name not in existing]
        for c in missing:
            await db.execute(f"ALTER TABLE {_q(p.table)} ADD COLUMN {_q(c.name)} {_TYPES[c.kind]}")
        if missing:  # fill the new columns from the JSON kept beside them
            index = {c.name: i for i, c in enumerate(cols)}
            sets = ", ".join(f"{_q(c.name)} = ${i + 2}" for i, c in enumerate(missing))
            for record in await db.fetch(f"SELECT id, _raw FROM {_q(p.table)}"):
                raw = json.loads(record["_raw"])
                cells = project(p.model, structure(raw, p.model), raw)
                values = [_pg(c, cells[index[c.name]]) for c in missing]
                await db.execute(
                    f"UPDATE {_q(p.table)} SET {sets} WHERE id = $1", record["id"], *values
                )
        return [f"{p.table}.{c.name}" for c in missing]

    async def cursor(self, resource: str) -> CursorState:
        db = await self._connect()
        async with self._lock:
            r = await db.fetchrow(
                "SELECT phase, cursor, run_started, resume_id FROM _mirror_cursors"
                " WHERE resource = $1",
                resource,
            )
        return CursorState(resource) if r is None else CursorState(resource, *r)

    async def cursors(self) -> list[CursorState]:
        db = await self._connect()
        async with self._lock:
            rows = await db.fetch(
                "SELECT resource, phase, cursor, run_started, resume_id FROM _mirror_cursors"
                " ORDER BY resource"
            )
        return [CursorState(*r) for r in rows]

    async def save_cursor(self, state: CursorState) -> None:
        await self.write(state.resource, [], cursor=state)

    async def write(
        self, resource: str, rows: Sequence[Row], *, cursor: CursorState | None = None
    ) -> Counts:
        """Upsert ``rows`` (``COPY`` those the table lacks), log their changes and save
        ``cursor``: one transaction."""
        db = await self._connect()
        p = self._plans[resource]
        cols = columns(p.model)
        table = _q(p.table)
        names = [c.name for c in cols] + ["_raw", "_deleted_at"]
        lifecycle = [c.name for c in cols if c.name in ("archived_at", "cancelled_at")]
        counts = Counts()
        async with self._lock, db.transaction():
            select = ", ".join(["id", "_raw::text", "_deleted_at", *map(_q, lifecycle)])
            old: dict[int, tuple[Any, ...]] = {
                r[0]: tuple(r)
                for r in await db.fetch(
                    f"SELECT {select} FROM {table} WHERE id = ANY($1::bigint[])",
                    [r.id for r in rows],
                )
            }
            fresh: dict[int, tuple[Any, ...]] = {}
            changed: dict[int, tuple[Any, ...]] = {}
            tombstones: list[tuple[dt.datetime | None, int]] = []
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
                values = (
                    *(_pg(c, v) for c, v in zip(cols, r.cells, strict=True)),
                    r.raw,
                    _when(r.deleted_at),
                )
                if r.minimal and r.id in old:
                    tombstones.append((_when(r.deleted_at), r.id))
                elif r.id in old or r.id in fresh:
                    fresh.pop(r.id, None)
                    changed[r.id] = values
                else:
                    fresh[r.id] = values
                old[r.id] = (r.id, r.raw, r.deleted_at, r.archived_at, r.cancelled_at)
            if fresh:
                await db.copy_records_to_table(p.table, records=fresh.values(), columns=names)
            if changed:
                marks = ", ".join(f"${i + 1}" for i in range(len(names)))
                updates = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names[1:])
                await db.executemany(
                    f"INSERT INTO {table} ({', '.join(map(_q, names))}) VALUES ({marks})"
                    f" ON CONFLICT (id) DO UPDATE SET {updates}",
                    list(changed.values()),
                )
            if tombstones:
                await db.executemany(
                    f"UPDATE {table} SET _deleted_at = $1 WHERE id = $2", tombstones
                )
            if events:
                await db.executemany(
                    "INSERT INTO _mirror_changes (resource, id, kind, at) VALUES ($1, $2, $3, $4)",
                    events,
                )
            if cursor is not None:
                await db.execute(
                    "INSERT INTO _mirror_cursors VALUES ($1, $2, $3, $4, $5)"
                    " ON CONFLICT (resource) DO UPDATE SET phase = excluded.phase,"
                    " cursor = excluded.cursor, run_started = excluded.run_started,"
                    " resume_id = excluded.resume_id",
                    cursor.resource, cursor.phase, cursor.cursor, cursor.run_started,
                    cursor.resume_id,
                )  # fmt: skip
        return counts

    async def changes(self, since: int, limit: int = 1000) -> list[Change]:
        db = await self._connect()
        async with self._lock:
            rows = await db.fetch(
                "SELECT seq, resource, id, kind, at FROM _mirror_changes WHERE seq > $1"
                " ORDER BY seq LIMIT $2",
                since,
                limit,
            )
        return [Change(kind=r[3], resource=r[1], id=r[2], at=r[4], seq=r[0]) for r in rows]

    async def last_seq(self) -> int:
        db = await self._connect()
        async with self._lock:
            return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM _mirror_changes"))

    async def table_counts(self) -> dict[str, tuple[int, int]]:
        db = await self._connect()
        out = {}
        async with self._lock:
            for name, p in self._plans.items():
                r = await db.fetchrow(f"SELECT count(*), count(_deleted_at) FROM {_q(p.table)}")
                assert r is not None
                out[name] = (int(r[0]), int(r[1]))
        return out

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
