"""Target 9 (start-up): ``import cliniko_async`` against ``import httpx``, fresh processes.

Each statement runs in a fresh interpreter that times only the statement itself
(``perf_counter`` around it), so interpreter start-up is left out of both sides. Contenders are
interleaved (one process of each per round) and each reports its best and median over the
rounds. Besides the target's own line, the output shows what a program pays as it goes on:
the client class (which needs httpx), then the first resource with its models.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from ._common import compile_package, result

STATEMENTS = {
    "import httpx": "import httpx",
    "import cliniko_async": "import cliniko_async",
    "from cliniko_async import Cliniko": "from cliniko_async import Cliniko",
    "+ cliniko.patients (resource, models)": (
        "from cliniko_async import Cliniko; from cliniko_async.resources import PatientsResource"
    ),
}
TIMER = (
    "import time\nstart = time.perf_counter()\n{statement}\nprint(time.perf_counter() - start)\n"
)


def time_import(statement: str) -> float:
    """Seconds ``statement`` takes in a fresh interpreter (no bytecode is written: the package
    was byte-compiled once before, as an install does)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", TIMER.format(statement=statement)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return float(done.stdout.strip())


def main(rounds: int = 15) -> None:
    print(compile_package())
    for statement in STATEMENTS.values():  # warm the OS file cache and the .pyc files once
        time_import(statement)
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(rounds):
        for name, statement in STATEMENTS.items():
            times[name].append(time_import(statement))
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    base_best, base_median = best["import httpx"], median["import httpx"]
    for name in STATEMENTS:
        print(
            f"{name:40} best {best[name] * 1e3:6.1f} ms  median {median[name] * 1e3:6.1f} ms  "
            f"| / import httpx: best {best[name] / base_best:.2f}, "
            f"median {median[name] / base_median:.2f}"
        )
    ratio = median["import cliniko_async"] / base_median
    client = median["from cliniko_async import Cliniko"] / base_median
    result(
        "9 start-up (import)",
        f"import cliniko_async {median['import cliniko_async'] * 1e3:.1f} ms vs import httpx "
        f"{base_median * 1e3:.1f} ms = {ratio:.2f} x (median of {rounds} fresh processes; "
        f"from cliniko_async import Cliniko {client:.2f} x)",
        ratio <= 1.5,
    )


if __name__ == "__main__":
    main()
