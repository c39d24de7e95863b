"""Faults injected through the fake Cliniko: nothing lost, nothing duplicated, nothing leaked."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliniko_async import (
    ClientClosedError,
    Cliniko,
    ConfigurationError,
    DecodeError,
    RateLimit,
    ServerError,
    SyncCliniko,
    models,
)
from cliniko_async._converter import ModelDecodeError, structure
from cliniko_async._model import Model
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, FaultRule, Faults, serve

from ._mockserver import API_KEY, BASE_URL, EPOCH, USER_AGENT


def _client(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> Cliniko:
    return Cliniko(
        api_key=kwargs.pop("api_key", API_KEY), user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=transport), **kwargs,
    )  # fmt: skip


# -- exactly once ----------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_export_of_10000_under_every_fault_is_exactly_once() -> None:
    rule = FaultRule(
        path="/v1/patients", latency=(0.01, 0.2), error_rate=0.10, drop_rate=0.05,
        stall_rate=0.03, stall=60.0, throttle_rate=0.03, throttle_reset_in=3.0,
    )  # fmt: skip
    fake = FakeCliniko(patients=10_000, appointments=0, faults=Faults([rule], seed=11))
    async with _client(
        fake.transport(), api_key=DEFAULT_API_KEY, timeout=5.0, max_retries=10,
        rate_limit=RateLimit(200, 60.0),
    ) as cliniko:  # fmt: skip
        ids = [p.id async for p in cliniko.patients.list(per_page=100, sort="id")]
    assert ids == list(range(1, 10_001))  # every record exactly once, in order
    stats = fake.stats()
    assert stats.rejected > 0  # 429 storms happened (and were ridden out)
    assert len(stats.accepted) > 100 + stats.rejected  # 5xx, drops and stalls were retried
    assert stats.max_in_window <= 200


@pytest.mark.looptime
async def test_an_export_that_cannot_finish_fails_loudly_without_a_gap() -> None:
    fake = FakeCliniko(patients=500, appointments=0)
    async with _client(fake.transport(), api_key=DEFAULT_API_KEY, max_retries=2) as cliniko:
        seen: list[int | None] = []
        with pytest.raises(ServerError, match="503"):
            async for page in cliniko.patients.list(per_page=100, sort="id").pages():
                seen += [p.id for p in page.items]
                if len(seen) == 200:  # from page 3 on, the server fails every time
                    fake.faults.rules.append(FaultRule(error_rate=1.0))
    assert seen == list(range(1, 201))  # a prefix, never a gap


# -- 429 edge cases --------------------------------------------------------------------------------


def _once_429(headers: dict[str, str]) -> tuple[httpx.MockTransport, list[float]]:
    """429 with ``headers`` on the first request, then 200; records arrival times."""
    arrivals: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        now = asyncio.get_running_loop().time()
        arrivals.append(now)
        date = email.utils.formatdate(EPOCH + now, usegmt=True)
        if len(arrivals) == 1:
            return httpx.Response(
                429, json={"message": "slow down"}, headers={"date": date, **headers}
            )
        return httpx.Response(200, json={"id": "1"}, headers={"date": date})

    return httpx.MockTransport(handler), arrivals


def _http_date(offset: float) -> str:
    return email.utils.formatdate(EPOCH + offset, usegmt=True)


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        # Reset already past: a short jittered pause for the key (backoff 1 s x U(0.5, 1)), then
        # one request at a time at the sustainable rate (60/200 s each).
        ({"x-ratelimit-reset": str(int(EPOCH) - 100)}, 0.5, 1.31),
        ({"x-ratelimit-reset": str(int(EPOCH) + 4)}, 3.9, 4.1),
        ({}, 0.05, 5.0),  # no header: back off
        ({"x-ratelimit-reset": "soon"}, 0.05, 5.0),  # garbage: back off
        ({"x-ratelimit-reset": "12"}, 0.05, 5.0),  # not unix seconds: back off
        ({"retry-after": "7"}, 7.0, 7.1),
        ({"retry-after": _http_date(6)}, 5.9, 6.1),
    ],
)
async def test_429_headers_decide_the_pause(
    headers: dict[str, str], low: float, high: float
) -> None:
    transport, arrivals = _once_429(headers)
    async with _client(transport) as cliniko:
        assert await cliniko.request("GET", "/patients/1") == {"id": "1"}
    assert len(arrivals) == 2
    assert low <= arrivals[1] - arrivals[0] <= high


# -- decode errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", "<html>"),
        (b'{"id": "1", "first_na', "application/json", '{"id": "1"'),
        (b'[{"id": "1"}]', "application/json", "list"),
        (b'{"id": {"nested": true}}', "application/json", "id"),
        (b'"just a string"', "application/json", "str"),
    ],
)
async def test_bad_bodies_raise_decode_error_naming_the_url(
    body: bytes, content_type: str, fragment: str
) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=body, headers={"content-type": content_type})
    )
    async with _client(transport) as cliniko:
        with pytest.raises(DecodeError) as info:
            await cliniko.patients.get(1)
    error = info.value
    assert error.url == f"{BASE_URL}/patients/1" and error.status_code == 200
    assert fragment in str(error)
    assert API_KEY not in str(error) and API_KEY not in repr(error.__dict__)


MODELS = sorted(
    (c for c in vars(models).values() if isinstance(c, type) and issubclass(c, Model)),
    key=lambda c: c.__name__,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(cls=st.sampled_from(MODELS), data=st.dictionaries(st.text(max_size=24), JSON) | JSON)
def test_fuzzed_json_structures_or_raises_only_our_error(cls: type[Model], data: Any) -> None:
    with contextlib.suppress(ModelDecodeError):
        structure(data, cls)


@settings(max_examples=200, deadline=None)
@given(
    cls=st.sampled_from(MODELS),
    field_values=st.data(),
)
def test_fuzzed_values_in_known_fields_raise_only_our_error(
    cls: type[Model], field_values: Any
) -> None:
    names = [a.name for a in cls.__attrs_attrs__ if a.name != "extra"]
    keys = field_values.draw(st.lists(st.sampled_from(names), max_size=6)) if names else []
    record = {cls.__renames__.get(k, k): field_values.draw(JSON) for k in keys}
    with contextlib.suppress(ModelDecodeError):
        structure(record, cls)


# -- cancellation and shutdown ---------------------------------------------------------------------


@pytest.mark.looptime
async def test_cancelled_requests_leave_no_task_and_free_the_limiter() -> None:
    fake = FakeCliniko(faults=Faults([FaultRule(latency=(5.0, 5.0))]))
    limit = RateLimit(10, 1.0)
    async with _client(fake.transport(), api_key=DEFAULT_API_KEY, rate_limit=limit) as cliniko:
        tasks = [asyncio.create_task(cliniko.patients.get(i)) for i in range(1, 31)]
        await asyncio.sleep(1.0)  # ten in flight, twenty waiting for the limiter
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        await asyncio.sleep(1.5)  # a period after the cancelled responses: all slots back
        assert (await cliniko.patients.get(1)).id == 1
        limiter = cliniko._session.limiter
        assert getattr(limiter, "in_use", 1) == 1


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_closing_a_session_with_requests_in_flight() -> None:
    fake = FakeCliniko(faults=Faults([FaultRule(path="/v1/patients/*", latency=(0.5, 0.5))]))
    with serve(fake) as base_url:
        before = _open_fds()
        cliniko = Cliniko(api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=base_url)
        tasks = [asyncio.create_task(cliniko.patients.get(i)) for i in range(1, 6)]
        while fake.requests < 5:  # noqa: ASYNC110 - counted by the server thread
            await asyncio.sleep(0.01)  # all five on the wire
        await cliniko.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        # Each either finished or failed with the library's own error: none hangs, none leaks.
        assert all(isinstance(r, models.Patient | ClientClosedError) for r in results), results
        with pytest.raises(ClientClosedError):
            await cliniko.patients.get(1)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        # The server (a thread of this process) closes its side of the aborted connections
        # once it notices: a moment later.
        for _ in range(200):
            if _open_fds() <= before:
                break
            await asyncio.sleep(0.01)
        assert _open_fds() <= before


def test_keyboard_interrupt_in_sync_cliniko_cancels_the_request_and_leaks_nothing() -> None:
    fake = FakeCliniko(faults=Faults([FaultRule(path="/v1/patients/2", latency=(30.0, 30.0))]))
    with serve(fake) as base_url:
        threads_before = threading.active_count()
        fds_before = _open_fds()
        main = threading.get_ident()

        def interrupt_when_on_the_wire() -> None:
            deadline = time.monotonic() + 10
            while fake.requests < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            signal.pthread_kill(main, signal.SIGINT)

        with SyncCliniko(api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=base_url) as c:
            assert c.patients.get(1).id == 1
            threading.Thread(target=interrupt_when_on_the_wire).start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                c.patients.get(2)  # would take 30 s
            assert time.monotonic() - started < 5
            assert c.patients.get(3).id == 3  # the client still works
        deadline = time.monotonic() + 5
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.01)  # the interrupter thread finishing
        assert threading.active_count() == threads_before  # the loop thread is gone
        # The server side of the aborted connection closes a moment later on a busy machine.
        while _open_fds() > fds_before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _open_fds() <= fds_before


POOL_SCRIPT = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
from cliniko_async import SyncCliniko

with (
    ThreadPoolExecutor(16) as pool,
    SyncCliniko(api_key=sys.argv[1], user_agent=sys.argv[2], base_url=sys.argv[3]) as cliniko,
):
    print("ready", flush=True)
    try:
        list(pool.map(lambda i: cliniko.patients.get(i).first_name, range(1, 33)))
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
        raise
"""


