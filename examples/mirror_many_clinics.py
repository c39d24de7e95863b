"""Many clinics, one PostgreSQL: taskiq workers run the mirror, every key's budget in Redis.

Each clinic (an account: a name of yours, and its API key) is mirrored into the same tables,
told apart by their ``_account`` column. Its resources are split into ``parts`` jobs, so a big
clinic spreads over several workers, and whichever workers, processes or machines run a
clinic's jobs, they share its one rate limit through Redis: none of them gets a 429.

Workers (as many processes and machines as you like; each runs 20 jobs at a time)::

    taskiq worker examples.mirror_many_clinics:broker --workers 2 --max-async-tasks 20

Every 15 minutes (cron, a systemd timer, a scheduler): queue every clinic, wait, print::

    python -m examples.mirror_many_clinics

Settings (environment): ``REDIS_URL``, ``MIRROR_DATABASE_URL`` (``postgresql://...``),
``CLINIKO_KEYS_FILE`` (a JSON object, account name -> API key, readable by the workers only:
keys never travel through the queue), ``CLINIKO_USER_AGENT`` (``"App (you@example.com)"``),
and optionally ``CLINIKO_RATE_LIMIT`` (``requests/seconds[/burst]``, default Cliniko's
``200/60``) and ``CLINIKO_BASE_URL`` (a test server; by default each key's shard).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncGenerator
from typing import Any

import attrs
from redis.asyncio import Redis
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from cliniko_async import Cliniko, RateLimit
from cliniko_async.mirror import Mirror, plan
from cliniko_async.redis import RedisLimiterBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
DATABASE_URL = os.environ.get("MIRROR_DATABASE_URL", "postgresql://localhost/cliniko")


class Queue(ListQueueBroker):
    """taskiq-redis's list queue, waiting for jobs 2 s at a time: its own wait has no end,
    which redis>=8's default socket timeout (5 s) cuts off, killing the worker process and the
    jobs it runs, and which keeps a stopping worker waiting."""

    async def listen(self) -> AsyncGenerator[bytes, None]:
        while True:
            async with Redis(connection_pool=self.connection_pool) as redis:
                popped = await redis.brpop([self.queue_name], timeout=2)
            if popped is not None:
                _, message = popped
                yield message if isinstance(message, bytes) else message.encode()


broker = Queue(REDIS_URL, queue_name="cliniko-mirror").with_result_backend(
    RedisAsyncResultBackend(REDIS_URL, result_ex_time=24 * 3600)
)
#: One per worker process (it opens its Redis connections when first used): every key's
#: budget, shared with every other process that uses the same Redis.
limiter = RedisLimiterBackend(REDIS_URL)


def api_keys() -> dict[str, str]:
    """Account name -> API key, from the workers' own file (rotated keys: read per job)."""
    with open(os.environ["CLINIKO_KEYS_FILE"], encoding="utf-8") as file:
        keys: dict[str, str] = json.load(file)
    return keys


def rate_limit() -> RateLimit:
    """``CLINIKO_RATE_LIMIT`` as ``requests/seconds[/burst]`` (default ``200/60``)."""
    requests, period, *burst = os.environ.get("CLINIKO_RATE_LIMIT", "200/60").split("/")
    return RateLimit(int(requests), float(period), burst=int(burst[0]) if burst else None)


@broker.task(task_name="cliniko.mirror_account")
async def mirror_account(account: str, resources: list[str]) -> dict[str, Any]:
    """One run of ``resources`` of ``account``: everything the first time, then what changed
    (a run cut short, a worker killed, resumes where it stopped the next time)."""
    async with (
        Cliniko(
            api_key=api_keys()[account],
            user_agent=os.environ["CLINIKO_USER_AGENT"],
            base_url=os.environ.get("CLINIKO_BASE_URL"),
            rate_limit=rate_limit(),
            limiter=limiter,
        ) as cliniko,
        Mirror(cliniko, DATABASE_URL, account=account, resources=resources) as mirror,
    ):
        result = await mirror.run()
    return {
        "account": account,
        "resources": len(resources),
        "requests": result.requests,
        "elapsed": round(result.elapsed, 2),
        "skipped": sorted(name for name, r in result.resources.items() if r.error),
        "worker": os.getpid(),
        **attrs.asdict(result.totals),
    }


def parts_of_the_account(parts: int) -> list[list[str]]:
    """Every resource the mirror can copy, dealt into ``parts`` jobs."""
    names = [p.name for p in plan()]
    return [names[i::parts] for i in range(parts)]


async def mirror_all(
    accounts: list[str], *, parts: int = 2, max_wait: float = 3600.0
) -> list[dict[str, Any]]:
    """Queue ``parts`` jobs per account, wait for all of them, return their summaries."""
    await broker.startup()
    try:
        tasks = [
            await mirror_account.kiq(account, resources)
            for resources in parts_of_the_account(parts)
            for account in accounts
        ]
        results = [await task.wait_result(timeout=max_wait) for task in tasks]
    finally:
        await broker.shutdown()
    for r in results:
        r.raise_for_error()
    return [r.return_value for r in results]


if __name__ == "__main__":
    for summary in asyncio.run(mirror_all(sys.argv[1:] or sorted(api_keys()))):
        print(json.dumps(summary))
