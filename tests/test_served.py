"""Over real HTTP: the fake served by uvicorn on loopback, latency varying per request."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import pytest

from benchmarks._common import whole_periods_used
from benchmarks.bench_redis_processes import warm, worker
from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    FakeCliniko,
    FaultRule,
    Faults,
    serve,
)


@pytest.mark.parametrize("window", ["rolling", "fixed"])
def test_limiter_holds_against_a_real_server_with_jittery_latency(window: Any) -> None:
    # Requests arrive closer together than they left (latency varies 1-60 ms each way):
    # slots are freed a period after the response, so no server window sees limit + 1.
    faults = Faults([FaultRule(latency=(0.001, 0.06))], seed=3)
    fake = FakeCliniko(rate_limit=(40, 0.5), window=window, faults=faults)

    async def run(url: str) -> None:
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
            rate_limit=RateLimit(40, 0.5),
        ) as cliniko:  # fmt: skip
            await asyncio.gather(*(cliniko.patients.get(1 + i % 50) for i in range(200)))

    with serve(fake) as url:
        start = time.monotonic()
        asyncio.run(run(url))
        elapsed = time.monotonic() - start
    stats = fake.stats()
    assert stats.rejected == 0
    assert stats.max_in_window <= 40
    assert len(stats.accepted) == 200
    assert elapsed < 6


def test_four_processes_share_one_budget_through_redis(redis_url: str) -> None:
    limit, period, periods = 30, 1.0, 5
    fake = FakeCliniko(rate_limit=(limit, period), window="rolling")
    ctx = multiprocessing.get_context("spawn")
    with serve(fake) as url, ctx.Pool(4, initializer=warm) as pool:
        start_at = time.time() + 3.0
        results = [
            pool.apply_async(worker, (url, redis_url, start_at, periods * period, limit, period))
            for _ in range(4)
        ]
        counts = [r.get(60) for r in results]
    stats = fake.stats()
    assert stats.rejected == 0
    assert stats.max_in_window <= limit
    assert all(c > 0 for c in counts)
    # The budget is used: over the k whole periods from the first request, the server
    # allows at most k * limit; count what was accepted in them.
    used, k = whole_periods_used(stats.accepted, period)
    print(f"4 processes: {counts}; {used} accepted in {k} periods of {limit} allowed")
    assert k >= periods
    assert used >= 0.95 * k * limit, (used, k, counts)


def test_killing_one_process_costs_at_most_one_window(redis_url: str) -> None:
    limit, period, seconds = 30, 1.0, 6.0
    fake = FakeCliniko(rate_limit=(limit, period), window="rolling")
    ctx = multiprocessing.get_context("spawn")
    with serve(fake) as url:
        start_at = time.time() + 3.0
        procs = [
            ctx.Process(target=worker, args=(url, redis_url, start_at, seconds, limit, period))
            for _ in range(4)
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start_at - time.time()) + 2.0)
        procs[0].kill()  # SIGKILL mid-run, leases in flight
        for p in procs:
            p.join(30)
    stats = fake.stats()
    assert stats.rejected == 0
    assert stats.max_in_window <= limit
    used, k = whole_periods_used(stats.accepted, period)
    print(f"one of 4 killed: {used} accepted in {k} periods of {limit} allowed")
    assert used >= k * limit - limit  # the dead process's leases cost at most one window
