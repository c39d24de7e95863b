"""Helpers shared by the benchmarks: a fake Cliniko in its own process, window arithmetic."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator


def compile_package() -> str:
    """Byte-compile ``cliniko_async`` as installing it would (pip writes the .pyc files).

    Start-up is measured against httpx, whose .pyc files its install wrote. Without this, a
    checkout run with ``PYTHONDONTWRITEBYTECODE`` set (or a read-only tree) would compile every
    module of the package from source in every measured process. Returns a line for the output.
    """
    import compileall
    from pathlib import Path

    package = Path(__file__).parent.parent / "cliniko_async"
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"could not byte-compile {package}")
    return f"bytecode: {package.name} byte-compiled first, as an install does"


def result(target: str, line: str, met: bool) -> None:
    """The line RESULTS.md is built from: ``RESULT <target>: <line> [met|MISSED]``."""
    print(f"RESULT {target}: {line} [{'met' if met else 'MISSED'}]", flush=True)


def whole_periods_used(accepted: list[float], period: float) -> tuple[int, int]:
    """(requests accepted in the k whole periods from the first one, k)."""
    t0 = accepted[0]
    k = int((accepted[-1] - t0) // period)
    return sum(1 for t in accepted if t < t0 + k * period), k


@contextlib.contextmanager
def fake_in_subprocess(
    patients: int = 1000, rate_limit: str = "1000000/60", window: str = "rolling"
) -> Iterator[str]:
    """The fake Cliniko served by uvicorn in another process (its own core and GIL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cliniko_async.testing", "--port", str(port),
         "--patients", str(patients), "--appointments", "0", "--rate-limit", rate_limit,
         "--window", window],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "fake Cliniko at http://...": it is listening
        if "fake Cliniko at" not in line:
            raise RuntimeError(f"the fake did not start: {line!r}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def best_of(fn: Callable[[], object], repeat: int = 7, number: int = 50) -> float:
    """Seconds per call of ``fn()``: the best of ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best
