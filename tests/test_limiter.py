"""The per-key limiter, in virtual time (looptime): windows, sharing, 429 pauses, cancellation."""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import time
from typing import Any

import httpx
import pytest

from cliniko_async import Cliniko, RateLimit
from cliniko_async._limiter import LocalLimiter, local_limiter_for
from cliniko_async.testing import FakeCliniko, FaultRule, Faults

from ._mockserver import API_KEY, BASE_URL, OTHER_KEY, USER_AGENT

pytestmark = pytest.mark.looptime
THIRD_KEY = OTHER_KEY.replace("MS0y", "MS0z")


def fake_server(
    limit: int = 200,
    period: float = 60.0,
    window: str = "rolling",
    rules: list[FaultRule] | None = None,
) -> FakeCliniko:
    """The fake Cliniko counting a rolling or fixed window, with our three test keys."""
    return FakeCliniko(
        patients=5, appointments=0, api_keys=(API_KEY, OTHER_KEY, THIRD_KEY),
        rate_limit=(limit, period), window=window,  # type: ignore[arg-type]
        faults=Faults(rules or [], seed=1),
    )  # fmt: skip


def client(fake: FakeCliniko, key: str = API_KEY, **kwargs: Any) -> Cliniko:
    http = httpx.AsyncClient(transport=fake.transport())
    return Cliniko(
        api_key=key, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http, **kwargs
    )


async def run_many(cliniko: Cliniko, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    done: list[float] = []

    async def one(i: int) -> None:
        await cliniko.request("GET", f"/patients/{1 + i % 5}")
        done.append(loop.time())

    await asyncio.gather(*(one(i) for i in range(n)))
    return done


def minimum_time(n: int, limit: int, period: float) -> float:
    """The earliest the last of n requests may arrive: one full batch per period."""
    return (math.ceil(n / limit) - 1) * period


@pytest.mark.parametrize("window", ["rolling", "fixed"])
async def test_1000_requests_zero_429_within_2pct_of_minimum(window: str) -> None:
    fake = fake_server(200, 60.0, window)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client(fake) as cliniko:
        await run_many(cliniko, 1000)
    elapsed = loop.time() - start
    stats = fake.stats(API_KEY)
    assert stats.rejected == 0
    assert len(stats.accepted) == 1000
    assert stats.max_in_window <= 200
    floor = minimum_time(1000, 200, 60.0)
    assert floor <= elapsed <= floor * 1.02, elapsed


@pytest.mark.parametrize("window", ["rolling", "fixed"])
async def test_varying_latency_never_exceeds_window(window: str) -> None:
    # Requests arrive closer together than they left: the slot is freed a period after the
    # response, so no server window ever sees more than the limit.
    fake = fake_server(20, 2.0, window, [FaultRule(latency=(0.001, 0.2))])
    async with client(fake, rate_limit=RateLimit(20, 2.0)) as cliniko:
        await run_many(cliniko, 300)
    assert fake.stats(API_KEY).rejected == 0
    assert fake.stats(API_KEY).max_in_window <= 20


async def test_bare_aiolimiter_would_leak_a_double_burst() -> None:
    # The reason for the window guard: aiolimiter alone admits ~2x the limit in the first period.
    from aiolimiter import AsyncLimiter

    loop = asyncio.get_running_loop()
    bucket = AsyncLimiter(200, 60)
    start = loop.time()
    count = 0
    while loop.time() - start < 59.9:
        await bucket.acquire()
        count += 1
    assert count > 380


async def test_fresh_key_bursts_up_to_the_limit_at_once() -> None:
    fake = fake_server(200, 60.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client(fake) as cliniko:
        done = await run_many(cliniko, 200)
    assert max(done) - start < 0.01
    assert fake.stats(API_KEY).rejected == 0


async def test_two_sessions_one_key_share_a_budget_two_keys_do_not() -> None:
    loop = asyncio.get_running_loop()
    fake = fake_server(200, 60.0)
    start = loop.time()
    async with client(fake) as a, client(fake) as b:
        await asyncio.gather(run_many(a, 150), run_many(b, 150))
    assert fake.stats(API_KEY).rejected == 0
    assert fake.stats(API_KEY).max_in_window <= 200
    assert loop.time() - start >= 60.0  # 300 requests on one key need a second period

    other = fake_server(200, 60.0)
    start = loop.time()
    async with client(other, OTHER_KEY) as a, client(other, THIRD_KEY) as b:
        await asyncio.gather(run_many(a, 150), run_many(b, 150))
    assert loop.time() - start < 1.0  # separate budgets: no waiting
    assert other.stats(OTHER_KEY).rejected == other.stats(THIRD_KEY).rejected == 0


async def _pause_scenario(skew: float, monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], int]:
    """The fake refuses everything for 7 s, answering 429 with the reset 7 s ahead."""
    if skew:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + skew)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # Latency keeps all 50 in flight when the 429s come back.
    fake = fake_server(1000, 60.0, rules=[FaultRule(latency=(0.05, 0.05), force_429_reset_in=7.0)])
    loop.call_later(7.0, fake.faults.rules.clear)
    async with client(fake) as cliniko:
        done = await run_many(cliniko, 50)
    return [t - start for t in done], fake.stats(API_KEY).rejected


