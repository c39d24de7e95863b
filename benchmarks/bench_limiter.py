"""Target 1: saturating load for 5+ periods against strict rolling- and fixed-window servers.

The server (the fake Cliniko) counts request *arrivals* and answers 429 past the limit. The
baseline is the limit itself: the share of it the client achieves over whole periods. Two
runs each: virtual time (looptime: 200 per 60 s for 6 minutes, latency 50-250 ms each way)
and real time through uvicorn, scaled down (50 per 1 s for 6 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import httpx
import looptime

from cliniko_async import Cliniko, RateLimit
from cliniko_async._limiter import LocalLimiterBackend
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    IN_PROCESS_BASE_URL,
    FakeCliniko,
    FaultRule,
    Faults,
    serve,
)

from ._common import result, whole_periods_used

Window = Literal["rolling", "fixed"]


async def saturate(cliniko: Cliniko, seconds: float, workers: int, clock: Any) -> int:
    """``workers`` loops sending GETs back to back until ``seconds`` have passed."""
    deadline = clock() + seconds
    done = 0

    async def loop() -> None:
        nonlocal done
        while clock() < deadline:
            await cliniko.patients.get(1)
            done += 1

    await asyncio.gather(*(loop() for _ in range(workers)))
    return done


def report(label: str, fake: FakeCliniko, limit: int, period: float) -> bool:
    stats = fake.stats(DEFAULT_API_KEY)
    used, k = whole_periods_used(stats.accepted, period)
    ratio = used / (k * limit)
    # Sustained rate: the limit's worth of requests every period? Request m * limit + 1 may
    # arrive m periods after the first at the earliest; latency makes each batch a bit later.
    accepted = stats.accepted
    m = (len(accepted) - 1) // limit
    sustained = m * period / (accepted[m * limit] - accepted[0])
    met = stats.rejected == 0 and min(ratio, sustained) >= 0.98
    print(f"  {label}: {stats.rejected} x 429, max {stats.max_in_window} in any window, "
          f"{used} of {k * limit} allowed in {k} whole periods = {ratio:.3f} of the limit, "
          f"sustained {sustained:.3f}")  # fmt: skip
    result(
        "1 limiter",
        f"{label}: {ratio:.3f} of the limit ({sustained:.3f} sustained), {stats.rejected} x 429",
        met,
    )
    return met


def virtual(window: Window) -> bool:
    limit, period = 200, 60.0
    fake = FakeCliniko(
        patients=5, appointments=0, rate_limit=(limit, period), window=window,
        faults=Faults([FaultRule(latency=(0.05, 0.25))], seed=3),
    )  # fmt: skip
    loop = looptime.new_event_loop()

    async def main() -> None:
        http = httpx.AsyncClient(transport=fake.transport())
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=IN_PROCESS_BASE_URL,
            http_client=http, rate_limit=RateLimit(limit, period),
            limiter=LocalLimiterBackend(clock=loop.time),  # the budget on virtual time too
        ) as cliniko:  # fmt: skip
            await saturate(cliniko, 6 * period + 1, 64, loop.time)
        await http.aclose()

    loop.run_until_complete(main())
    loop.close()
    return report(f"virtual, {window} window, 200/60 s x 6 periods", fake, limit, period)


def real(window: Window) -> bool:
    limit, period = 50, 1.0
    fake = FakeCliniko(patients=5, appointments=0, rate_limit=(limit, period), window=window)
    with serve(fake) as url:

        async def main() -> None:
            async with Cliniko(
                api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
                rate_limit=RateLimit(limit, period),
            ) as cliniko:  # fmt: skip
                await saturate(cliniko, 6 * period + 0.5, 32, time.monotonic)

        asyncio.run(main())
    return report(
        f"real time via uvicorn, {window} window, 50/1 s x 6 periods", fake, limit, period
    )


def main() -> None:
    for window in ("rolling", "fixed"):
        virtual(window)
        real(window)


if __name__ == "__main__":
    main()
