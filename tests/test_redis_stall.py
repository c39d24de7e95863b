"""A stalled Redis (``DEBUG SLEEP``) is ridden out on reservations, never past the limit.

A slot released while its process has more waiting is kept for that process (up to its fair
share of the key): Redis holds it until a while after it frees, so the process may use it then
even if Redis does not answer. These tests stall a redis-server of their own in real time
(short) and check, from what the waiters saw, that every slot's use stayed inside the limit,
that the stall did not stop the traffic, and what reservations must not do: outlive their
need, starve a newcomer, or go out during a pause.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from benchmarks.bench_redis_processes import burst_worker, warm
from cliniko_async import RateLimit
from cliniko_async.redis import RedisLimiter, RedisLimiterBackend
from cliniko_async.testing import FakeCliniko, serve
from cliniko_async.testing._redis_server import RedisServer

from .test_redis_limiter import limiter
from .test_redis_limiter import until as wait_until

#: A request's round trip in these tests.
TRIP = 0.01


Use = tuple[float, float, str, str]  # admitted, released, lease id, who


async def workers(
    lim: RedisLimiter, n: int, until: float, uses: list[Use], who: str, trip: float = TRIP
) -> None:
    """``n`` tasks sending "requests" (a round trip of ``trip``) back to back until ``until``."""

    async def one() -> None:
        while time.monotonic() < until:
            permit = await lim.acquire()
            admitted = time.monotonic()
            try:
                await asyncio.sleep(trip)  # the request's round trip
            finally:  # (cancelled too: as a request's response would, it releases)
                uses.append((admitted, time.monotonic(), getattr(permit, "_id", ""), who))
                permit.release()

    await asyncio.gather(*(one() for _ in range(n)))


def most_slots_held(uses: list[Use], period: float) -> int:
    """The most requests holding a slot at once: each from its admission until a period
    after its response (the limiter's rule; so also the most in any server window)."""
    events = sorted(
        [(a, 1) for a, _, _, _ in uses] + [(r + period, -1) for _, r, _, _ in uses],
        key=lambda e: (e[0], e[1]),
    )
    held = best = 0
    for _, step in events:
        held += step
        best = max(best, held)
    return best


def double_handed(uses: list[Use]) -> list[str]:
    """Lease ids held by two requests at the same time (a reservation handed out twice)."""
    by_id: dict[str, list[tuple[float, float]]] = {}
    for a, r, lease_id, _ in uses:
        by_id.setdefault(lease_id, []).append((a, r))
    bad = []
    for lease_id, spans in by_id.items():
        spans.sort()
        if any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans)):
            bad.append(lease_id)
    return bad


async def between_bursts(uses: list[Use], period: float) -> None:
    """Wait until half a period after the last admission: with every slot busy, the traffic
    comes in bursts a period apart (a period after their responses), so a stall of a period
    starting now covers the next one."""
    last = max(u[0] for u in uses)
    while time.monotonic() - last > period / 2:  # pragma: no cover (a slow machine)
        last += period
    await asyncio.sleep(last + period / 2 - time.monotonic())


async def stall(server: RedisServer, seconds: float) -> float:
    """Stall Redis (``DEBUG SLEEP``) from a thread; returns when the command was sent."""
    sent = time.monotonic()
    await asyncio.to_thread(server.command, "DEBUG", "SLEEP", f"{seconds:g}", timeout=10)
    return sent


async def stalled_run(
    server: RedisServer,
    rl: RateLimit,
    processes: int,
    tasks: int,
    seconds: float,
    stall_at: float,
    stall_for: float,
    trip: float = TRIP,
) -> tuple[list[Use], float]:
    """``processes`` backends ("a", "b", ...) each running ``tasks`` tasks for ``seconds``;
    Redis stalls for ``stall_for`` between two bursts after ``stall_at``. The uses, and when
    the stall was sent."""
    key = uuid.uuid4().hex[:16]
    backends = [RedisLimiterBackend(server.url, max_in_flight=rl.period) for _ in range(processes)]
    lims = [limiter(b, key, rl) for b in backends]
    for lim in lims:  # all are members before the clock starts
        (await lim.acquire()).release()
    uses: list[Use] = []
    until = time.monotonic() + seconds
    run = asyncio.gather(
        *(workers(lim, tasks, until, uses, "abcd"[i], trip) for i, lim in enumerate(lims))
    )
    await asyncio.sleep(stall_at)
    await between_bursts(uses, rl.period)
    sent = await stall(server, stall_for)
    await run
    for b in backends:
        await b.aclose()
    return uses, sent


