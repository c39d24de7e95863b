"""Target 2: exporting P pages at latency L within the limit, against the theoretical minimum.

Virtual time (looptime), the fake Cliniko in-process with a rolling window of 200 per 60 s and
L each way. The theoretical minimum: page 1 first (it tells how many pages there are), then
every other page as early as the limit allows, each taking the round trip 2L:
``2L + 2L + (ceil(P / 200) - 1) * 60 s`` (the later batches wait for the window to slide).

Measured: sequential iteration with its one-page prefetch, ``pages(concurrency=N)``, and a
naive loop with a raw ``httpx.AsyncClient`` following ``links.next`` (sleeping on 429 until
the reset).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

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
)

from ._common import result

LIMIT, PERIOD = 200, 60.0
PER_PAGE = 20  # the page size does not change the timing; small pages keep the CPU cost low


def fake(pages: int, latency: float) -> FakeCliniko:
    return FakeCliniko(
        patients=pages * PER_PAGE, appointments=0, rate_limit=(LIMIT, PERIOD),
        faults=Faults([FaultRule(latency=(latency, latency))]),
    )  # fmt: skip


def timed(server: FakeCliniko, work: Callable[[httpx.AsyncClient], Awaitable[int]]) -> float:
    loop = looptime.new_event_loop()

    async def main() -> float:
        async with httpx.AsyncClient(transport=server.transport()) as http:
            start = loop.time()
            assert await work(http) == len(server.data["patients"])
            return loop.time() - start

    elapsed = loop.run_until_complete(main())
    loop.close()
    assert server.stats(DEFAULT_API_KEY).rejected == 0 or work is naive
    return elapsed


def with_client(concurrency: int) -> Callable[[httpx.AsyncClient], Awaitable[int]]:
    async def work(http: httpx.AsyncClient) -> int:
        async with Cliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=IN_PROCESS_BASE_URL,
            http_client=http, rate_limit=RateLimit(LIMIT, PERIOD),
            # The budget on the loop's virtual time (the process's limiters use the real clock).
            limiter=LocalLimiterBackend(clock=asyncio.get_running_loop().time),
        ) as cliniko:  # fmt: skip
            n = 0
            async for page in cliniko.patients.list(per_page=PER_PAGE).pages(
                concurrency=concurrency
            ):
                n += len(page.items)
            return n

    return work


async def naive(http: httpx.AsyncClient) -> int:
    """What people write first: follow links.next, sleep on 429 until X-RateLimit-Reset."""
    url: str | None = f"{IN_PROCESS_BASE_URL}/patients?per_page={PER_PAGE}"
    n = 0
    while url:
        response = await http.get(
            url, auth=(DEFAULT_API_KEY, ""), headers={"User-Agent": DEFAULT_USER_AGENT}
        )
        if response.status_code == 429:
            reset = float(response.headers["x-ratelimit-reset"])
            now = asyncio.get_running_loop().time() + 1_800_000_000.0  # the fake's wall clock
            await asyncio.sleep(max(0.0, reset - now))
            continue
        body = response.json()
        n += len(body["patients"])
        url = body["links"].get("next")
    return n


def main() -> None:
    for pages, latency in ((300, 0.1), (1000, 0.25)):
        minimum = 4 * latency + (math.ceil(pages / LIMIT) - 1) * PERIOD
        runs = {
            "sequential (prefetch)": timed(fake(pages, latency), with_client(1)),
            "concurrent (16)": timed(fake(pages, latency), with_client(16)),
            "concurrent (64)": timed(fake(pages, latency), with_client(64)),
            "naive httpx loop": timed(fake(pages, latency), naive),
        }
        print(f"{pages} pages of {PER_PAGE}, latency {latency * 1e3:.0f} ms each way, "
              f"limit 200/60 s: theoretical minimum {minimum:.1f} s")  # fmt: skip
        for name, seconds in runs.items():
            print(f"  {name:<22} {seconds:8.1f} s  {seconds / minimum:5.2f} x minimum")
        best = min(runs["concurrent (16)"], runs["concurrent (64)"])
        sequential = runs["sequential (prefetch)"] / minimum
        naive_ratio = runs["naive httpx loop"] / minimum
        result(
            "2 pagination",
            f"{pages} pages at {latency * 1e3:.0f} ms: concurrent {best / minimum:.2f} x the "
            f"minimum ({best:.1f} s vs {minimum:.1f} s); sequential {sequential:.2f} x, "
            f"naive {naive_ratio:.2f} x",
            best <= 1.25 * minimum,
        )


if __name__ == "__main__":
    main()
