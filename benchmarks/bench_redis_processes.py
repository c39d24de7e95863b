"""4 OS processes, one key, one budget through the Redis limiter, against the served fake.

Prints the server's view: 429s, the largest count in any window, and the share of the limit
used over the whole periods of the run (target 6: zero 429s, >= 95% of the limit).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import time

from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko, serve

from ._common import result, whole_periods_used

LIMIT, PERIOD, PERIODS, PROCESSES = 50, 2.0, 6, 4


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


def main() -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        fake = FakeCliniko(rate_limit=(LIMIT, PERIOD), window="rolling")
        ctx = multiprocessing.get_context("spawn")
        with serve(fake) as url, ctx.Pool(PROCESSES, initializer=warm) as pool:
            start_at = time.time() + 3.0
            args = (url, f"redis://127.0.0.1:{port}/0", start_at, PERIODS * PERIOD, LIMIT, PERIOD)
            counts = [
                r.get(120) for r in [pool.apply_async(worker, args) for _ in range(PROCESSES)]
            ]
    finally:
        redis.terminate()
        redis.wait(10)
    stats = fake.stats()
    used, k = whole_periods_used(stats.accepted, PERIOD)
    print(f"{PROCESSES} processes, limit {LIMIT} per {PERIOD:.0f} s, {PERIODS} periods")
    print(f"  requests per process: {counts}")
    print(f"  server: {stats.rejected} x 429, at most {stats.max_in_window} in any window")
    print(
        f"  used {used} of {k * LIMIT} allowed in {k} whole periods: ratio {used / (k * LIMIT):.3f}"
    )
    met = not stats.rejected and used >= 0.95 * k * LIMIT
    result(
        "6 redis",
        f"{PROCESSES} processes on one key: {used / (k * LIMIT):.3f} of the limit, "
        f"{stats.rejected} x 429",
        met,
    )


if __name__ == "__main__":
    main()