@pytest.mark.parametrize("server", ["paused", "silent"])
def test_ctrl_c_in_the_readmes_thread_pool_shape_ends_at_once(server: str) -> None:
    # Outside finding G13: with the client opened outside the pool, Ctrl-C waited for the
    # pool's threads (a key paused for 60 s, or a server that never answers: minutes). The
    # README opens it inside: the client closes first and ends every call at once.
    import subprocess
    import sys

    faults = Faults([FaultRule(path="*", latency=(3600.0, 3600.0))]) if server == "silent" else None
    fake = FakeCliniko(rate_limit=(1, 60.0), faults=faults)
    with serve(fake) as base_url:
        proc = subprocess.Popen(
            [sys.executable, "-c", POOL_SCRIPT, DEFAULT_API_KEY, USER_AGENT, base_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 30
            while fake.requests < 1 and time.monotonic() < deadline:
                time.sleep(0.02)  # the pool's calls are under way (and the key paused)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert "interrupted" in out and "KeyboardInterrupt" in err, (out, err[-2000:])
    # Generous for a loaded 2-core machine; without the order it took the 60 s pause (or more).
    assert took < 20, took


# -- records changing during an export -------------------------------------------------------------


@pytest.mark.parametrize("by_id", [False, True])
async def test_deletions_during_an_export_shift_page_numbers_but_not_ids(by_id: bool) -> None:
    fake = FakeCliniko(patients=250, appointments=0)
    async with _client(fake.transport(), api_key=DEFAULT_API_KEY) as cliniko:
        listing = cliniko.patients.list(per_page=100)
        seen: list[int | None] = []
        async for page in (listing.by_id() if by_id else listing).pages():
            if not seen:  # someone archives ten of the first page's patients meanwhile
                for pid in range(1, 11):
                    await cliniko.patients.archive(pid)
            seen += [p.id for p in page.items]
    if by_id:
        assert seen == list(range(1, 251))  # nothing skipped, nothing twice
    else:
        # Offset pagination: the ten archived records moved every later record up by ten,
        # so page 2 starts at id 111 and ids 101-110 are never seen.
        assert seen == [*range(1, 101), *range(111, 251)]


async def test_by_id_refuses_its_own_contradictions() -> None:
    fake = FakeCliniko()
    async with _client(fake.transport(), api_key=DEFAULT_API_KEY) as cliniko:
        with pytest.raises(ConfigurationError, match="sort="):
            cliniko.patients.list(sort="last_name").by_id()
        with pytest.raises(ConfigurationError, match="concurrency"):
            cliniko.patients.list().by_id().pages(concurrency=4)
    assert fake.requests == 0
