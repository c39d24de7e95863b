"""Every 429 pauses the whole key, whatever shape its headers take (virtual time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cliniko_async import Cliniko, RateLimit, RateLimitError
from cliniko_async._retries import MAX_KEY_PAUSE, rate_limit_delay

from ._mockserver import API_KEY, BASE_URL, USER_AGENT

pytestmark = pytest.mark.looptime

HeaderFn = Callable[[], dict[str, str]]


class Server:
    """Answers 429 with ``headers()`` while ``refusing`` (loop time), then 200; logs arrivals."""

    def __init__(self, headers: HeaderFn, refusing: float = 0.0, latency: float = 0.05) -> None:
        self.headers = headers
        self.until = refusing
        self.latency = latency
        self.arrivals: list[tuple[float, int]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        now = asyncio.get_running_loop().time()
        status = 429 if (not self.arrivals or now < self.until) else 200
        self.arrivals.append((now, status))
        await asyncio.sleep(self.latency)
        if status == 429:
            return httpx.Response(429, json={"message": "Too Many"}, headers=self.headers())
        return httpx.Response(200, json={"id": "1"})

    @property
    def refused(self) -> list[float]:
        return [t for t, status in self.arrivals if status == 429]

    def client(self, **kwargs: Any) -> Cliniko:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return Cliniko(
            api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http, **kwargs
        )


def http_date(offset: float = 0.0) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


def reset(offset: float) -> str:
    return str(int(time.time() + offset))


async def gather_requests(cliniko: Cliniko, n: int) -> list[object]:
    results: list[object] = await asyncio.gather(
        *(cliniko.request("GET", "/patients/1") for _ in range(n)), return_exceptions=True
    )
    return results


async def test_a_reset_beyond_what_the_client_waits_pauses_the_key_and_fails_fast() -> None:
    server = Server(lambda: {"x-ratelimit-reset": reset(600), "date": http_date()}, refusing=600)
    loop = asyncio.get_running_loop()
    async with server.client() as cliniko:
        with pytest.raises(RateLimitError) as first:
            await cliniko.request("GET", "/patients/1")
        assert first.value.reset_at is not None
        start = loop.time()
        results = await gather_requests(cliniko, 60)
        # Nothing else is sent into the announced pause: 60 fail at once, naming the reset.
        assert all(isinstance(r, RateLimitError) for r in results)
        assert loop.time() == start
        assert len(server.arrivals) == 1
        error = results[0]
        assert isinstance(error, RateLimitError) and error.reset_at is not None
        assert abs((error.reset_at - first.value.reset_at).total_seconds()) < 2


@pytest.mark.parametrize(
    ("name", "headers", "pause"),
    [
        ("reset, no Date", lambda: {"x-ratelimit-reset": reset(5)}, 5.0),
        ("reset 60 s, no Date", lambda: {"x-ratelimit-reset": reset(60)}, 60.0),
        ("Date an hour ahead", lambda: {"x-ratelimit-reset": reset(5), "date": http_date(3600)}, 5),
        (
            "Date an hour behind",
            lambda: {"x-ratelimit-reset": reset(5), "date": http_date(-3600)},
            5,
        ),
        ("Retry-After seconds, no Date", lambda: {"retry-after": "7"}, 7.0),
        ("Retry-After seconds + Date", lambda: {"retry-after": "7", "date": http_date()}, 7.0),
        ("Retry-After date, no Date", lambda: {"retry-after": http_date(6)}, 6.0),
        ("Retry-After date + Date", lambda: {"retry-after": http_date(6), "date": http_date()}, 6),
    ],
)
async def test_every_header_form_pauses_the_whole_key_for_what_it_says(
    name: str, headers: HeaderFn, pause: float
) -> None:
    loop = asyncio.get_running_loop()
    server = Server(headers, latency=0.05)
    start = loop.time()
    async with server.client() as cliniko:
        results = await gather_requests(cliniko, 20)
    assert all(r == {"id": "1"} for r in results), (name, results[:3])
    refused_at = server.refused[0]
    # One request was refused (the first); the rest were held, none went out inside the pause.
    assert len(server.refused) == 1
    after = [t for t, status in server.arrivals if status == 200]
    inside = [t for t in after if t < refused_at + 0.05 + pause - 1.0]
    in_flight = [t for t in after if t <= refused_at + 0.05]  # sent before the 429 came back
    assert inside == in_flight, name
    assert loop.time() - start >= pause - 1.0


@pytest.mark.parametrize(
    "headers",
    [
        lambda: {"x-ratelimit-reset": reset(-100), "date": http_date()},  # reset in the past
        lambda: {"x-ratelimit-reset": reset(-100), "date": http_date(3600)},  # and Date ahead
        lambda: {"date": http_date()},  # no reset at all
    ],
)
async def test_a_nonsense_reset_is_a_short_jittered_pause_for_the_key_never_a_herd(
    headers: HeaderFn,
) -> None:
    # The server refuses everything for 10 s, with a reset that says nothing usable.
    server = Server(headers, refusing=10.0, latency=0.05)
    async with server.client() as cliniko:
        results = await gather_requests(cliniko, 50)
    assert all(r == {"id": "1"} for r in results)
    first_back = server.refused[0] + 0.05
    later = [t for t, _ in server.arrivals if t > first_back]
    assert min(later) >= first_back + 0.5  # a pause, not "wait 0"
    # 50 were in flight when the first 429 came back; then the key backed off as a whole,
    # a few probes, each pause longer than the last (it used to be 75-80 x 429).
    assert len(server.refused) <= 50 + 8, len(server.refused)


@pytest.mark.parametrize(
    "headers",
    [
        lambda: {"x-ratelimit-reset": reset(-100), "date": http_date()},  # reset in the past
        dict,  # no headers
        lambda: {"x-ratelimit-reset": "1" + "0" * 40, "date": http_date()},  # nonsense
        lambda: {"x-ratelimit-reset": str(int((time.time() + 3) * 1000)), "date": http_date()},
    ],
)
async def test_after_a_fallback_pause_one_probe_goes_and_the_key_opens_only_when_it_is_fine(
    headers: HeaderFn,
) -> None:
    # A fast key (1000/s) and a slow server that refuses everything for 3 s: after each guessed
    # pause, metering at the sustainable rate would send ~100 requests (rate x round trip)
    # into the server's pause before the first answer came back (red finding F1: 88 at once).
    latency = 0.1
    server = Server(headers, refusing=3.0, latency=latency)
    async with server.client(rate_limit=RateLimit(1000, 1.0)) as cliniko:
        results = await gather_requests(cliniko, 100)
    assert all(r == {"id": "1"} for r in results), results[:3]
    # The first wave (all 100, in flight together) is refused at t=0; after that, only probes
    # go while the server refuses, one at a time: each after the previous one's answer.
    probes = [t for t, _ in server.arrivals if 0 < t < server.until]
    assert len(probes) <= 5, probes
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert all(gap >= latency for gap in gaps), probes
    # A probe that got a 429 paused the key twice as long as before (at most a period).
    pauses = [gap - latency for gap in gaps]  # each 429 is back `latency` after it arrived
    assert all(b >= min(2 * a, 0.5) - 1e-6 for a, b in itertools.pairwise(pauses))
    # The first probe after the server's pause came back fine: only then the rest, metered at
    # the sustainable rate (1 per ms), not all at once.
    fine = [t for t, status in server.arrivals if status == 200]
    assert fine[1] >= fine[0] + latency - 1e-6
    assert all(b - a >= 1e-3 - 1e-6 for a, b in itertools.pairwise(fine[1:]))
    assert len(server.refused) == 100 + len(probes)


def test_rate_limit_delay_units() -> None:
    def delay(headers: dict[str, str]) -> float:
        return rate_limit_delay(
            httpx.Headers(headers), period=60.0, attempt=1, fallback_cap=8.0
        ).seconds

    assert delay({"x-ratelimit-reset": reset(30), "date": http_date()}) == pytest.approx(30, 1.5)
    # Far ahead on a Date that agrees with ours: as long as Cliniko said, up to an hour.
    assert delay({"x-ratelimit-reset": reset(900), "date": http_date()}) == pytest.approx(900, 1.5)
    hour = {"x-ratelimit-reset": reset(MAX_KEY_PAUSE - 10), "date": http_date()}
    assert delay(hour) == pytest.approx(MAX_KEY_PAUSE - 10, abs=1.5)
    assert delay({"retry-after": str(int(MAX_KEY_PAUSE))}) == MAX_KEY_PAUSE
    # What reset_at reports is when the key resumes.
    held = rate_limit_delay(httpx.Headers(hour), period=60.0, attempt=1, fallback_cap=8.0)
    resumes = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=held.seconds)
    assert abs((held.reset_at - resumes).total_seconds()) < 2
    # Nonsense: the short fallback (attempt 1: 0.5-1 s).
    for bad in (
        {},
        {"x-ratelimit-reset": "soon"},
        {"x-ratelimit-reset": "nan"},
        {"x-ratelimit-reset": "inf"},
        {"x-ratelimit-reset": "1e400"},
        {"x-ratelimit-reset": reset(-5)},
        {"x-ratelimit-reset": reset(99_999)},  # no Date: the local clock, bounded by the period
        # Further ahead than an hour, however written: nonsense, all alike (outside finding
        # G6: a year-3000 reset paused the key for an hour and reported year 3000, while a
        # 41-digit one gave the fallback).
        {"x-ratelimit-reset": reset(99_999), "date": http_date()},
        {"x-ratelimit-reset": "32503680000", "date": http_date()},  # the year 3000
        {"x-ratelimit-reset": "1" + "0" * 40, "date": http_date()},
        {"retry-after": "99999999999"},
        {"retry-after": str(int(MAX_KEY_PAUSE) + 1)},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT", "date": http_date()},
        {"retry-after": "-3"},
        {"retry-after": "Tue, 99 Foo 2026 99:99:99 GMT"},
        {"retry-after": http_date(-30)},
        {"date": "garbage", "x-ratelimit-reset": reset(-5)},
    ):
        assert 0.5 <= delay(bad) <= 1.0, bad
    result = rate_limit_delay(httpx.Headers({}), period=2.0, attempt=20, fallback_cap=8.0)
    assert result.seconds <= 2.0 and not result.trusted  # never longer than a period


def test_a_header_sent_twice_keeps_the_latest_reset() -> None:
    # Outside finding G11: a proxy adding its own X-RateLimit-Reset (or Retry-After) made the
    # two values one unusable "a, b", so the key fell back to probing inside the pause.
    def delay(headers: list[tuple[str, str]]) -> tuple[float, bool]:
        found = rate_limit_delay(httpx.Headers(headers), period=60.0, attempt=1, fallback_cap=8.0)
        return found.seconds, found.trusted

    date = ("date", http_date())
    for headers in (
        [("x-ratelimit-reset", reset(5)), ("x-ratelimit-reset", reset(1)), date],
        [("x-ratelimit-reset", reset(1)), ("x-ratelimit-reset", reset(5)), date],
        [("x-ratelimit-reset", f"{reset(1)}, {reset(5)}"), date],
        [("x-ratelimit-reset", "soon"), ("x-ratelimit-reset", reset(5)), date],
        [("retry-after", "1"), ("retry-after", "5")],
        [("retry-after", "5"), ("retry-after", http_date(1)), date],
    ):
        seconds, trusted = delay(headers)
        assert trusted and seconds == pytest.approx(5, abs=1.5), headers
