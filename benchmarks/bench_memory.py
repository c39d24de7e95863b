"""Target 7: streaming 100,000 records keeps peak RSS within 20 MB of the baseline.

The fake Cliniko (100,000 patients) runs in its own process. Baseline: this process's RSS
after imports, client set-up and a first page. Then the kernel's peak-RSS mark is reset
(/proc/self/clear_refs) and all 1,000 pages of 100 are streamed with ``async for``; the peak
is read from VmHWM. For contrast, ``collect()`` (every record kept) is measured the same way.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT

from ._common import fake_in_subprocess, result

RECORDS = 100_000


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def measure(url: str, keep: bool) -> tuple[int, float]:
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
        rate_limit=RateLimit(1_000_000, 60.0),
    ) as cliniko:  # fmt: skip
        await cliniko.patients.list(per_page=100).pages().__anext__()  # warm every code path
        gc.collect()
        baseline = rss_mb("VmRSS")
        reset_peak()
        if keep:
            n = len(await cliniko.patients.list(per_page=100).collect())
        else:
            n = 0
            async for _ in cliniko.patients.list(per_page=100):
                n += 1
        return n, rss_mb("VmHWM") - baseline


def main() -> None:
    with fake_in_subprocess(patients=RECORDS) as url:
        streamed, growth = asyncio.run(measure(url, keep=False))
        kept, kept_growth = asyncio.run(measure(url, keep=True))
    assert streamed == kept == RECORDS
    print(f"{RECORDS:,} patients in 1,000 pages, peak RSS over the baseline:")
    print(f"  async for (streaming): {growth:6.1f} MB")
    print(f"  collect() (contrast) : {kept_growth:6.1f} MB")
    result("7 memory", f"streaming 100,000 records: peak RSS +{growth:.1f} MB over the baseline "
           f"(collect(): +{kept_growth:.0f} MB)", growth <= 20)  # fmt: skip


if __name__ == "__main__":
    main()
