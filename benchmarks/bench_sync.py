"""Target 5: 64 threads sharing one SyncCliniko: zero 429s, >= 98% of the limit, no deadlock.

Real time, scaled down: the fake Cliniko served on loopback with a rolling window of 100 per
second; 64 threads send GETs back to back for 6 periods through one SyncCliniko (one loop
thread, one limiter, one pool). Baseline: the limit. The 429s are the server's own count.
"""

from __future__ import annotations

import threading
import time

from cliniko_async import RateLimit, SyncCliniko
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko, serve

from ._common import result, whole_periods_used

LIMIT, PERIOD, PERIODS, THREADS = 100, 1.0, 6, 64


def main() -> None:
    fake = FakeCliniko(patients=50, appointments=0, rate_limit=(LIMIT, PERIOD))
    with (
        serve(fake) as url,
        SyncCliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=url,
            rate_limit=RateLimit(LIMIT, PERIOD),
        ) as cliniko,
    ):  # fmt: skip
        deadline = time.monotonic() + PERIODS * PERIOD + 0.5
        count = [0]
        lock = threading.Lock()

        def worker() -> None:
            while time.monotonic() < deadline:
                cliniko.patients.get(1 + count[0] % 50)
                with lock:
                    count[0] += 1

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PERIODS * PERIOD + 30)
        hung = sum(t.is_alive() for t in threads)
    stats = fake.stats(DEFAULT_API_KEY)
    accepted = stats.accepted
    used, k = whole_periods_used(accepted, PERIOD)
    m = (len(accepted) - 1) // LIMIT
    sustained = m * PERIOD / (accepted[m * LIMIT] - accepted[0])
    ratio = min(used / (k * LIMIT), sustained)
    met = stats.rejected == 0 and hung == 0 and ratio >= 0.98
    print(
        f"{THREADS} threads, one SyncCliniko, limit {LIMIT} per {PERIOD:.0f} s, {PERIODS} periods"
    )
    print(f"  {count[0]} requests; server: {stats.rejected} x 429, at most {stats.max_in_window} "
          f"in any window; {hung} threads hung")  # fmt: skip
    print(f"  {used} of {k * LIMIT} allowed in {k} whole periods; {sustained:.3f} sustained")
    result("5 sync", f"64 threads: {ratio:.3f} of the limit, {stats.rejected} x 429, {hung} hung",
           met)  # fmt: skip


if __name__ == "__main__":
    main()
