"""4 OS processes, one key, one budget through the Redis limiter, against the served fake.

Each scenario: 4 processes x 500 concurrent requests on one key, the fake counting arrivals in a
rolling window, and one fault mid-run: none, ``FLUSHALL``, SIGKILL + restart of redis-server on
the same port, ``DEBUG SLEEP`` (Redis stalls). Prints the server's view per scenario: the most
requests in any window against the limit, 429s, the share of the limit used over the whole
periods of the run, errors and hangs (target 6: zero 429s, >= 95% of the limit, never over it,
in every scenario, a fault included). The fault comes ``--at`` periods (default 3) after the
first request the fake accepted: with every slot busy the traffic comes in bursts about a period
apart, so 3 puts a fault near a burst and 3.5 between two.

``--period`` (default 1 s: 200 per second) and ``--sleep`` (the stall, default 1 s) show what a
stall costs at other scales. While Redis sleeps, each process goes on with the slots it reserved
(see ``cliniko_async.redis``): a stall of up to about a period costs little; each reservation
serves once, so a longer one costs about its length beyond that. The share of the limit while
Redis answered is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.pool
import os
import time
from collections.abc import Iterator
from typing import Literal, get_args

from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko, serve
from cliniko_async.testing._redis_server import RedisServer

from ._common import result, whole_periods_used

LIMIT, PERIOD, PROCESSES, CONCURRENT = 200, 1.0, 4, 500
FAULT_AT = 3.0  # periods into the run
SLEEP = 1.0  # how long DEBUG SLEEP stalls Redis
Fault = Literal["none", "flushall", "restart", "debug-sleep"]


def warm() -> None:
    """Pool initializer: import before the clock starts."""
    import cliniko_async.redis  # noqa: F401


def worker(
    url: str, redis_url: str, start_at: float, seconds: float, limit: int, period: float
) -> int:
    """One process: 8 concurrent loops of GETs until ``seconds`` after ``start_at``."""
    from cliniko_async.redis import RedisLimiterBackend

    async def run() -> int:
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every process starts together
        backend = RedisLimiterBackend(redis_url, max_in_flight=period)
        done = 0
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
            rate_limit=RateLimit(limit, period), limiter=backend,
        ) as cliniko:  # fmt: skip
            deadline = time.monotonic() + seconds - max(0.0, time.time() - start_at)

            async def loop() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    await cliniko.patients.get(1)
                    done += 1

            await asyncio.gather(*(loop() for _ in range(8)))
        await backend.aclose()
        return done

    return asyncio.run(run())


def burst_worker(
    url: str,
    redis_url: str,
    start_at: float,
    requests: int,
    limit: int,
    period: float,
    on_unavailable: Literal["fail", "local"] = "local",
    local_fraction: float = 0.25,
) -> tuple[int, int, str]:
    """One process: ``requests`` GETs started at once. Returns (ok, errors, first error)."""
    from cliniko_async.redis import RedisLimiterBackend

    async def run() -> tuple[int, int, str]:
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every process starts together
        backend = RedisLimiterBackend(
            redis_url, max_in_flight=period, on_unavailable=on_unavailable,
            local_fraction=local_fraction,
        )  # fmt: skip
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
            rate_limit=RateLimit(limit, period), limiter=backend, max_retries=0,
        ) as cliniko:  # fmt: skip
            outcomes = await asyncio.gather(
                *(cliniko.patients.get(1 + i % 40) for i in range(requests)),
                return_exceptions=True,
            )
        await backend.aclose()
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        first = f"{type(errors[0]).__name__}: {errors[0]}" if errors else ""
        return len(outcomes) - len(errors), len(errors), first[:200]

    return asyncio.run(run())


def _warm_up(url: str, redis_url: str) -> int:
    """A few requests (past the transport's switch to aiohttp, whose import is lazy)."""
    burst_worker(url, redis_url, time.time(), 40, LIMIT, PERIOD)
    return os.getpid()


def ready(pool: multiprocessing.pool.Pool, server: RedisServer) -> None:
    """Run a few requests in every worker first, so that the first scenario does not pay for
    imports and first connections mid-run; then let their leases expire."""
    pids: set[int] = set()
    with serve(FakeCliniko(rate_limit=(LIMIT, PERIOD), window="rolling")) as url:
        for _ in range(5):
            runs = [pool.apply_async(_warm_up, (url, server.url)) for _ in range(PROCESSES)]
            pids.update(r.get(120) for r in runs)
            if len(pids) >= PROCESSES:
                break
    time.sleep(2 * PERIOD + 0.5)  # the warm-up's leases (period + max_in_flight) are gone


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def inject(server: RedisServer, fault: Fault, sleep: float = SLEEP) -> float:
    """Inject the fault; the seconds Redis could not answer."""
    if fault == "flushall":
        server.command("FLUSHALL")
    elif fault == "restart":
        start = time.monotonic()
        server.kill()
        time.sleep(0.3)
        server.start()  # returns once it answers PING
        return time.monotonic() - start
    elif fault == "debug-sleep":
        with contextlib.suppress(OSError):  # the reply comes `sleep` seconds later
            server.command("DEBUG", "SLEEP", f"{sleep:g}", timeout=0.05)
        return sleep
    return 0.0


def scenario(
    pool: multiprocessing.pool.Pool,
    server: RedisServer,
    fault: Fault,
    period: float = PERIOD,
    sleep: float = SLEEP,
    at: float = FAULT_AT,
) -> tuple[str, bool]:
    fake = FakeCliniko(rate_limit=(LIMIT, period), window="rolling")
    hangs, ok, errors, first, away = 0, 0, 0, "", 0.0
    with serve(fake) as url:
        start_at = time.time() + 1.5
        args = (url, server.url, start_at, CONCURRENT, LIMIT, period)
        pending = [pool.apply_async(burst_worker, args) for _ in range(PROCESSES)]
        if fault != "none":
            # `at` periods into the traffic (not into a start that a loaded machine delays).
            deadline = time.monotonic() + 60
            while not fake.stats().accepted and time.monotonic() < deadline:
                time.sleep(0.01)
            began = fake.stats().accepted[:1] or [time.monotonic()]
            time.sleep(max(0.0, began[0] + at * period - time.monotonic()))
            away = inject(server, fault, sleep)
        budget = time.monotonic() + 4 * PROCESSES * CONCURRENT / LIMIT * period + 20
        for r in pending:
            try:
                n_ok, n_err, err = r.get(max(1.0, budget - time.monotonic()))
            except multiprocessing.TimeoutError:
                hangs += 1
                continue
            ok, errors, first = ok + n_ok, errors + n_err, first or err
    stats = fake.stats()
    used, k = whole_periods_used(stats.accepted, period) if stats.accepted else (0, 0)
    ratio = used / (k * LIMIT) if k else 0.0
    # The share of the limit over the rest of the run, the time Redis slept left out.
    rest = used / ((k - away / period) * LIMIT) if k > away / period else 0.0
    stalled = fault == "debug-sleep"
    span = stats.accepted[-1] - stats.accepted[0] if stats.accepted else 0.0
    line = (
        f"{fault}: max {stats.max_in_window}/{LIMIT} in a window, {stats.rejected} x 429, "
        f"{ratio:.3f} of the limit"
        + (f" ({rest:.3f} with the {away:.2f} s Redis slept left out)" if stalled else "")
        + (f", Redis away {away:.2f} s" if away and not stalled else "")
        + f", {ok} ok in {span:.2f} s, {errors} errors, {hangs} hangs"
    )
    print(f"  {line}" + (f" (first error: {first})" if first else ""), flush=True)
    met = (
        stats.max_in_window <= LIMIT
        and not stats.rejected
        and not hangs
        and not errors
        and ratio >= 0.95
    )
    return line, met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("faults", nargs="*", help=f"scenarios {get_args(Fault)} (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario N times")
    parser.add_argument(
        "--period", type=float, default=PERIOD, help=f"the key's period in seconds ({PERIOD:g})"
    )
    parser.add_argument(
        "--sleep", type=float, default=SLEEP, help=f"how long DEBUG SLEEP stalls ({SLEEP:g} s)"
    )
    parser.add_argument(
        "--at", type=float, default=FAULT_AT, help=f"periods into the run ({FAULT_AT:g})"
    )
    opts = parser.parse_args(argv)
    unknown = set(opts.faults) - set(get_args(Fault))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    faults: list[Fault] = opts.faults or list(get_args(Fault))
    print(
        f"{PROCESSES} processes x {CONCURRENT} concurrent requests, one key, limit {LIMIT} per "
        f"{opts.period:g} s, fault {opts.at * opts.period:g} s into the run"
        + (f", DEBUG SLEEP {opts.sleep:g} s" if "debug-sleep" in faults else ""),
        flush=True,
    )
    ctx = multiprocessing.get_context("spawn")
    lines, all_met = [], True
    with redis_server() as server, ctx.Pool(PROCESSES, initializer=warm) as pool:
        ready(pool, server)
        for _ in range(opts.repeat):
            for fault in faults:
                line, met = scenario(pool, server, fault, opts.period, opts.sleep, opts.at)
                lines.append(line)
                all_met = all_met and met
    result("6 redis", "; ".join(lines), all_met)


if __name__ == "__main__":
    main()
