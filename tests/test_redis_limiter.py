"""The Redis limiter against a real redis-server: one budget across processes (real time, short)."""

from __future__ import annotations

import asyncio
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
