"""Paginator: items, pages, collect, prefetch, per_page bounds, safe links.next, early exit."""

from __future__ import annotations

import asyncio
import gc
import warnings

import attrs
import httpx
import pytest

from cliniko_async import Cliniko, ConfigurationError, DecodeError, Paginator, UnsafeURLError
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, FaultRule, Faults

from ._mockserver import API_KEY, BASE_URL, USER_AGENT, CountingServer

pytestmark = pytest.mark.looptime


@attrs.frozen
class Item:
    id: int
    name: str | None = None


def paginator(cliniko: Cliniko, per_page: int | None = None) -> Paginator[Item]:
    return Paginator(cliniko._session, "/items", "items", Item, [("sort", "id")], per_page=per_page)


def make(server: CountingServer) -> Cliniko:
    return Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=server.transport()),
    )  # fmt: skip


def on_fake(fake: FakeCliniko) -> Cliniko:
    return Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=fake.transport()),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("total", "per_page"), [(0, 100), (100, 100), (101, 100), (250, 50), (7, 3)]
)
async def test_items_pages_collect(total: int, per_page: int) -> None:
    fake = FakeCliniko(patients=total, rate_limit=None)
    async with on_fake(fake) as cliniko:
        ids = [p.id async for p in cliniko.patients.list(per_page=per_page, sort="id")]
        assert ids == list(range(1, total + 1))
        pages = [page async for page in cliniko.patients.list(per_page=per_page).pages()]
        assert [len(p) for p in pages][:1] == [min(total, per_page)]
        assert all(p.total_entries == total for p in pages)
        assert [p.number for p in pages] == list(range(1, len(pages) + 1))
        assert pages[-1].links.next is None
        collected = await cliniko.patients.list(per_page=per_page, sort="id").collect()
        assert [p.id for p in collected] == ids
        parallel = await cliniko.patients.list(per_page=per_page, sort="id").collect(concurrency=4)
        assert [p.id for p in parallel] == ids


@pytest.mark.parametrize("per_page", [0, 101, -1, True, 2.5])
async def test_per_page_bounds(per_page: object) -> None:
    fake = FakeCliniko(rate_limit=None)
    async with on_fake(fake) as cliniko:
        with pytest.raises(ConfigurationError, match="per_page"):
            cliniko.patients.list(per_page=per_page)  # type: ignore[arg-type]
    assert fake.requests == 0


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:8443"])
async def test_next_link_to_another_host_is_refused_and_nothing_sent(host: str) -> None:
    rule = FaultRule(path="/v1/patients", next_link_host=host)
    fake = FakeCliniko(patients=10, rate_limit=None, faults=Faults([rule]))
    hosts: list[str] = []

    async def record(request: httpx.Request) -> None:
        hosts.append(request.url.netloc.decode())

    http = httpx.AsyncClient(transport=fake.transport(), event_hooks={"request": [record]})
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http
    ) as cliniko:
        seen = []
        with pytest.raises(UnsafeURLError, match=host.split(":")[0]):
            async for patient in cliniko.patients.list(per_page=5, sort="id"):
                seen.append(patient.id)
    assert seen == [1, 2, 3, 4, 5]  # the first page is delivered, then the error
    assert hosts == ["127.0.0.1"]  # nothing was sent to the other host
    await http.aclose()


async def test_prefetch_overlaps_consumer_work() -> None:
    loop = asyncio.get_running_loop()
    fake = FakeCliniko(patients=500, rate_limit=None, faults=Faults([FaultRule(latency=(1, 1))]))
    async with on_fake(fake) as cliniko:
        start = loop.time()
        async for page in cliniko.patients.list(per_page=100).pages():
            await asyncio.sleep(1.0)  # the consumer's work on each page
            assert page
        elapsed = loop.time() - start
    # 5 pages x (1 s fetch + 1 s work) sequentially = 10 s; with prefetch, about 6 s.
    assert elapsed <= 6.5, elapsed


