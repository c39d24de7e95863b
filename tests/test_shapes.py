"""The deployment-shape matrix (issue 13, item 5), short: every shape in a few seconds of real time.

The harness is benchmarks/bench_shapes.py (the benchmark runs the same shapes for longer): the
fake Cliniko served on loopback with a random latency each way, behind a recorder of arrivals,
429s and announced pauses. The limit and 429 guarantees are asserted strictly; the share of
the limit used, with a tolerant bound (a busy 2-core machine; the benchmark reports the real
figure against 0.95). ``pytest -s`` prints each shape's line.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_shapes import REWRITES, SHAPES, Outcome, Params, run_shape

PARAMS = Params(limit=40, period=1.0, periods=3, latency=(0.001, 0.01))
#: Tolerant: three periods include the start-up and the drain (the benchmark asks 0.95 of 6).
MIN_FRACTION = 0.8
ALONE = [name for name, (_, only_user, _) in SHAPES.items() if only_user]
OUTSIDE = [name for name, (_, only_user, _) in SHAPES.items() if not only_user]
NEEDS_REDIS = {name for name, (_, _, kwargs) in SHAPES.items() if kwargs.get("redis")}


def run(name: str, request: pytest.FixtureRequest) -> Outcome:
    redis_url = request.getfixturevalue("redis_url") if name in NEEDS_REDIS else None
    outcome = run_shape(name, PARAMS, redis_url)
    print(outcome.line())
    return outcome


@pytest.mark.parametrize("name", ALONE)
def test_alone_on_the_key_never_over_the_limit_zero_429(
    name: str, request: pytest.FixtureRequest
) -> None:
    outcome = run(name, request)
    assert outcome.run.hung == 0, outcome.line()
    assert outcome.max_in_window <= PARAMS.limit, outcome.line()
    assert outcome.ours_429 == 0, outcome.line()
    assert not outcome.run.errors, outcome.line()
    assert outcome.fraction >= MIN_FRACTION, outcome.line()


@pytest.mark.parametrize("name", OUTSIDE)
def test_with_an_outside_client_nothing_new_arrives_inside_an_announced_pause(
    name: str, request: pytest.FixtureRequest
) -> None:
    outcome = run(name, request)
    assert outcome.run.hung == 0, outcome.line()
    assert outcome.outside_429 + outcome.ours_429 > 0, "no 429 at all: nothing was tested"
    assert outcome.in_pause == 0, outcome.line()
    variant = name.removeprefix("429 ")
    if variant == "reset-beyond-max-wait":
        # The key stays paused for as long as Cliniko said; requests fail fast instead of
        # going out to collect more 429s.
        assert outcome.run.errors.get("RateLimitError"), outcome.line()
        assert outcome.ours_429 <= 4, outcome.line()
    elif variant in ("reset-in-past", "date-hour-ahead"):
        # A short, bounded pause: the client goes on (more than one window's worth).
        assert outcome.run.ok > PARAMS.limit, outcome.line()
        assert not outcome.run.errors, outcome.line()
    else:
        assert not outcome.run.errors, outcome.line()


def test_every_429_header_variant_is_a_shape() -> None:
    assert {f"429 {r}" for r in REWRITES} <= set(OUTSIDE)
