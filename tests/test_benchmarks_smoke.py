"""The benchmarks that run in virtual time still finish (their limiter must be on that time).

A limiter on the real clock under a looptime loop spins for ever: virtual time jumps to each
wake-up while the real clock has not moved (bench_export hung that way). Small sizes only.
"""

from __future__ import annotations

import math

from benchmarks import bench_export, bench_limiter


def test_export_benchmark_finishes_near_the_theoretical_minimum() -> None:
    pages, latency = 250, 0.1  # two batches of the 200 per 60 s budget
    minimum = 4 * latency + (math.ceil(pages / bench_export.LIMIT) - 1) * bench_export.PERIOD
    elapsed = bench_export.timed(bench_export.fake(pages, latency), bench_export.with_client(16))
    assert minimum <= elapsed <= 1.25 * minimum


def test_limiter_benchmark_in_virtual_time_keeps_the_limit() -> None:
    assert bench_limiter.virtual("rolling")