async def test_concurrent_pages_in_order_and_faster() -> None:
    loop = asyncio.get_running_loop()
    fake = FakeCliniko(patients=1000, rate_limit=None, faults=Faults([FaultRule(latency=(1, 1))]))
    async with on_fake(fake) as cliniko:
        start = loop.time()
        pages = [p.number async for p in cliniko.patients.list(per_page=100).pages(concurrency=5)]
        elapsed = loop.time() - start
    assert pages == list(range(1, 11))
    assert elapsed <= 3.5, elapsed  # 1 page, then 9 pages 5 at a time: 1 + 2 rounds of 1 s


async def test_breaking_out_early_leaves_no_task_or_warning() -> None:
    fake = FakeCliniko(patients=1000, rate_limit=None, faults=Faults([FaultRule(latency=(1, 1))]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with on_fake(fake) as cliniko:
            async for patient in cliniko.patients.list(per_page=10, sort="id"):
                if patient.id == 3:
                    break
            gc.collect()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert asyncio.all_tasks() == {asyncio.current_task()}
            pages = cliniko.patients.list(per_page=10).pages()
            async with pages:
                await pages.__anext__()
            assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b'{"items": [',
        b'{"wrong": []}',
        b"[1, 2]",
        b'{"items": [{"name": 1}]}',
    ],
)
async def test_bad_list_bodies_raise_decode_error(body: bytes) -> None:
    async def route(request: httpx.Request, srv: CountingServer) -> httpx.Response:
        return httpx.Response(200, content=body)

    server = CountingServer(route=route)
    async with make(server) as cliniko:
        with pytest.raises(DecodeError) as info:
            await paginator(cliniko).collect()
    assert "/v1/items" in str(info.value)


async def test_aclose_does_not_swallow_the_callers_cancellation() -> None:
    fake = FakeCliniko(patients=500, rate_limit=None, faults=Faults([FaultRule(latency=(1, 1))]))
    async with on_fake(fake) as cliniko:
        pages = cliniko.patients.list(per_page=100).pages()
        await pages.__anext__()  # page 2 is now being prefetched

        async def close() -> str:
            await pages.aclose()
            return "closed"

        closer = asyncio.ensure_future(close())
        await asyncio.sleep(0)  # aclose() has cancelled the prefetch and waits for it
        closer.cancel()  # the caller is cancelled while it waits
        with pytest.raises(asyncio.CancelledError):
            await closer
    # Closing without a cancellation of its own still works and swallows the prefetch's.
    async with on_fake(fake) as cliniko:
        pages = cliniko.patients.list(per_page=100).pages()
        await pages.__anext__()
        await pages.aclose()
        with pytest.raises(StopAsyncIteration):
            await pages.__anext__()


async def test_pages_carry_the_records_as_sent_beside_the_models() -> None:
    """``Page.raw``: one JSON object per item, in order, keys the model lacks included, on
    sequential, concurrent and keyset (``by_id``) pages."""
    fake = FakeCliniko(patients=230, rate_limit=None)
    fake.data["patients"][5]["a_field_cliniko_added_later"] = {"nested": [1, 2]}
    async with on_fake(fake) as cliniko:
        for source in (
            cliniko.patients.list(per_page=50, sort="id").pages(),
            cliniko.patients.list(per_page=50, sort="id").pages(concurrency=3),
            cliniko.patients.list(per_page=50).by_id().pages(),
        ):
            pages = [page async for page in source]
            assert [len(p.raw) for p in pages] == [len(p.items) for p in pages] == [50] * 4 + [30]
            for page in pages:
                for raw, item in zip(page.raw, page.items, strict=True):
                    assert str(item.id) == raw["id"]
                    assert raw["first_name"] == item.first_name
            raws = [r for p in pages for r in p.raw]
            assert raws[4]["a_field_cliniko_added_later"] == {"nested": [1, 2]}
            assert "a_field_cliniko_added_later" not in repr(pages[0])