@pytest.mark.parametrize("skew", [0.0, 3600.0, -3600.0])
async def test_429_pauses_every_request_on_the_key_until_reset(
    skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    done, refused = await _pause_scenario(skew, monkeypatch)
    assert len(done) == 50  # all succeed after the pause
    # One wave is refused; then every request waits for the pause instead of hammering.
    assert refused == 50
    assert min(done) >= 7.05
    # Metered back in at the sustainable rate (200/60 s), plus what leaked during the pause.
    leaked = 7.0 * 200 / 60
    assert sum(t < 7.5 for t in done) <= leaked + 1
    assert max(done) <= 7.0 + (50 - leaked) * 60 / 200 + 0.5, max(done)


async def test_storm_of_100_is_one_pause_then_metered_in() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    fake = fake_server(1000, 60.0, rules=[FaultRule(latency=(0.05, 0.05), force_429_reset_in=5.0)])
    loop.call_later(5.0, fake.faults.rules.clear)
    async with client(fake, rate_limit=RateLimit(1000, 100.0)) as cliniko:
        done = [t - start for t in await run_many(cliniko, 100)]
    assert fake.stats(API_KEY).rejected == 100  # one wave of 429s, one pause
    assert min(done) >= 5.05
    # No herd at the reset: 5 s x 10/s leaked = 50 at once, the rest at 10 per second.
    assert sum(t < 5.25 for t in done) <= 52
    assert 9.5 <= max(done) <= 10.5


async def test_reset_far_in_the_future_raises_rate_limit_error_with_reset_time() -> None:
    from cliniko_async import RateLimitError

    fake = fake_server(rules=[FaultRule(force_429_reset_in=3600)])
    async with client(fake) as cliniko:
        with pytest.raises(RateLimitError) as info:
            await cliniko.request("GET", "/patients")
    assert info.value.reset_at is not None
    assert abs(info.value.reset_at.timestamp() - (fake.clock.wall() + 3600)) < 2


async def test_cancelled_waiter_leaks_no_capacity_and_no_task() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(2, 10.0), clock=loop.time)
    p1, p2 = await limiter.acquire(), await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(1.0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    p1.release()
    p2.release()
    assert limiter.in_use == 2
    await asyncio.sleep(10.5)
    assert limiter.in_use == 0
    # Full capacity is back: two acquire at once, a third has to wait.
    start = loop.time()
    await limiter.acquire()
    await limiter.acquire()
    assert loop.time() - start < 0.01
    gc.collect()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelled_in_flight_request_frees_its_slot_a_period_later() -> None:
    fake = fake_server(5, 10.0, rules=[FaultRule(latency=(5.0, 5.0))])
    async with client(fake, rate_limit=RateLimit(5, 10.0)) as cliniko:
        task = asyncio.ensure_future(cliniko.request("GET", "/patients"))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        limiter = cliniko._session.limiter
        assert isinstance(limiter, LocalLimiter)
        assert limiter.in_use == 1
        await asyncio.sleep(10.5)
        assert limiter.in_use == 0


async def test_registry_is_per_key_and_refuses_a_conflicting_limit() -> None:
    from cliniko_async import ConfigurationError

    a = local_limiter_for("fp-a", RateLimit(200, 60))
    assert local_limiter_for("fp-a", RateLimit(200, 60)) is a
    assert local_limiter_for("fp-b", RateLimit(200, 60)) is not a
    with pytest.raises(ConfigurationError, match="same rate_limit"):
        local_limiter_for("fp-a", RateLimit(100, 60))


def test_rate_limit_validation() -> None:
    from cliniko_async import ConfigurationError

    with pytest.raises(ConfigurationError):
        RateLimit(0, 60)
    with pytest.raises(ConfigurationError):
        RateLimit(10, 0)
    with pytest.raises(ConfigurationError):
        RateLimit(10, 60, burst=11)


async def test_burst_smooths_a_fresh_key_through_aiolimiter() -> None:
    fake = fake_server(100, 10.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with client(fake, rate_limit=RateLimit(100, 10.0, burst=10)) as cliniko:
        done = await run_many(cliniko, 20)
    # 10 at once, then 10 per second (100 per 10 s).
    assert sorted(t - start for t in done)[9] < 0.01
    assert 0.9 <= max(done) - start <= 1.1


# --- half-open after a fallback pause (a 429 without a usable reset) ----------------------------


async def _admitted(limiter: LocalLimiter, n: int) -> tuple[list[asyncio.Task[Any]], list[float]]:
    """``n`` waiters; the loop times at which each got its permit, in order."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> Any:
        permit = await limiter.acquire()
        times.append(loop.time())
        return permit

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks, times


async def test_after_a_fallback_pause_one_probe_then_metered_once_it_came_back_fine() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(1000, 1.0), clock=loop.time)
    start = loop.time()
    limiter.pause(0.5, probe=True)
    tasks, times = await _admitted(limiter, 50)
    await asyncio.sleep(1.4)  # the probe is out: nobody else goes meanwhile (up to a period)
    assert [t - start for t in times] == [pytest.approx(0.5)]
    probe = tasks[0].result()
    probe.release()  # came back fine (no pause() in the same step)
    back = loop.time()
    await asyncio.sleep(1.0)
    assert len(times) == 50
    # Then metered at the sustainable rate (1 per ms) from the probe's answer, not all at once.
    assert times[1] >= back + 1e-3 - 1e-6
    assert all(b - a >= 1e-3 - 1e-6 for a, b in itertools.pairwise(times[1:]))
    for task in tasks:
        task.result().release()


async def test_a_refused_probe_doubles_the_pause_and_a_wave_adds_nothing() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(1000, 20.0), clock=loop.time)
    limiter.pause(0.5, probe=True)
    limiter.pause(0.3, probe=True)  # the rest of the wave, while paused: no longer
    assert limiter.paused_for() == pytest.approx(0.5)
    tasks, _ = await _admitted(limiter, 10)
    expected = 0.5
    for _ in range(3):
        await asyncio.sleep(limiter.paused_for() + 0.01)
        probes = [t for t in tasks if t.done()]
        assert len(probes) == 1
        tasks.remove(probes[0])
        # The probe got a 429 too: its release and the pause come in one step.
        probes[0].result().release()
        limiter.pause(0.4, probe=True)
        expected *= 2
        assert limiter.paused_for() == pytest.approx(expected)  # 1, 2, 4
    await asyncio.sleep(limiter.paused_for() + 0.01)
    assert sum(t.done() for t in tasks) == 1
    limiter.pause(0.4, probe=True)  # once more: 8, or less at the cap (8 s, jittered)
    assert 4.0 <= limiter.paused_for() <= 8.0
    # Cliniko says when (a usable reset; pauses only ever grow): no probing after that pause.
    limiter.pause(1.0)
    await asyncio.sleep(limiter.paused_for() + 0.1)
    assert all(t.done() for t in tasks)
    for task in tasks:
        task.result().release()


async def test_a_lost_or_cancelled_probe_lets_another_go() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(1000, 10.0), clock=loop.time)
    limiter.pause(0.5, probe=True)
    first = asyncio.ensure_future(limiter.acquire())
    second = asyncio.ensure_future(limiter.acquire())
    tasks, times = await _admitted(limiter, 3)
    await asyncio.sleep(0.6)
    assert first.done() and not second.done() and not times
    # A probe that never comes back (its permit lost): another goes after a period, not before.
    await asyncio.sleep(9.8)
    assert not second.done()
    await asyncio.sleep(0.2)
    assert second.done() and not times
    second.result().release()
    limiter.pause(0.5, probe=True)  # the second probe got a 429: twice as long
    assert limiter.paused_for() == pytest.approx(1.0)
    # The third probe is cancelled as it is admitted, before it ran: the next one probes.
    loop.call_at(loop.time() + limiter.paused_for(), tasks[0].cancel)
    await asyncio.sleep(1.1)
    assert tasks[0].cancelled() and len(times) == 1
    tasks[1].result().release()  # came back fine: the key opens
    await asyncio.sleep(0.1)
    assert len(times) == 2
    # first (lost), second and tasks[1] (released within a period), tasks[2]; not the cancelled
    assert limiter.in_use == 4


async def test_a_forked_child_does_not_wait_for_its_parents_probe() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(1000, 10.0), clock=loop.time)
    limiter.pause(0.5, probe=True)
    await asyncio.sleep(0.6)
    await limiter.acquire()  # the parent's probe, still out at fork time
    limiter._after_fork()  # what os.fork() runs in the child
    probe = await asyncio.wait_for(limiter.acquire(), 0.01)  # the child's own probe, at once
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(), 1.0)  # and only one
    probe.release()
    await asyncio.wait_for(limiter.acquire(), 0.01)  # it came back fine: open


@pytest.mark.parametrize("rate", [2000, 10_000, 1_000_000])
def test_pausing_a_fast_key_on_a_moving_clock_returns(rate: int) -> None:
    """A 429 on a key allowed over ~1,000 requests a second used to spin for ever: on a real
    clock its bucket leaks between two looks, so marking it full never found it full."""
    import threading

    ticks = itertools.count()
    limiter = LocalLimiter(RateLimit(rate, 1.0), clock=lambda: next(ticks) * 1e-4)
    done = threading.Event()

    def pause() -> None:
        limiter.pause(2.0, probe=True)
        limiter.pause(0.5)
        done.set()

    threading.Thread(target=pause, daemon=True).start()
    assert done.wait(30), "pause() did not return"
    assert limiter.paused_for() > 0