async def test_a_stall_of_a_period_is_ridden_out_on_reservations(own_redis: RedisServer) -> None:
    rl = RateLimit(20, 1.0)
    uses, sent = await stalled_run(own_redis, rl, 2, 30, seconds=5.0, stall_at=2.0, stall_for=1.0)
    assert most_slots_held(uses, rl.period) <= rl.requests
    assert double_handed(uses) == []
    # Nothing could be admitted through Redis while it slept: what went, went on reservations.
    inside = [u for u in uses if sent + 0.05 <= u[0] < sent + 0.95]
    assert len(inside) >= rl.requests // 2, len(inside)
    assert {u[3] for u in inside} == {"a", "b"}  # each on its own
    # And the traffic kept its pace: at least 0.85 of the limit over the 5 s (20 per second;
    # a lost period would leave 0.8).
    assert len(uses) >= 0.85 * 5 * rl.requests, len(uses)


async def test_a_longer_stall_still_never_exceeds_the_limit(own_redis: RedisServer) -> None:
    """A reservation serves once: a stall of 2.5 periods uses each once, then waits."""
    rl = RateLimit(10, 0.5)
    uses, sent = await stalled_run(
        own_redis, rl, 1, 25, seconds=3.5, stall_at=1.0, stall_for=1.25, trip=0.03
    )
    assert most_slots_held(uses, rl.period) <= rl.requests
    assert double_handed(uses) == []
    inside = [u for u in uses if sent + 0.05 <= u[0] < sent + 1.2]
    assert rl.requests // 2 <= len(inside) <= rl.requests, len(inside)


async def test_reservations_are_not_used_while_this_process_is_paused(
    own_redis: RedisServer,
) -> None:
    rl = RateLimit(20, 1.0)
    key = uuid.uuid4().hex[:16]
    a = RedisLimiterBackend(own_redis.url, max_in_flight=1.0)
    la = limiter(a, key, rl)
    (await la.acquire()).release()
    uses: list[Use] = []
    until = time.monotonic() + 3.5
    run = asyncio.ensure_future(workers(la, 30, until, uses, "a"))
    await asyncio.sleep(1.5)
    assert la._confirmed  # reservations Redis confirmed: usable on a stall
    la.pause(1.5)  # a 429, as a response reports it
    paused_at = time.monotonic()
    sent = await stall(own_redis, 1.0)
    await run
    assert sent - paused_at < 0.5
    assert not [u for u in uses if paused_at < u[0] < paused_at + 1.45]
    assert most_slots_held(uses, rl.period) <= rl.requests
    await a.aclose()


async def test_reservations_are_given_up_when_nobody_waits(own_redis: RedisServer) -> None:
    """Redis holds a reservation longer than a lease (so that it can be used on a stall); once
    the waiters are gone (the job was cancelled) each frees when its request's slot does: a
    period after it."""
    rl = RateLimit(10, 1.0)
    key = uuid.uuid4().hex[:16]
    a = RedisLimiterBackend(own_redis.url, max_in_flight=1.0)
    la = limiter(a, key, rl)
    uses: list[Use] = []
    run = asyncio.ensure_future(workers(la, 30, time.monotonic() + 10.0, uses, "a"))

    async def confirmed() -> bool:  # kept while 30 wait for 10 slots, and Redis holds them
        return bool(la._confirmed)

    await wait_until(confirmed, within=3.0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert la._reserved
    done = time.monotonic()
    admin = aioredis.Redis.from_url(own_redis.url)
    slots = f"{{cliniko-async:{key}}}:slots"

    async def longest_hold() -> float:
        stamp: Any = await admin.time()  # (seconds, microseconds) on the server's clock
        scores: list[tuple[bytes, float]] = await admin.zrange(slots, 0, -1, withscores=True)  # type: ignore[assignment]
        server_now = float(stamp[0]) + float(stamp[1]) / 1e6
        return max((score for _, score in scores), default=0.0) / 1000 - server_now

    async def held_no_longer_than_a_lease() -> bool:
        return await longest_hold() <= rl.period + 0.2

    await wait_until(held_no_longer_than_a_lease, within=1.0)
    assert not la._reserved
    assert time.monotonic() - done < 1.0
    await admin.aclose()
    await a.aclose()


@pytest.mark.parametrize("busy", [1, 3])
async def test_reservations_leave_a_newcomer_its_share(own_redis: RedisServer, busy: int) -> None:
    """A busy process keeps at most its fair share (limit / members, rounded down) of the slots
    it frees, and gives up the rest when a process joins: the newcomer gets in within a few
    periods and then its share, not nothing."""
    rl = RateLimit(10, 1.0)
    key = uuid.uuid4().hex[:16]
    backends = [RedisLimiterBackend(own_redis.url, max_in_flight=1.0) for _ in range(busy + 1)]
    lims = [limiter(b, key, rl) for b in backends]
    uses: list[Use] = []
    until = time.monotonic() + 7.0
    first = asyncio.gather(
        *(workers(lim, 40, until, uses, f"busy{i}") for i, lim in enumerate(lims[1:]))
    )
    await asyncio.sleep(2.0)
    await workers(lims[0], 40, until, uses, "new")
    await first
    late = [u for u in uses if until - 3.0 <= u[0] < until]
    share_new = sum(1 for u in late if u[3] == "new") / max(1, len(late))
    assert share_new >= 0.5 / (busy + 1), (share_new, len(late))  # half its share at least
    assert most_slots_held(uses, rl.period) <= rl.requests
    for b in backends:
        await b.aclose()


def busy_process(redis_url: str, key: str, start: float, until: float) -> list[float]:
    """One process: 40 tasks sending requests of 10-50 ms from ``start`` (time.monotonic(),
    the same clock in every process) to ``until``; the admission times."""
    import random

    async def run() -> list[float]:
        backend = RedisLimiterBackend(redis_url, max_in_flight=1.0)
        lim = limiter(backend, key, RateLimit(10, 1.0))
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        admitted: list[float] = []

        async def one() -> None:
            while time.monotonic() < until:
                permit = await lim.acquire()
                admitted.append(time.monotonic())
                await asyncio.sleep(random.uniform(0.01, 0.05))  # the request's round trip
                permit.release()

        await asyncio.gather(*(one() for _ in range(40)))
        await backend.aclose()
        return admitted

    return asyncio.run(run())


def test_a_process_joining_three_busy_ones_gets_its_share(own_redis: RedisServer) -> None:
    """Real processes: three keep the key busy (10 per second), a fourth joins 2 s later. It
    gets about its share (a quarter) from a few periods on: the others' reservations do not
    keep it out."""
    key = uuid.uuid4().hex[:16]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4, initializer=warm) as pool:
        start = time.monotonic() + 3.0
        until = start + 8.0
        busy = [
            pool.apply_async(busy_process, (own_redis.url, key, start, until)) for _ in range(3)
        ]
        new = pool.apply_async(busy_process, (own_redis.url, key, start + 2.0, until))
        others = [t for r in busy for t in r.get(60)]
        mine = new.get(60)
    late = (start + 5.0, until)
    n_mine = sum(1 for t in mine if late[0] <= t < late[1])
    n_all = n_mine + sum(1 for t in others if late[0] <= t < late[1])
    assert n_all >= 25, n_all  # the key stayed busy: 10 per second
    assert n_mine / n_all >= 0.125, (n_mine, n_all)  # half its share at least


