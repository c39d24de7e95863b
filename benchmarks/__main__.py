"""Run every benchmark module (``bench_*.py``) in its own process, then print the results table.

``python -m benchmarks [NAME ...] [--write]``: ``--write`` also writes benchmarks/RESULTS.md
(machine, date, command, the table and each benchmark's full output).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()  # fmt: skip
    return (f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
            f"Python {platform.python_version()}")  # fmt: skip


def main(argv: list[str]) -> int:
    known = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if {"-h", "--help"} & set(argv):
        print((__doc__ or "").strip() + "\n\nbenchmarks: " + " ".join(known))
        return 0
    options = {a for a in argv if a.startswith("-")}
    wanted = {a for a in argv if not a.startswith("-")}
    if options - {"--write"} or wanted - set(known):
        print(f"unknown: {' '.join(sorted((options - {'--write'}) | (wanted - set(known))))}; "
              f"use {' '.join(known)} [--write]", file=sys.stderr)  # fmt: skip
        return 2
    write = "--write" in options
    modules = [name for name in known if not wanted or name in wanted]
    failed: list[str] = []
    results: list[str] = []
    outputs: dict[str, str] = {}
    started = time.perf_counter()
    for name in modules:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"benchmarks.{name}"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
            if line.startswith("RESULT "):
                results.append(line[len("RESULT ") :].strip())
        code = proc.wait()
        outputs[name] = "".join(lines)
        print(f"--- {name}: exit {code}, {time.perf_counter() - start:.1f} s", flush=True)
        if code:
            failed.append(name)
    total = time.perf_counter() - started
    table = ["| target | result |", "|---|---|"]
    for line in sorted(results, key=lambda r: (not r[0].isdigit(), r.split(":")[0])):
        target, _, text = line.partition(": ")
        table.append(f"| {target} | {text} |")
    print("\n" + "\n".join(table))
    print(
        f"\n{len(modules)} benchmarks in {total:.0f} s" + (f"; FAILED: {failed}" if failed else "")
    )
    if write:
        (HERE / "RESULTS.md").write_text(render(table, outputs, total))
    return 1 if failed else 0


def render(table: list[str], outputs: dict[str, str], total: float) -> str:
    sections = "\n".join(
        f"### {name}\n\n```\n{text.rstrip()}\n```\n" for name, text in outputs.items()
    )
    return f"""# Benchmark results

- Machine: {machine()}
- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- Command: `python3 -m nox -s bench` (runs `python -m benchmarks --write`), {total:.0f} s in all

Each benchmark measures its baseline in the same run (these machines are shared and noisy):
the limit itself, the theoretical minimum, raw aiohttp or raw httpx, or pydantic v2. The
targets are those of DESIGN.md ("Targets"); every `bench_*.py` module here is run.

{chr(10).join(table)}

## Output of each benchmark

{sections}"""


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
