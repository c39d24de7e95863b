# ruff: noqa: S608  (table and column names come from the models, always quoted by _q)
"""The PostgreSQL backend (asyncpg): native types, ``ON CONFLICT`` upserts, ``COPY`` for rows
a table does not have yet (the first load), the same bookkeeping tables as SQLite.

Columns: ids, integers and links ``BIGINT``, booleans ``BOOLEAN``, datetimes ``TIMESTAMPTZ``,
money and decimals ``NUMERIC`` (exact), dates and times ``TEXT`` (daily availabilities' times of
day), nested values and ``_raw`` ``JSON`` (kept as sent, unlike ``JSONB``).

Many accounts, one database: every table has an ``_account`` column (``TEXT``, ``''`` for a
store opened without one) and it leads every primary key (``(_account, id)``,
``(_account, resource)``), so any number of keys can be mirrored into the same tables, each
by its own ``PostgresStore(url, account=...)``, from any number of processes. Schema 2 added
the column; opening a schema-1 database migrates it in place (its rows become account ``''``).
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
from ._sqlite import COUNTER, Counts, Row, classify_row

#: An asyncpg connection (typed loosely: asyncpg is an optional dependency).
Connection = Any

__all__ = ["PostgresStore"]

#: 1: one account per database. 2: an ``_account`` column leading every primary key.
SCHEMA_VERSION = 2

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
    """A mirror database in PostgreSQL (``postgresql://...``), one connection, one writer.

    ``account``: whose rows this store reads and writes (the ``_account`` column), so many
    keys share one database: a name of your choosing (never the API key), ``''`` by default.
    """

    def __init__(self, url: str, *, account: str = "") -> None:
        if not isinstance(account, str):
            raise ConfigurationError(f"account must be a string, not {type(account).__name__}")
        self.url = url
        self.account = account
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
            if found is not None and int(found) < 2:
                await _add_accounts(db)
            await db.execute(
                "INSERT INTO _mirror_meta VALUES ('schema_version', $1)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(SCHEMA_VERSION),
            )
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_cursors (resource TEXT NOT NULL,"
                " phase TEXT NOT NULL, cursor TEXT, run_started TEXT, resume_id BIGINT,"
                " _account TEXT NOT NULL DEFAULT '', PRIMARY KEY (_account, resource))"
            )
            await db.execute(
                "CREATE TABLE IF NOT EXISTS _mirror_changes (seq BIGSERIAL PRIMARY KEY,"
                " resource TEXT NOT NULL, id BIGINT NOT NULL, kind TEXT NOT NULL, at TEXT,"
                " _account TEXT NOT NULL DEFAULT '')"
            )
            await db.execute(
                "CREATE INDEX IF NOT EXISTS _mirror_changes_account ON _mirror_changes"
                " (_account, seq)"
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
                ['"id" BIGINT NOT NULL']
                + [f"{_q(c.name)} {_TYPES[c.kind]}" for c in cols[1:]]
                + ['"_raw" JSON NOT NULL', '"_deleted_at" TIMESTAMPTZ']
                + ["\"_account\" TEXT NOT NULL DEFAULT ''", 'PRIMARY KEY ("_account", "id")']
            )
            await db.execute(f"CREATE TABLE {_q(p.table)} ({body})")
            return []
        missing = [c for c in cols if c.name not in existing]
        for c in missing:
            await db.execute(f"ALTER TABLE {_q(p.table)} ADD COLUMN {_q(c.name)} {_TYPES[c.kind]}")
        if missing:  # fill the new columns from the JSON kept beside them
            index = {c.name: i for i, c in enumerate(cols)}
            sets = ", ".join(f"{_q(c.name)} = ${i + 3}" for i, c in enumerate(missing))
            for record in await db.fetch(f"SELECT _account, id, _raw FROM {_q(p.table)}"):
                raw = json.loads(record["_raw"])
                cells = project(p.model, structure(raw, p.model), raw)
                values = [_pg(c, cells[index[c.name]]) for c in missing]
                await db.execute(
                    f"UPDATE {_q(p.table)} SET {sets} WHERE _account = $1 AND id = $2",
                    record["_account"], record["id"], *values,
                )  # fmt: skip
        return [f"{p.table}.{c.name}" for c in missing]

    async def cursor(self, resource: str) -> CursorState:
        db = await self._connect()
        async with self._lock:
            r = await db.fetchrow(
                "SELECT phase, cursor, run_started, resume_id FROM _mirror_cursors"
                " WHERE _account = $1 AND resource = $2",
                self.account,
                resource,
            )
        return CursorState(resource) if r is None else CursorState(resource, *r)

    async def cursors(self) -> list[CursorState]:
        db = await self._connect()
        async with self._lock:
            rows = await db.fetch(
                "SELECT resource, phase, cursor, run_started, resume_id FROM _mirror_cursors"
                " WHERE _account = $1 ORDER BY resource",
                self.account,
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
        names = [c.name for c in cols] + ["_raw", "_deleted_at", "_account"]
        account = self.account
        lifecycle = [c.name for c in cols if c.name in ("archived_at", "cancelled_at")]
        counts = Counts()
        async with self._lock, db.transaction():
            select = ", ".join(["id", "_raw::text", "_deleted_at", *map(_q, lifecycle)])
            old: dict[int, tuple[Any, ...]] = {
                r[0]: tuple(r)
                for r in await db.fetch(
                    f"SELECT {select} FROM {table} WHERE _account = $1 AND id = ANY($2::bigint[])",
                    account,
                    [r.id for r in rows],
                )
            }
            fresh: dict[int, tuple[Any, ...]] = {}
            changed: dict[int, tuple[Any, ...]] = {}
            tombstones: list[tuple[dt.datetime | None, str, int]] = []
            events: list[tuple[str, int, str, str | None, str]] = []
            for r in rows:
                kind = classify_row(r, old.get(r.id), lifecycle)
                if kind is None:
                    counts.unchanged += 1
                    continue
                setattr(counts, COUNTER[kind], getattr(counts, COUNTER[kind]) + 1)
                at = {"deleted": r.deleted_at, "archived": r.archived_at,
                      "cancelled": r.cancelled_at}.get(kind)  # fmt: skip
                events.append((resource, r.id, kind, at, account))
                values = (
                    *(_pg(c, v) for c, v in zip(cols, r.cells, strict=True)),
                    r.raw,
                    _when(r.deleted_at),
                    account,
                )
                if r.minimal and r.id in old:
                    tombstones.append((_when(r.deleted_at), account, r.id))
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
                updates = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names[1:-1])
                await db.executemany(
                    f"INSERT INTO {table} ({', '.join(map(_q, names))}) VALUES ({marks})"
                    f" ON CONFLICT (_account, id) DO UPDATE SET {updates}",
                    list(changed.values()),
                )
            if tombstones:
                await db.executemany(
                    f"UPDATE {table} SET _deleted_at = $1 WHERE _account = $2 AND id = $3",
                    tombstones,
                )
            if events:
                await db.executemany(
                    "INSERT INTO _mirror_changes (resource, id, kind, at, _account)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    events,
                )
            if cursor is not None:
                await db.execute(
                    "INSERT INTO _mirror_cursors"
                    " (resource, phase, cursor, run_started, resume_id, _account)"
                    " VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (_account, resource) DO UPDATE SET phase = excluded.phase,"
                    " cursor = excluded.cursor, run_started = excluded.run_started,"
                    " resume_id = excluded.resume_id",
                    cursor.resource, cursor.phase, cursor.cursor, cursor.run_started,
                    cursor.resume_id, account,
                )  # fmt: skip
        return counts

    async def changes(self, since: int, limit: int = 1000) -> list[Change]:
        db = await self._connect()
        async with self._lock:
            rows = await db.fetch(
                "SELECT seq, resource, id, kind, at FROM _mirror_changes"
                " WHERE _account = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                self.account,
                since,
                limit,
            )
        return [Change(kind=r[3], resource=r[1], id=r[2], at=r[4], seq=r[0]) for r in rows]

    async def last_seq(self) -> int:
        db = await self._connect()
        async with self._lock:
            seq = await db.fetchval(
                "SELECT coalesce(max(seq), 0) FROM _mirror_changes WHERE _account = $1",
                self.account,
            )
        return int(seq)

    async def table_counts(self) -> dict[str, tuple[int, int]]:
        db = await self._connect()
        out = {}
        async with self._lock:
            for name, p in self._plans.items():
                r = await db.fetchrow(
                    f"SELECT count(*), count(_deleted_at) FROM {_q(p.table)} WHERE _account = $1",
                    self.account,
                )
                assert r is not None
                out[name] = (int(r[0]), int(r[1]))
        return out

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


async def _add_accounts(db: Connection) -> None:
    """Schema 1 -> 2, in the caller's transaction: an ``_account`` column (``''``) on every
    mirror table, leading its primary key."""
    tables = [
        r[0]
        for r in await db.fetch(
            "SELECT c.table_name FROM information_schema.columns c"
            " WHERE c.table_schema = current_schema() AND c.column_name = '_raw'"
        )
    ]
    for table, key in [*((t, "id") for t in tables), ("_mirror_cursors", "resource")]:
        await db.execute(
            f"ALTER TABLE {_q(table)} ADD COLUMN IF NOT EXISTS _account TEXT NOT NULL DEFAULT ''"
        )
        pkey = await db.fetchval(
            "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'",
            _q(table),
        )
        if pkey is not None:
            await db.execute(f"ALTER TABLE {_q(table)} DROP CONSTRAINT {_q(pkey)}")
        await db.execute(f"ALTER TABLE {_q(table)} ADD PRIMARY KEY (_account, {_q(key)})")
    await db.execute(
        "ALTER TABLE _mirror_changes ADD COLUMN IF NOT EXISTS _account TEXT NOT NULL DEFAULT ''"
    )