async def test_the_local_fallback_does_not_wait_for_what_reservations_hold(
    own_redis: RedisServer,
) -> None:
    """Redis holds a lease admitted while more wait longer (for a reservation at its release);
    the local fallback, which uses no reservation, still opens a hold (period + max_in_flight)
    after Redis was lost, not two."""
    rl = RateLimit(10, 0.5)
    backend = RedisLimiterBackend(
        own_redis.url, on_unavailable="local", local_fraction=1.0, max_in_flight=0.5
    )
    lim = limiter(backend, uuid.uuid4().hex[:16], rl)
    uses: list[Use] = []
    until = time.monotonic() + 3.0
    run = asyncio.ensure_future(workers(lim, 20, until, uses, "a", trip=0.2))

    async def held_longer() -> bool:  # leases in flight that Redis holds longer
        return bool(lim._longer)

    await wait_until(held_longer, within=2.0)
    await asyncio.to_thread(own_redis.kill)
    lost = time.monotonic()
    await run
    first_local = min(u[0] for u in uses if u[0] > lost + 0.05)
    hold = rl.period + 0.5
    assert hold - 0.05 <= first_local - lost <= hold + 0.5, first_local - lost
    assert most_slots_held(uses, rl.period) <= rl.requests
    await backend.aclose()


def test_four_processes_ride_out_a_stall_of_a_period(own_redis: RedisServer) -> None:
    """Real processes, 500 requests at once each, against a server counting arrivals: Redis
    sleeps a whole period mid-run; the server still sees at most the limit in any window, no
    429, and arrivals while Redis slept."""
    limit, period = 200, 1.0
    fake = FakeCliniko(rate_limit=(limit, period), window="rolling")
    ctx = multiprocessing.get_context("spawn")
    with serve(fake) as url, ctx.Pool(4, initializer=warm) as pool:
        start_at = time.time() + 2.0
        args: tuple[Any, ...] = (url, own_redis.url, start_at, 500, limit, period, "fail")
        pending = [pool.apply_async(burst_worker, args) for _ in range(4)]
        deadline = time.monotonic() + 60
        while not fake.stats().accepted:
            assert time.monotonic() < deadline, "no request arrived"
            time.sleep(0.01)
        # Between two bursts (a period apart while every slot is busy): the stall covers one.
        time.sleep(max(0.0, fake.stats().accepted[0] + 3.5 * period - time.monotonic()))
        sent = time.monotonic()
        own_redis.command("DEBUG", "SLEEP", "1", timeout=10)
        results = [r.get(120) for r in pending]
    assert [errors for _, errors, _ in results] == [0, 0, 0, 0], results
    stats = fake.stats()
    assert len(stats.accepted) == 2000
    assert stats.rejected == 0
    assert stats.max_in_window <= limit
    inside = [t for t in stats.accepted if sent + 0.05 <= t < sent + 0.95]
    assert len(inside) >= limit // 2, len(inside)
