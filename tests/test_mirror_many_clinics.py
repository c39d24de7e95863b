"""Many clinics into one PostgreSQL through the documented recipe (docs/mirror-many-clinics.md,
``examples/mirror_many_clinics.py``): 20 keys, real taskiq worker processes, each key's budget in
Redis, the fake Cliniko served on loopback counting arrivals per key. Real time, compressed
limit (``20/8`` per key, paced: burst 4), so it runs in about half a minute."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from cliniko_async.mirror import ResourcePlan, plan
from cliniko_async.testing import DEFAULT_USER_AGENT, FakeCliniko, serve, settle
from cliniko_async.testing._redis_server import RedisServer

from .test_mirror import _served
from .test_mirror_postgres import database, server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mirror-many-clinics.md"
EXAMPLE = ROOT / "examples" / "mirror_many_clinics.py"
KEYS, LIMIT, PERIOD, BURST = 20, 20, 8.0, 4


def doc_commands() -> list[list[str]]:
    """The shell commands of the recipe's page, as argument lists (``console`` blocks)."""
    blocks = re.findall(r"^```console\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)
    return [line.removeprefix("$ ").split() for b in blocks for line in b.splitlines() if line]


def test_the_page_shows_the_example_file_as_it_is() -> None:
    shown = re.findall(r"^```py\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)
    assert shown == [EXAMPLE.read_text()]
    assert ["python", "-m", "examples.mirror_many_clinics"] in doc_commands()
    assert "mirror-many-clinics.md" in (ROOT / "mkdocs.yml").read_text()


async def assert_account_mirrors_the_fake(
    db: Any, account: str, fake: FakeCliniko, plans: list[ResourcePlan], base: str
) -> int:
    """``tests.test_mirror.assert_mirrors_the_account`` for one account of a PostgreSQL
    mirror: every listable record as served, tombstones exactly where the fake deleted."""
    compared = 0
    for p in plans:
        rows = {
            r["id"]: (json.loads(r["raw"]), r["_deleted_at"])
            for r in await db.fetch(
                f'SELECT id, _raw::text AS raw, _deleted_at FROM "{p.name}"'  # noqa: S608
                " WHERE _account = $1",
                account,
            )
        }
        listable = {
            int(r["id"]): r
            for r in fake.data.get(p.name, {}).values()
            if "id" in r and (p.lifecycle or not (r.get("archived_at") or r.get("deleted_at")))
        }
        assert set(rows) == set(listable), (account, p.name)
        for rid, record in listable.items():
            raw, dead = rows[rid]
            assert raw == _served(fake, record, p.name, base), (account, p.name, rid)
            assert (dead is not None) == bool(record.get("deleted_at")), (account, p.name, rid)
            compared += 1
    return compared


async def test_twenty_keys_two_worker_processes_one_postgres(
    database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """0 x 429; every key runs at least 0.95 of the speed its limit allows (``n`` requests
    paced with a burst of ``BURST``: ``(n - BURST) * PERIOD / LIMIT`` seconds from the first
    to the last, against the time they took); both worker processes ran jobs; every
    account's tables equal the fake's records."""
    keys = {f"clinic-{i:02d}": f"MS0xLW1pcnJvci1rZXktMDA{i:02d}-au1" for i in range(KEYS)}
    fake = FakeCliniko(
        patients=150, appointments=300, records_per_resource=5,
        api_keys=tuple(keys.values()), rate_limit=(LIMIT, PERIOD),
    )  # fmt: skip
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys))
    keys_file.chmod(0o600)
    taskiq = str(Path(sys.executable).parent / "taskiq")
    worker_cmd, enqueue_cmd = doc_commands()[:2]
    assert worker_cmd[:3] == ["taskiq", "worker", "examples.mirror_many_clinics:broker"]
    assert worker_cmd[3:] == ["--workers", "2", "--max-async-tasks", "20"]
    with RedisServer() as redis, serve(fake) as url:
        settle(fake)  # on the served fake's clock: real time
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis.url,
            "MIRROR_DATABASE_URL": database,
            "CLINIKO_KEYS_FILE": str(keys_file),
            "CLINIKO_USER_AGENT": DEFAULT_USER_AGENT,
            "CLINIKO_BASE_URL": url,
            "CLINIKO_RATE_LIMIT": f"{LIMIT}/{PERIOD:g}/{BURST}",
        }
        workers = subprocess.Popen(  # noqa: ASYNC220 - starting them does not block
            [taskiq, *worker_cmd[1:]], cwd=ROOT, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, *enqueue_cmd[1:]],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
            )  # fmt: skip
        finally:
            os.killpg(workers.pid, signal.SIGTERM)
            try:
                _, errors = await asyncio.to_thread(workers.communicate, timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(workers.pid, signal.SIGKILL)
                _, errors = await asyncio.to_thread(workers.communicate, timeout=30)
    assert done.returncode == 0, done.stderr[-3000:] + errors.decode()[-3000:]
    assert b"Traceback" not in errors, errors.decode()[-3000:]  # no worker process died
    summaries = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(summaries) == 2 * KEYS
    assert all(s["skipped"] == [] for s in summaries)
    assert len({s["worker"] for s in summaries}) == 2  # 20 jobs at a time each: both ran some
    rates = {}
    for account, key in keys.items():
        stats = fake.stats(key)
        assert stats.rejected == 0, account
        sent = sum(s["requests"] for s in summaries if s["account"] == account)
        assert len(stats.accepted) == sent > 40
        span = stats.accepted[-1] - stats.accepted[0]
        rates[account] = (len(stats.accepted) - BURST) * PERIOD / LIMIT / span
    split = sum(len({s["worker"] for s in summaries if s["account"] == a}) == 2 for a in keys)
    print(f"\nrate / limit per key: min {min(rates.values()):.3f}, max {max(rates.values()):.3f};"
          f" {split} of {KEYS} keys ran in both processes")  # fmt: skip
    assert min(rates.values()) >= 0.95, rates
    db = await asyncpg.connect(database)
    try:
        plans = plan()
        compared = [await assert_account_mirrors_the_fake(db, a, fake, plans, url) for a in keys]
        assert await db.fetchval('SELECT count(DISTINCT _account) FROM "patients"') == KEYS
    finally:
        await db.close()
    assert min(compared) > 500
