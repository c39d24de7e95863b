"""Target 3: per-request overhead of Cliniko against raw httpx + json on the same server.

The fake Cliniko runs in its own process (uvicorn, no rate limit). Baseline: a bare
``httpx.AsyncClient`` sending the same authenticated GETs and ``json.loads`` on each body.
Cliniko goes through its whole pipeline (limiter with a high limit, retries, decoding,
structuring into a Patient). Rounds alternate and the best of each is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx

from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT

from ._common import fake_in_subprocess, result

REQUESTS, CONCURRENCY, ROUNDS = 1500, 16, 3


async def drive(one: Callable[[int], Awaitable[object]]) -> float:
    """Requests per second with CONCURRENCY loops sharing REQUESTS GETs."""
    counter = iter(range(REQUESTS))

    async def loop() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    return REQUESTS / (time.perf_counter() - start)


async def raw(url: str) -> float:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=url, limits=limits) as http:
        headers = {"User-Agent": DEFAULT_USER_AGENT}

        async def one(i: int) -> object:
            response = await http.get(f"/patients/{1 + i % 50}", auth=(DEFAULT_API_KEY, ""),
                                      headers=headers)  # fmt: skip
            response.raise_for_status()
            return json.loads(response.content)

        return await drive(one)


async def ours(url: str) -> float:
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
        rate_limit=RateLimit(1_000_000, 60.0),
    ) as cliniko:  # fmt: skip
        return await drive(lambda i: cliniko.patients.get(1 + i % 50))


def main() -> None:
    with fake_in_subprocess(patients=50) as url:
        asyncio.run(raw(url))  # warm up both sides
        asyncio.run(ours(url))
        baseline, client = 0.0, 0.0
        for _ in range(ROUNDS):
            baseline = max(baseline, asyncio.run(raw(url)))
            client = max(client, asyncio.run(ours(url)))
    ratio = client / baseline
    print(f"{REQUESTS} GETs, {CONCURRENCY} concurrent, best of {ROUNDS} alternating rounds:")
    print(f"  raw httpx + json.loads : {baseline:7.0f} requests/s")
    print(f"  Cliniko (full pipeline): {client:7.0f} requests/s  = {ratio:.2f} x raw httpx")
    result("3 overhead", f"Cliniko {client:.0f}/s vs raw httpx {baseline:.0f}/s = {ratio:.2f} x",
           ratio >= 0.9)  # fmt: skip


if __name__ == "__main__":
    main()
