"""One key, one budget per process: every loop, thread and ``asyncio.run`` shares it.

Real-time tests here are short and bounded; the lower bounds they assert (a request that must
wait a whole hour-long period does not get through in 0.3 s) cannot flake on a busy machine.
"""

from __future__ import annotations

import asyncio
import gc
import math
import subprocess
import sys
import textwrap
import threading
import warnings

import httpx
import pytest
from aiolimiter import AsyncLimiter

from cliniko_async import Cliniko, RateLimit
from cliniko_async._limiter import (
    LocalLimiter,
    RateLimitPaused,
    _bind_clock,
    _fill,
    _take,
    forget_all_limiters,
    local_limiter_for,
    registered_keys,
)

from ._mockserver import API_KEY, BASE_URL, USER_AGENT

HOUR = 3600.0


async def _try_acquire(limiter: LocalLimiter, within: float) -> bool:
    """Whether a slot was admitted within ``within`` seconds (the attempt is then cancelled)."""
    try:
        permit = await asyncio.wait_for(limiter.acquire(), within)
    except TimeoutError:
        return False
    permit.release()
    return True


def test_budget_survives_asyncio_run_per_job() -> None:
    # A worker that runs each job in its own asyncio.run used to start a fresh budget each time.
    rate = RateLimit(5, HOUR)

    async def job() -> None:
        permit = await local_limiter_for("fp-jobs", rate).acquire()
        permit.release()

    for _ in range(5):
        asyncio.run(job())

    async def sixth() -> bool:
        return await _try_acquire(local_limiter_for("fp-jobs", rate), 0.3)

    assert asyncio.run(sixth()) is False  # the 5 of this hour are spent, whichever loop spent them


def test_clients_in_sequential_event_loops_share_the_budget() -> None:
    arrivals: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        arrivals.append(request.url.path)
        return httpx.Response(200, json={"id": "1"})

    async def job(n: int) -> int:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with Cliniko(
            api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http,
            rate_limit=RateLimit(10, HOUR),
        ) as cliniko:  # fmt: skip
            results = await asyncio.gather(
                *(asyncio.wait_for(cliniko.request("GET", "/patients/1"), 0.5) for _ in range(n)),
                return_exceptions=True,
            )
        await http.aclose()
        return sum(not isinstance(r, BaseException) for r in results)

    sent = [asyncio.run(job(8)) for _ in range(3)]
    assert sent == [8, 2, 0]  # 10 an hour in all, not 10 per asyncio.run
    assert len(arrivals) == 10


def test_threads_each_with_their_own_loop_share_the_budget() -> None:
    rate = RateLimit(40, HOUR)
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        async def run() -> int:
            limiter = local_limiter_for("fp-threads", rate)
            results = await asyncio.gather(*(_try_acquire(limiter, 1.0) for _ in range(10)))
            return sum(results)

        count = asyncio.run(run())
        with lock:
            admitted.append(count)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(admitted) == 8
    assert sum(admitted) == 40  # 80 requests asked, one budget of 40 for the whole process


def test_a_release_in_one_thread_wakes_a_waiter_on_another_loop() -> None:
    limiter = LocalLimiter(RateLimit(1, 0.2))
    held = threading.Event()
    release = threading.Event()
    times: dict[str, float] = {}

    def holder() -> None:
        async def run() -> None:
            permit = await limiter.acquire()
            held.set()
            await asyncio.to_thread(release.wait, 10)
            times["released"] = asyncio.get_running_loop().time()
            permit.release()

        asyncio.run(run())

    def waiter() -> None:
        async def run() -> None:
            permit = await asyncio.wait_for(limiter.acquire(), 10)
            times["admitted"] = asyncio.get_running_loop().time()
            permit.release()

        asyncio.run(run())

    a = threading.Thread(target=holder)
    a.start()
    assert held.wait(10)
    b = threading.Thread(target=waiter)
    b.start()
    release.set()
    a.join(10)
    b.join(10)
    # Admitted on the other loop, one period after the slot's response came back (not before).
    assert times["admitted"] - times["released"] >= 0.2 - 1e-3


@pytest.mark.looptime
async def test_a_pause_holds_requests_already_queued_in_the_bucket() -> None:
    # burst=1: waiters queue in the leaky bucket; a 429 must hold them too (it used not to).
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(100, 10.0, burst=1), clock=loop.time)
    first = await limiter.acquire()
    start = loop.time()
    admitted: list[float] = []

    async def one() -> None:
        permit = await limiter.acquire()
        admitted.append(loop.time() - start)
        permit.release()

    tasks = [asyncio.ensure_future(one()) for _ in range(5)]
    await asyncio.sleep(0.05)
    limiter.pause(2.0)
    await asyncio.gather(*tasks)
    first.release()
    assert min(admitted) >= 2.05 - 1e-6  # none during the pause
    # Then metered at 10/s from a bucket marked full at the 429.
    assert sorted(admitted)[-1] >= 2.05 + 0.3


@pytest.mark.looptime
async def test_default_burst_waiters_are_held_by_a_pause_after_an_earlier_429() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(10, 10.0), clock=loop.time)
    limiter.pause(1.0)  # an earlier 429: the bucket is full, waiters queue in it
    await asyncio.sleep(1.0)
    start = loop.time()
    admitted: list[float] = []

    async def one() -> None:
        permit = await limiter.acquire()
        admitted.append(loop.time() - start)
        permit.release()

    tasks = [asyncio.ensure_future(one()) for _ in range(5)]
    await asyncio.sleep(0.01)
    queued = limiter.waiting  # one leaked unit let the first in; the rest wait in the bucket
    assert queued == 4
    limiter.pause(3.0)
    await asyncio.gather(*tasks)
    assert sum(t < 3.01 - 1e-6 for t in admitted) == 5 - queued


