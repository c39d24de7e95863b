"""The Redis limiter against a real redis-server: one budget across processes (real time, short)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from cliniko_async import Cliniko, RateLimit
from cliniko_async.redis import LimiterUnavailableError, RedisLimiterBackend

from ._mockserver import API_KEY, BASE_URL, USER_AGENT, CountingServer


@pytest.fixture
async def backends(
    redis_url: str,
) -> AsyncIterator[tuple[RedisLimiterBackend, RedisLimiterBackend]]:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    # Two backends with their own connections stand for two processes.
    a, b = RedisLimiterBackend(redis_url), RedisLimiterBackend(redis_url)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_limit_shared_between_backends(
    backends: tuple[RedisLimiterBackend, RedisLimiterBackend],
) -> None:
    a, b = backends
    rl = RateLimit(4, 0.5)
    la, lb = a.limiter_for("fp1", rl), b.limiter_for("fp1", rl)
    permits = [await la.acquire() for _ in range(4)]
    start = time.monotonic()
    waiter = asyncio.ensure_future(lb.acquire())
    await asyncio.sleep(0.2)
    assert not waiter.done()  # the other "process" has no budget left
    for p in permits:
        p.release()
    await waiter
    # Freed a period after the responses (releases) came back, not after sending.
    assert time.monotonic() - start >= 0.5
    other = b.limiter_for("fp2", rl)  # another key is not affected
    t0 = time.monotonic()
    await other.acquire()
    assert time.monotonic() - t0 < 0.1


async def test_pause_applies_to_every_process(
    backends: tuple[RedisLimiterBackend, RedisLimiterBackend],
) -> None:
    a, b = backends
    rl = RateLimit(100, 1.0)
    a.limiter_for("fp", rl).pause(0.6)
    await asyncio.sleep(0.05)
    start = time.monotonic()
    await b.limiter_for("fp", rl).acquire()
    assert 0.45 <= time.monotonic() - start <= 1.0


async def test_unreleased_lease_of_a_dead_process_expires(redis_url: str) -> None:
    dead = RedisLimiterBackend(redis_url, max_in_flight=0.3)
    alive = RedisLimiterBackend(redis_url, max_in_flight=0.3)
    rl = RateLimit(1, 0.3)
    await dead.limiter_for("fp-dead", rl).acquire()  # never released: the process "died"
    start = time.monotonic()
    await alive.limiter_for("fp-dead", rl).acquire()
    assert 0.5 <= time.monotonic() - start <= 1.0  # period + max_in_flight, no more
    await dead.aclose()
    await alive.aclose()


async def test_keys_expire_and_never_hold_the_api_key(redis_url: str) -> None:
    backend = RedisLimiterBackend(redis_url)
    server = CountingServer(limit=100, period=1.0)
    http = httpx.AsyncClient(transport=server.transport())
    async with Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http,
        rate_limit=RateLimit(100, 1.0), limiter=backend,
    ) as cliniko:  # fmt: skip
        await asyncio.gather(*(cliniko.request("GET", f"/p/{i}") for i in range(20)))
        cliniko._session.limiter.pause(0.1)
        await asyncio.sleep(0.2)
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter("cliniko-async:*")]
    assert keys
    for k in keys:
        assert API_KEY.encode() not in k
        ttl = await client.pttl(k)
        assert 0 < ttl <= 62_000  # every key expires
        if await client.type(k) == b"zset":
            members = [str(m) for m in await client.zrange(k, 0, -1)]
            assert all(API_KEY not in m for m in members)
    await client.aclose()
    await backend.aclose()
    assert server.rejected == 0


async def test_unreachable_redis_fails_closed_or_falls_back() -> None:
    closed = "redis://127.0.0.1:1/0"
    failing = RedisLimiterBackend(closed)
    with pytest.raises(LimiterUnavailableError, match="unreachable"):
        await failing.limiter_for("fp", RateLimit(10, 1.0)).acquire()
    local = RedisLimiterBackend(closed, on_unavailable="local", local_fraction=0.5)
    limiter = local.limiter_for("fp", RateLimit(10, 1.0))
    start = time.monotonic()
    permits = [await limiter.acquire() for _ in range(5)]  # half the limit locally
    assert time.monotonic() - start < 0.5
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    waiter.cancel()
    for p in permits:
        p.release()
    await failing.aclose()
    await local.aclose()


async def test_burst_is_kept_across_processes(
    backends: tuple[RedisLimiterBackend, RedisLimiterBackend],
) -> None:
    """RateLimit.burst holds for every process together: 2 at once, then one per 250 ms."""
    a, b = backends
    rl = RateLimit(8, 2.0, burst=2)
    limiters = [a.limiter_for("fp-burst", rl), b.limiter_for("fp-burst", rl)]
    start = time.monotonic()

    async def admitted_at(i: int) -> float:
        await limiters[i % 2].acquire()
        return time.monotonic() - start

    times = sorted(await asyncio.gather(*(admitted_at(i) for i in range(6))))
    assert times[1] < 0.2  # the burst
    assert times[5] >= 0.95  # the other 4 leaked in at 4 per second
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[1:])]
    assert min(gaps) >= 0.2, gaps


async def test_after_a_pause_every_process_is_metered_back_in(
    backends: tuple[RedisLimiterBackend, RedisLimiterBackend],
) -> None:
    """A 429 marks the shared bucket full: at the reset only what leaked goes at once."""
    a, b = backends
    rl = RateLimit(20, 2.0)  # leaks 10 per second (a 1 s pause: 10); 20 slots for 20 requests
    limiters = [a.limiter_for("fp-herd", rl), b.limiter_for("fp-herd", rl)]
    limiters[0].pause(1.0)
    await asyncio.sleep(0.05)
    assert 0.5 < limiters[0].paused_for() <= 1.0
    start = time.monotonic()

    async def admitted_at(i: int) -> float:
        await limiters[i % 2].acquire()
        return time.monotonic() - start

    tasks = [asyncio.ensure_future(admitted_at(i)) for i in range(20)]
    await asyncio.sleep(0.1)
    assert limiters[1].paused_for() > 0.4  # the other process learnt of the pause from Redis
    times = sorted(await asyncio.gather(*tasks))
    assert times[0] >= 0.9  # nobody before the reset
    assert limiters[1].paused_for() == 0.0
    assert sum(t < times[0] + 0.15 for t in times) <= 12  # ~10 leaked during the pause
    assert times[-1] >= times[0] + 0.8  # the other ~10 at 10 per second
