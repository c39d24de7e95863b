"""Target 3: CPU per request of get -> model against raw aiohttp + orjson and raw httpx + orjson.

The server is the stand-in of bench_accounts (raw asyncio in its own process, pinned to the
other core, no rate limit, one realistic 2.3 KB patient per response). Each side sends the same
authenticated GETs at concurrency 1, 16 and 256 on one pool:

- raw aiohttp + orjson: ``session.get`` -> ``await response.read()`` -> ``orjson.loads``;
- raw httpx + orjson: ``client.get`` -> ``orjson.loads(response.content)``;
- Cliniko: ``cliniko.patients.get(id)``, its whole pipeline (limiter with a high limit,
  retries, decoding, structuring into a Patient).

CPU per request is ``time.process_time()`` over the requests (this process only); rounds
alternate and the best of each side is kept.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson

from cliniko_async import Cliniko, RateLimit

from .bench_accounts import pin, standin_server

KEY = "MS0xLWtleS1vdmVyaGVhZA-au1"
USER_AGENT = "Bench Overhead (bench@example.com)"
HEADERS = {
    "Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
}
LEVELS = (1, 16, 256)
ROUNDS = 3


def requests_for(concurrency: int) -> int:
    return 600 if concurrency == 1 else 1500


async def drive(one: Callable[[int], Awaitable[object]], concurrency: int) -> float:
    """CPU seconds per request with ``concurrency`` loops sharing the requests."""
    total = requests_for(concurrency)
    # Warm up (connections, imports, caches; Cliniko's pool switches from httpcore to aiohttp
    # after its first 16 requests): the steady state is measured.
    for i in range(32):
        await one(i)
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    counter = iter(range(total))

    async def loop() -> None:
        for i in counter:
            await one(i)

    gc.collect()
    start = time.process_time()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return (time.process_time() - start) / total


async def raw_aiohttp(url: str, concurrency: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:

        async def one(i: int) -> object:
            async with http.get(f"{url}/patients/{1 + i % 50}", headers=HEADERS) as response:
                response.raise_for_status()
                return orjson.loads(await response.read())

        return await drive(one, concurrency)


async def raw_httpx(url: str, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(limits=limits, headers=HEADERS) as http:

        async def one(i: int) -> object:
            response = await http.get(f"{url}/patients/{1 + i % 50}")
            response.raise_for_status()
            return orjson.loads(response.content)

        return await drive(one, concurrency)


async def ours(url: str, concurrency: int) -> float:
    async with Cliniko(
        api_key=KEY, user_agent=USER_AGENT, base_url=url, rate_limit=RateLimit(1_000_000, 60.0)
    ) as cliniko:
        return await drive(lambda i: cliniko.patients.get(1 + i % 50), concurrency)


def main() -> None:
    from ._common import result

    pinned = pin(0, 0)
    sides = {"raw aiohttp + orjson": raw_aiohttp, "raw httpx + orjson": raw_httpx, "Cliniko": ours}
    best: dict[tuple[str, int], float] = {}
    with standin_server(limited=False) as url:
        for concurrency in LEVELS:
            for _ in range(ROUNDS):
                for name, side in sides.items():
                    cpu = asyncio.run(side(url, concurrency))
                    key = (name, concurrency)
                    best[key] = min(best.get(key, float("inf")), cpu)
    print(
        "CPU per request (get -> JSON, or -> Patient for Cliniko), best of "
        f"{ROUNDS} alternating rounds; server: raw-asyncio stand-in, realistic 2.3 KB "
        f"patient, own process; pinned to separate cores: {pinned}"
    )
    print("  concurrency   raw aiohttp    raw httpx     Cliniko   vs aiohttp   vs httpx")
    ratios = {}
    for c in LEVELS:
        a, h, o = (best[(name, c)] * 1e6 for name in sides)
        ratios[c] = o / a
        print(f"  {c:11d}  {a:9.0f} us  {h:9.0f} us  {o:8.0f} us  {o / a:9.2f} x  {o / h:7.2f} x")
    line = ", ".join(
        f"C={c}: {best[('Cliniko', c)] * 1e6:.0f} us = {ratios[c]:.2f} x raw aiohttp "
        f"({best[('Cliniko', c)] / best[('raw httpx + orjson', c)]:.2f} x raw httpx)"
        for c in LEVELS
    )
    result("3 overhead", line, ratios[16] <= 2.0 and ratios[256] <= 2.0)


if __name__ == "__main__":
    main()