@pytest.mark.looptime
async def test_a_long_pause_fails_impatient_waiters_at_once_and_holds_the_others() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(1, 5.0), clock=loop.time)
    held = await limiter.acquire()
    impatient = [asyncio.ensure_future(limiter.acquire(max_wait=30.0)) for _ in range(3)]
    patient = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.5)
    start = loop.time()
    limiter.pause(600.0)
    for task in impatient:
        with pytest.raises(RateLimitPaused) as info:
            await task
        assert info.value.resume_in == pytest.approx(600.0)
    assert loop.time() == start  # failed at once, not after waiting
    # A new request that will not wait that long fails before queueing.
    with pytest.raises(RateLimitPaused):
        await limiter.acquire(max_wait=30.0)
    held.release()
    permit = await patient
    assert loop.time() - start >= 600.0
    permit.release()


@pytest.mark.looptime
async def test_a_thousand_waiters_half_cancelled_leave_nothing_behind() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(50, 1.0), clock=loop.time)
    done: list[int] = []

    async def one(i: int) -> None:
        permit = await limiter.acquire()
        try:
            await asyncio.sleep(0.01)
        finally:
            permit.release()
        done.append(i)

    tasks = [asyncio.ensure_future(one(i)) for i in range(1000)]
    await asyncio.sleep(0.001)
    for task in tasks[1::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 450
    assert len(done) + sum(isinstance(r, asyncio.CancelledError) for r in results) == 1000
    assert limiter.waiting == 0
    await asyncio.sleep(1.1)
    assert limiter.in_use == 0
    gc.collect()
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.looptime
async def test_no_timer_per_request_and_the_window_holds() -> None:
    loop = asyncio.get_running_loop()
    limiter = LocalLimiter(RateLimit(20, 2.0), clock=loop.time)
    starts: list[float] = []

    async def one() -> None:
        permit = await limiter.acquire()
        starts.append(loop.time())
        await asyncio.sleep(0.05)
        permit.release()

    await asyncio.gather(*(one() for _ in range(200)))
    starts.sort()
    # Every window of one period holds at most the limit.
    j = 0
    for i, t in enumerate(starts):
        while starts[j] <= t - 2.0:
            j += 1
        assert i - j + 1 <= 20
    # Only the head of the queue ever had a timer: none is left now.
    assert not [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]


def test_idle_keys_are_forgotten_so_memory_stays_bounded() -> None:
    forget_all_limiters()

    async def spend(n: int) -> None:
        for i in range(n):
            permit = await local_limiter_for(f"fp-{i}", RateLimit(1, 0.001)).acquire()
            permit.release()

    asyncio.run(spend(5000))
    gc.collect()
    # Nothing stays busy for long: the registry sweeps idle keys as new ones arrive.
    assert registered_keys() <= 4096
    asyncio.run(asyncio.sleep(0.01))
    asyncio.run(spend(5000))  # the same keys again
    assert registered_keys() <= 4096


def test_aiolimiter_internals_we_rely_on() -> None:
    """Fails when aiolimiter changes what ``_bind_clock`` relies on (its private loop slot)."""
    assert "_event_loop" in AsyncLimiter.__slots__
    now = [1000.0]
    bucket = AsyncLimiter(10, 10.0)
    _bind_clock(bucket, lambda: now[0])
    _take(bucket, 10)
    assert not bucket.has_capacity(1)
    now[0] += 1.0  # leaks 1 per second, on our clock, with no event loop running
    assert bucket.has_capacity(1)
    assert not bucket.has_capacity(1.5)
    now[0] += 100.0
    _fill(bucket)
    assert not bucket.has_capacity(0.01)


def test_one_limiter_used_from_loops_that_come_and_go_warns_nothing() -> None:
    limiter = LocalLimiter(RateLimit(100, 1.0, burst=5))

    async def use() -> None:
        for _ in range(3):
            (await limiter.acquire()).release()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            asyncio.run(use())


FORK_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from cliniko_async._limiter import RateLimit, local_limiter_for

    rate = RateLimit(5, 3600.0)

    async def spend():
        permits = [await local_limiter_for("fp", rate).acquire() for _ in range(5)]
        for p in permits[:3]:
            p.release()
        return permits[3:]  # two still in flight at fork time

    in_flight = asyncio.run(spend())
    pid = os.fork()
    if pid == 0:
        async def child():
            spent = await asyncio.wait_for(local_limiter_for("fp", rate).acquire(), 0.3)
            return spent
        try:
            asyncio.run(child())
            os._exit(3)  # the parent's spending was forgotten
        except TimeoutError:
            pass
        async def other_key():
            (await asyncio.wait_for(local_limiter_for("fp2", rate).acquire(), 5)).release()
        asyncio.run(other_key())
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_a_forked_child_keeps_what_its_parent_spent_and_never_hangs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_limiter_math_is_exact_for_huge_limits() -> None:
    # A huge limit holds no per-request timers or memory beyond the spent slots.
    async def run() -> int:
        limiter = LocalLimiter(RateLimit(1_000_000, 60.0))
        permits = [await limiter.acquire() for _ in range(2000)]
        for p in permits:
            p.release()
        return limiter.in_use

    assert asyncio.run(run()) == 2000
    assert math.isfinite(RateLimit(1_000_000, 60.0).period)
