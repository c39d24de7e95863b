"""Target 9: start-up. Time to first request, and ``import cliniko_async``, against raw httpx.

Each measurement is a whole fresh process (``python -c ...``): interpreter start, imports,
client, one GET to a loopback server (the raw-asyncio stand-in of bench_accounts, in its own
process) and exit. The two sides alternate, RUNS times; best and median are reported and the
median is judged. The package is byte-compiled first, as installing it does (httpx's .pyc files
were written by its install).

- raw httpx: ``httpx.AsyncClient()``, ``await client.get(url)``, ``response.json()``;
- Cliniko: ``Cliniko(...)``, ``await cliniko.patients.get(1)`` (its whole pipeline: limiter,
  the aiohttp pool imported on this first request, decoding, the Patient model).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from .bench_accounts import standin_server

RUNS = 9
ROOT = Path(__file__).parent.parent

RAW_HTTPX = """
import asyncio, sys
import httpx

async def main():
    async with httpx.AsyncClient() as http:
        response = await http.get(sys.argv[1] + "/patients/1")
        response.raise_for_status()
        response.json()

asyncio.run(main())
"""

CLINIKO = """
import asyncio, sys
from cliniko_async import Cliniko

async def main():
    async with Cliniko(
        api_key="MS0xLWtleS1zdGFydHVw-au1",
        user_agent="Bench Startup (bench@example.com)",
        base_url=sys.argv[1],
    ) as cliniko:
        await cliniko.patients.get(1)

asyncio.run(main())
"""

CASES = {
    "python (nothing imported)": "pass",
    "import httpx": "import httpx",
    "import cliniko_async": "import cliniko_async",
    "first request, raw httpx": RAW_HTTPX,
    "first request, Cliniko": CLINIKO,
}


def once(code: str, url: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, url], check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    from ._common import compile_package, result

    compiled = compile_package()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    with standin_server(limited=False) as url:
        for code in CASES.values():  # warm the OS file cache and the .pyc files
            once(code, url)
        for _ in range(RUNS):
            for name, code in CASES.items():
                times[name].append(once(code, url))
    print(compiled)
    print(f"Whole fresh processes, {RUNS} alternating runs each (ms):")
    print("  case                           best   median")
    best = {name: min(ts) * 1e3 for name, ts in times.items()}
    median = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    for name in CASES:
        print(f"  {name:28s} {best[name]:6.0f}  {median[name]:7.0f}")
    ttfr = median["first request, Cliniko"] / median["first request, raw httpx"]
    imports = median["import cliniko_async"] / median["import httpx"]
    best_ttfr = best["first request, Cliniko"] / best["first request, raw httpx"]
    best_imports = best["import cliniko_async"] / best["import httpx"]
    print(f"  time to first request: {ttfr:.2f} x raw httpx (best: {best_ttfr:.2f} x)")
    print(f"  import cliniko_async : {imports:.2f} x import httpx (best: {best_imports:.2f} x)")
    result(
        "9 start-up",
        f"time to first request {median['first request, Cliniko']:.0f} ms = {ttfr:.2f} x raw "
        f"httpx ({median['first request, raw httpx']:.0f} ms); import {imports:.2f} x httpx",
        ttfr <= 1.5 and imports <= 1.5,
    )


if __name__ == "__main__":
    main()
