"""Paginator: items, pages, collect, prefetch, per_page bounds, safe links.next, early exit."""

from __future__ import annotations

import asyncio
import gc
import warnings

import attrs
import httpx
import pytest

from cliniko_async import Cliniko, ConfigurationError, DecodeError, Paginator, UnsafeURLError

from ._mockserver import API_KEY, BASE_URL, USER_AGENT, CountingServer

pytestmark = pytest.mark.looptime


@attrs.frozen
class Item:
    id: int
    name: str | None = None


def list_route(total: int, *, next_host: str | None = None, latency: float = 0.0):  # type: ignore[no-untyped-def]
    async def route(request: httpx.Request, srv: CountingServer) -> httpx.Response:
        if latency:
            await asyncio.sleep(latency)
        page = int(request.url.params.get("page", "1"))
        per_page = int(request.url.params.get("per_page", "50"))
        lo = (page - 1) * per_page
        items = [
            {"id": str(i), "name": f"n{i}", "new_field": 1}
            for i in range(lo, min(lo + per_page, total))
        ]
        base = f"{request.url.scheme}://{request.url.netloc.decode()}/v1/items"
        links = {"self": f"{base}?page={page}&per_page={per_page}"}
        if lo + per_page < total:
            host = next_host or request.url.netloc.decode()
            links["next"] = (
                f"{request.url.scheme}://{host}/v1/items?page={page + 1}&per_page={per_page}"
            )
        return srv.json(200, {"items": items, "total_entries": total, "links": links})

    return route


def paginator(cliniko: Cliniko, per_page: int | None = None) -> Paginator[Item]:
    return Paginator(cliniko._session, "/items", "items", Item, [("sort", "id")], per_page=per_page)


def make(server: CountingServer) -> Cliniko:
    return Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=server.transport()),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("total", "per_page"), [(0, 100), (100, 100), (101, 100), (250, 50), (7, 3)]
)
async def test_items_pages_collect(total: int, per_page: int) -> None:
    server = CountingServer(route=list_route(total))
    async with make(server) as cliniko:
        ids = [item.id async for item in paginator(cliniko, per_page)]
        assert ids == list(range(total))
        pages = [page async for page in paginator(cliniko, per_page).pages()]
        assert [len(p) for p in pages][:1] == [min(total, per_page)]
        assert all(p.total_entries == total for p in pages)
        assert [p.number for p in pages] == list(range(1, len(pages) + 1))
        assert pages[-1].links.next is None
        assert [i.id for i in await paginator(cliniko, per_page).collect()] == ids
        assert [i.id for i in await paginator(cliniko, per_page).collect(concurrency=4)] == ids


@pytest.mark.parametrize("per_page", [0, 101, -1, True, 2.5])
async def test_per_page_bounds(per_page: object) -> None:
    server = CountingServer(route=list_route(3))
    async with make(server) as cliniko:
        with pytest.raises(ConfigurationError, match="per_page"):
            paginator(cliniko, per_page)  # type: ignore[arg-type]
    assert server.arrivals == []


async def test_next_link_to_another_host_is_refused_and_nothing_sent() -> None:
    server = CountingServer(route=list_route(10, next_host="evil.example"))
    async with make(server) as cliniko:
        seen = []
        with pytest.raises(UnsafeURLError, match="evil.example"):
            async for item in paginator(cliniko, 5):
                seen.append(item.id)
    assert seen == [0, 1, 2, 3, 4]
    assert set(server.hosts) == {"127.0.0.1"}


async def test_next_link_on_another_port_or_scheme_is_refused() -> None:
    for host in ("127.0.0.1:8443", "127.0.0.1:80/other"):
        server = CountingServer(route=list_route(10, next_host=host))
        async with make(server) as cliniko:
            with pytest.raises(UnsafeURLError):
                await paginator(cliniko, 5).collect()
        assert len(server.hosts) == 1


async def test_prefetch_overlaps_consumer_work() -> None:
    loop = asyncio.get_running_loop()
    server = CountingServer(route=list_route(500, latency=1.0))
    async with make(server) as cliniko:
        start = loop.time()
        async for page in paginator(cliniko, 100).pages():
            await asyncio.sleep(1.0)  # the consumer's work on each page
            assert page
        elapsed = loop.time() - start
    # 5 pages x (1 s fetch + 1 s work) sequentially = 10 s; with prefetch, about 6 s.
    assert elapsed <= 6.5, elapsed


async def test_concurrent_pages_in_order_and_faster() -> None:
    loop = asyncio.get_running_loop()
    server = CountingServer(route=list_route(1000, latency=1.0))
    async with make(server) as cliniko:
        start = loop.time()
        pages = [p.number async for p in paginator(cliniko, 100).pages(concurrency=5)]
        elapsed = loop.time() - start
    assert pages == list(range(1, 11))
    assert elapsed <= 3.5, elapsed  # 1 page, then 9 pages 5 at a time: 1 + 2 rounds of 1 s


async def test_breaking_out_early_leaves_no_task_or_warning() -> None:
    server = CountingServer(route=list_route(1000, latency=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with make(server) as cliniko:
            async for item in paginator(cliniko, 10):
                if item.id == 3:
                    break
            gc.collect()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert asyncio.all_tasks() == {asyncio.current_task()}
            pages = paginator(cliniko, 10).pages()
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
