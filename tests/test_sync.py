"""SyncCliniko: one loop thread, one limiter and one pool shared by many threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from cliniko_async import (
    ClientClosedError,
    ClinikoError,
    RateLimit,
    SyncCliniko,
    SyncInAsyncContextError,
)
from cliniko_async.models import Patient
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    FakeCliniko,
    FaultRule,
    Faults,
)

from ._mockserver import API_KEY, BASE_URL, USER_AGENT, CountingServer


def make(server: CountingServer, **kwargs: Any) -> SyncCliniko:
    return SyncCliniko(
        api_key=API_KEY,
        user_agent=USER_AGENT,
        base_url=BASE_URL,
        transport=server.transport(),
        **kwargs,
    )


@pytest.mark.parametrize("window", ["rolling", "fixed"])
def test_64_threads_share_one_limiter_zero_429(window: Any) -> None:
    before = set(threading.enumerate())
    faults = Faults([FaultRule(latency=(0.0005, 0.003))], seed=1)
    fake = FakeCliniko(patients=100, rate_limit=(800, 1.0), window=window, faults=faults)
    with SyncCliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=BASE_URL,
        transport=fake.transport(), rate_limit=RateLimit(800, 1.0),
    ) as cliniko:  # fmt: skip

        def worker(n: int) -> int:
            for i in range(50):
                assert cliniko.patients.get(1 + (n * 50 + i) % 100).id is not None
            return n

        with ThreadPoolExecutor(64) as pool:
            assert sorted(pool.map(worker, range(64))) == list(range(64))
    stats = fake.stats()
    assert len(stats.accepted) == 64 * 50
    assert stats.rejected == 0
    assert stats.max_in_window <= 800
    assert set(threading.enumerate()) <= before  # the loop thread is gone


def patients_route(total: int) -> Any:
    async def route(request: httpx.Request, srv: CountingServer) -> httpx.Response:
        if request.url.path.endswith("/patients"):
            page = int(request.url.params.get("page", "1"))
            per = int(request.url.params.get("per_page", "50"))
            lo = (page - 1) * per
            items = [{"id": str(i), "first_name": f"P{i}"} for i in range(lo, min(total, lo + per))]
            links = {"self": str(request.url)}
            if lo + per < total:
                links["next"] = f"http://127.0.0.1/v1/patients?page={page + 1}&per_page={per}"
            return srv.json(200, {"patients": items, "total_entries": total, "links": links})
        return srv.json(200, {"id": request.url.path.rsplit("/", 1)[-1], "first_name": "X"})

    return route


def test_resources_and_iterators_block() -> None:
    server = CountingServer(route=patients_route(250))
    with make(server) as cliniko:
        patient = cliniko.patients.get(5)
        assert isinstance(patient, Patient) and patient.id == 5
        assert [p.id for p in cliniko.patients.list(per_page=100)] == list(range(250))
        assert len(cliniko.patients.list(per_page=100).collect()) == 250
        pages = [len(p) for p in cliniko.patients.list(per_page=100).pages()]
        assert pages == [100, 100, 50]

        async def tasks() -> int:
            return len(asyncio.all_tasks())

        baseline = cliniko._portal.call(tasks)  # the portal's own task and this probe
    slow = CountingServer(route=patients_route(250), latency=(0.5, 0.5))
    with make(slow) as cliniko:
        for p in cliniko.patients.list(per_page=10):
            if p.id == 3:
                break  # the prefetch of page 2 (1 s away) is cancelled on the loop thread
        assert cliniko._portal.call(tasks) == baseline


def test_called_from_event_loop_raises_clear_error() -> None:
    server = CountingServer()
    with make(server) as cliniko:

        async def inside() -> None:
            cliniko.request("GET", "/patients/1")

        with pytest.raises(SyncInAsyncContextError, match="use cliniko_async.Cliniko"):
            asyncio.run(inside())


def test_close_is_idempotent_and_use_after_close_is_clear() -> None:
    cliniko = make(CountingServer())
    cliniko.close()
    cliniko.close()
    with pytest.raises(ClientClosedError, match="closed"):
        cliniko.request("GET", "/patients/1")
    assert API_KEY not in repr(cliniko)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cliniko-sync-loop"]


def test_same_options_as_cliniko_rate_limit_with_options_and_http_client() -> None:
    server = CountingServer(route=patients_route(3))
    http = httpx.AsyncClient(transport=server.transport())
    with SyncCliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http,
        rate_limit=RateLimit(50, 5.0),
    ) as cliniko:  # fmt: skip
        assert cliniko.rate_limit == RateLimit(50, 5.0)
        view = cliniko.with_options(timeout=5, max_retries=0)
        assert isinstance(view, SyncCliniko)
        assert view.rate_limit == cliniko.rate_limit
        assert view._session.options.max_retries == 0
        assert view._session.options.timeout == 5
        assert view.patients.get(2).id == 2
        assert cliniko.patients.get(1).id == 1
        view.close()  # closes the view only
        with pytest.raises(ClientClosedError, match="closed"):
            view.patients.get(2)
        assert cliniko.patients.get(1).id == 1
    assert not http.is_closed  # passed in: not closed for you
    with pytest.raises(ClientClosedError, match="closed"):
        view.patients.get(2)  # the client it came from is closed
    with pytest.raises(ClinikoError, match="not both"):
        SyncCliniko(
            api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http,
            transport=server.transport(),
        )  # fmt: skip


def test_loop_thread_starts_on_first_use_and_stops_when_collected_unclosed() -> None:
    import gc

    before = len(loop_threads())
    cliniko = make(CountingServer(route=patients_route(3)))
    assert len(loop_threads()) == before  # nothing started for a client never used
    assert cliniko.patients.get(1).id == 1
    assert len(loop_threads()) == before + 1
    thread = loop_threads()[-1]
    del cliniko
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()  # the finalizer closed the pool and stopped the loop


def test_close_from_another_thread_ends_a_running_call_promptly() -> None:
    arrived = threading.Event()

    async def slow(request: httpx.Request, srv: CountingServer) -> httpx.Response:
        arrived.set()
        await asyncio.sleep(30)
        return srv.json(200, {"id": "1"})

    cliniko = make(CountingServer(route=slow), max_retries=0)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            cliniko.patients.get(1)
        except BaseException as exc:  # what the call raised is the point
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert arrived.wait(10)
    cliniko.close()
    caller.join(10)
    assert not caller.is_alive()  # not left waiting on a stopped loop
    assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError), outcome
    with pytest.raises(ClientClosedError, match="closed"):
        cliniko.patients.get(1)


def test_no_thread_left_for_the_loop_is_a_cliniko_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside finding G22: out of threads or file descriptors, the first call of a fresh
    # SyncCliniko raised a raw RuntimeError/OSError.
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    cliniko = make(CountingServer())
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(ClinikoError, match="could not start its event-loop thread"):
        cliniko.patients.get(1)
    monkeypatch.undo()
    assert cliniko.request("GET", "/patients/1") is not None  # a later call starts it
    cliniko.close()
