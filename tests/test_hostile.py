"""A hostile Cliniko on loopback: its links, pages and bodies must never loop, leak or escape.

Each test scripts one response per request on a tiny Starlette app served by uvicorn on
127.0.0.1 (``cliniko_async.testing.serve``), and asserts on what the client raised and on what the
server saw. Every exception that escapes must be a ``ClinikoError``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cliniko_async import Cliniko, PageLinks, _converter, _json, _session
from cliniko_async.errors import (
    APIStatusError,
    ClinikoError,
    ConfigurationError,
    DecodeError,
    PaginationError,
    UnsafeURLError,
)
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, serve

Handler = Callable[[Request, "Server"], Any]
#: A client that loops on a hostile server fails the test instead of hanging the suite.
pytestmark = pytest.mark.timeout(60)
DEADLINE = 15.0


class Server:
    """A scripted server: ``handler(request, server)`` returns a JSON body or a Response."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, str, str]] = []  # (path, query, authorization)
        self.bodies: list[bytes] = []
        self.url = ""

    async def endpoint(self, request: Request) -> Response:
        self.seen.append(
            (request.url.path, request.url.query, request.headers.get("authorization", ""))
        )
        self.bodies.append(await request.body())
        out = self.handler(request, self)
        if isinstance(out, Response):
            return out
        return Response(json.dumps(out), 200, media_type="application/json")

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.endpoint, methods=methods)])


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Any] = []

    def start(handler: Handler) -> Server:
        server = Server(handler)
        ctx = serve(server.app())
        server.url = ctx.__enter__()
        servers.append(ctx)
        return server

    yield start
    for ctx in servers:
        ctx.__exit__(None, None, None)


def client(server: Server) -> Cliniko:
    return Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=server.url, max_retries=0
    )


def page(ids: list[int], *, total: Any = None, next: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"patients": [{"id": str(i)} for i in ids]}
    if total is not None:
        body["total_entries"] = total
    links: dict[str, Any] = {"self": "/patients"}
    if next is not None:
        links["next"] = next
    body["links"] = links
    body.update(extra)
    return body


def number(request: Request) -> int:
    return int(request.query_params.get("page", "1"))


async def collect(cliniko: Cliniko, **kwargs: Any) -> tuple[list[int], BaseException | None]:
    """Records up to the first error, and that error (only ClinikoErrors may escape)."""
    got: list[int] = []
    try:
        async with asyncio.timeout(DEADLINE), cliniko:
            pages = cliniko.patients.list(per_page=kwargs.pop("per_page", 2)).pages(**kwargs)
            async for p in pages:
                got += [r.id for r in p.items if r.id is not None]
    except ClinikoError as exc:
        return got, exc
    return got, None


# -- links ----------------------------------------------------------------------------------------
async def test_relative_next_link_is_followed(hostile: Callable[[Handler], Server]) -> None:
    # The form Cliniko's available-times docs show: a path relative to the base URL.
    server = hostile(
        lambda r, s: (
            page([1, 2], next="/patients?page=2&per_page=2") if number(r) == 1 else page([3])
        )
    )
    got, error = await collect(client(server))
    assert (got, error) == ([1, 2, 3], None)
    assert server.seen[1][:2] == ("/v1/patients", "page=2&per_page=2")


@pytest.mark.parametrize(
    "link",
    [
        "{origin}/v1/../patients?page=2",
        "{origin}/v1/%2e%2e/patients?page=2",
        "{origin}/v1/%2E%2E/%2e%2e/x",
        "{origin}/v1/patients/%2e%2e%2f%2e%2e%2fx",
        "{origin}/v1/patients?page=2\r\nX-Evil: 1",
        "{origin}/v1/patients?page=\x002",
        "{userinfo}/v1/patients?page=2",
        "{origin}/v2/patients?page=2",
        "https://attacker.example/v1/patients?page=2",
        5,
        ["{origin}/v1/patients?page=2"],
        {"href": "{origin}/v1/patients?page=2"},
        True,
    ],
)
async def test_unsafe_next_links_are_refused_after_page_one(
    hostile: Callable[[Handler], Server], link: Any
) -> None:
    def handler(request: Request, server: Server) -> Any:
        origin = server.url.removesuffix("/v1")
        userinfo = origin.replace("http://", "http://evil:pw@")

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace("{origin}", origin).replace("{userinfo}", userinfo)
            if isinstance(value, list):
                return [fill(v) for v in value]
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        return page([1, 2], next=fill(link))

    server = hostile(handler)
    got, error = await collect(client(server))
    assert got == [1, 2]  # page 1 is yielded before the refusal
    assert isinstance(error, UnsafeURLError), repr(error)
    assert len(server.seen) == 1  # nothing was sent to the link
    assert "evil" not in str(error) and "pw" not in str(error)


async def test_userinfo_link_never_replaces_the_key(hostile: Callable[[Handler], Server]) -> None:
    def handler(request: Request, server: Server) -> Any:
        origin = server.url.removesuffix("/v1").replace("http://", "http://evil:pw@")
        return page([1, 2], next=f"{origin}/v1/patients?page=2")

    server = hostile(handler)
    await collect(client(server))
    evil = "Basic " + base64.b64encode(b"evil:pw").decode()
    assert all(auth != evil for _, _, auth in server.seen)


async def test_link_objects_keep_unknown_keys_and_tolerate_empty_links(
    hostile: Callable[[Handler], Server],
) -> None:
    bodies: list[dict[str, Any]] = [
        {"patients": [{"id": "1"}], "links": {"self": "/patients", "first": "/patients?page=1"}},
        {"patients": [{"id": "2"}], "links": {}},
        {"patients": [{"id": "3"}], "links": None},
        {"patients": [{"id": "4"}]},
    ]
    for body in bodies:

        def handler(request: Request, server: Server, body: Any = body) -> Any:
            return body

        server = hostile(handler)
        async with client(server) as cliniko:
            pages = [p async for p in cliniko.patients.list().pages()]
        assert [len(p) for p in pages] == [1]
        links = pages[0].links
        assert isinstance(links, PageLinks) and links.next is None
    first = bodies[0]["links"]
    assert first is not None
    assert PageLinks.from_json(first).extra == {"first": "/patients?page=1"}


# -- pagination that never ends or loses records ------------------------------------------------
async def test_next_link_to_the_same_page(hostile: Callable[[Handler], Server]) -> None:
    server = hostile(lambda r, s: page([1, 2], next=str(r.url)))
    _got, error = await collect(client(server))
    assert isinstance(error, PaginationError), repr(error)
    assert len(server.seen) <= 2


async def test_next_links_cycling_between_two_pages(hostile: Callable[[Handler], Server]) -> None:
    # Fresh records on each visit: only the links give the loop away.
    visits = iter(range(1, 1000))

    def handler(request: Request, server: Server) -> Any:
        n = number(request)
        ids = [next(visits) * 10, next(visits) * 10]
        return page(ids, next=f"/patients?page={2 if n == 1 else 1}&per_page=2")

    server = hostile(handler)
    _got, error = await collect(client(server))
    assert isinstance(error, PaginationError), repr(error)
    assert len(server.seen) <= 4


async def test_endless_fresh_links_stop_at_what_total_entries_allows(
    hostile: Callable[[Handler], Server],
) -> None:
    def handler(request: Request, server: Server) -> Any:
        n = number(request)
        return page([2 * n - 1, 2 * n], total=4, next=f"/patients?page={n + 1}&per_page=2")

    server = hostile(handler)
    _got, error = await collect(client(server))
    assert isinstance(error, PaginationError), repr(error)
    assert len(server.seen) <= 10


async def test_duplicate_records_across_pages(hostile: Callable[[Handler], Server]) -> None:
    server = hostile(
        lambda r, s: (
            page([1, 2], next="/patients?page=2&per_page=2") if number(r) == 1 else page([2, 3])
        )
    )
    got, error = await collect(client(server))
    assert got == [1, 2]
    assert isinstance(error, PaginationError), repr(error)


async def test_page_larger_than_per_page(hostile: Callable[[Handler], Server]) -> None:
    server = hostile(lambda r, s: page([1, 2, 3]))
    got, error = await collect(client(server))
    assert got == []
    assert isinstance(error, PaginationError), repr(error)


async def test_by_id_against_a_server_that_ignores_the_id_filter(
    hostile: Callable[[Handler], Server],
) -> None:
    server = hostile(lambda r, s: page([1, 2], next="/patients?page=2"))
    async with asyncio.timeout(DEADLINE), client(server) as cliniko:
        with pytest.raises(PaginationError):
            await cliniko.patients.list(per_page=2).by_id().collect()
    assert len(server.seen) == 2


async def test_by_id_with_ids_out_of_order(hostile: Callable[[Handler], Server]) -> None:
    server = hostile(lambda r, s: page([5, 3]))
    async with asyncio.timeout(DEADLINE), client(server) as cliniko:
        with pytest.raises(PaginationError):
            await cliniko.patients.list(per_page=2).by_id().collect()


async def test_by_id_refused_for_records_without_ids(
    hostile: Callable[[Handler], Server],
) -> None:
    server = hostile(lambda r, s: {"services": [{"name": "x"}] * 100, "total_entries": 300})
    async with client(server) as cliniko:
        with pytest.raises(ConfigurationError, match="no id"):
            cliniko.services.list().by_id()
    assert server.seen == []


async def test_huge_total_entries_with_concurrency_ends(
    hostile: Callable[[Handler], Server],
) -> None:
    def handler(request: Request, server: Server) -> Any:
        n = number(request)
        return page([2 * n - 1, 2 * n] if n <= 3 else [], total=10**9)

    server = hostile(handler)
    _got, error = await collect(client(server), concurrency=4)
    assert isinstance(error, PaginationError), repr(error)
    assert len(server.seen) <= 12


async def test_huge_total_entries_with_full_pages_that_stop_linking_ends(
    hostile: Callable[[Handler], Server],
) -> None:
    # Every page full of fresh records; pages 1-3 link on, later ones link nowhere: only the
    # missing link on a page total_entries says is not the last gives the lie away.
    def handler(request: Request, server: Server) -> Any:
        n = number(request)
        nxt = f"/patients?page={n + 1}&per_page=2" if n <= 3 else None
        return page([2 * n - 1, 2 * n], total=10**9, next=nxt)

    server = hostile(handler)
    _got, error = await collect(client(server), concurrency=4)
    assert isinstance(error, PaginationError), repr(error)
    assert "links to no next page" in str(error)
    assert len(server.seen) <= 12


async def test_total_entries_lower_than_the_truth_raises_instead_of_cutting(
    hostile: Callable[[Handler], Server],
) -> None:
    # 6 records in 3 pages, but total_entries says 3: concurrent mode must not stop at page 2.
    def handler(request: Request, server: Server) -> Any:
        n = number(request)
        nxt = f"/patients?page={n + 1}&per_page=2" if n < 3 else None
        return page([2 * n - 1, 2 * n], total=3, next=nxt)

    server = hostile(handler)
    _got, error = await collect(client(server), concurrency=3)
    assert isinstance(error, PaginationError), repr(error)


@pytest.mark.parametrize("total", ["1e400", "-1e400", "-5", "true", '"12abc"', "1.5", "[1]"])
async def test_nonsense_total_entries_is_ignored(
    hostile: Callable[[Handler], Server], total: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without orjson (an optional extra) the stdlib decodes 1e400 as inf.
    monkeypatch.setattr(_session, "_loads", json.loads)
    raw = '{"patients": [{"id": "1"}], "total_entries": ' + total + ', "links": {}}'
    server = hostile(lambda r, s: Response(raw, 200, media_type="application/json"))
    async with asyncio.timeout(DEADLINE), client(server) as cliniko:
        pages = [p async for p in cliniko.patients.list().pages(concurrency=3)]
    assert [p.total_entries for p in pages] == [None]


# -- exceptions outside the hierarchy -------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 404, 422])
async def test_deeply_nested_json_is_a_decode_error(
    hostile: Callable[[Handler], Server], status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without orjson (an optional extra) the stdlib decoder recurses: RecursionError.
    monkeypatch.setattr(_json, "_loads", json.loads)
    deep = '{"errors": ' + "[" * 50_000 + "]" * 50_000 + ', "message": "x"}'
    server = hostile(lambda r, s: Response(deep, status, media_type="application/json"))
    async with client(server) as cliniko:
        with pytest.raises(ClinikoError) as info:
            await cliniko.patients.get(1)
    assert isinstance(info.value, DecodeError | APIStatusError)


@pytest.mark.parametrize("decoder", ["orjson", "json"])
def test_json_loads_refuses_deep_nesting(decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if decoder == "json":
        monkeypatch.setattr(_json, "_loads", json.loads)
    for deep in (b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 100 + b"1" + b"}" * 100):
        with pytest.raises(_json.JSON_DECODE_ERRORS):
            _json.loads(deep)
    inside_strings = json.dumps(["[" * 200, "{" * 200, "]" * 100]).encode()  # not nesting
    assert _json.loads(inside_strings) == ["[" * 200, "{" * 200, "]" * 100]
    balanced_in_strings = json.dumps({"a": "[" * 100 + "]" * 100}).encode()
    assert _json.loads(balanced_in_strings) == {"a": "[" * 100 + "]" * 100}


async def test_request_with_a_query_in_the_path(hostile: Callable[[Handler], Server]) -> None:
    server = hostile(lambda r, s: {"ok": True})
    async with client(server) as cliniko:
        assert await cliniko.request("GET", "/patients?page=2") == {"ok": True}
        with pytest.raises(UnsafeURLError):
            await cliniko.request("GET", "/patients\r\nX: y")
        with pytest.raises(UnsafeURLError):
            await cliniko.request("GET", "/%2e%2e/v2/patients")
    assert server.seen == [("/v1/patients", "page=2", server.seen[0][2])]


def test_model_decode_error_is_a_cliniko_error() -> None:
    from cliniko_async.models import Patient

    with pytest.raises(ClinikoError):
        _converter.structure({"id": "not a number"}, Patient)


async def test_mapping_bodies_with_dates_and_decimals_are_sent_as_json(
    hostile: Callable[[Handler], Server],
) -> None:
    server = hostile(lambda r, s: Response(json.dumps({"id": "1"}), 201))
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=10)))
    async with client(server) as cliniko:
        await cliniko.patients.create(
            {
                "first_name": "A",
                "last_name": "B",
                "date_of_birth": dt.date(1990, 5, 6),
                "x": Decimal("1.50"),
                "at": when,
            }
        )
        names = {"first_name": "A", "last_name": "B"}
        with pytest.raises(ConfigurationError, match="naive"):
            await cliniko.patients.create({**names, "at": dt.datetime(2026, 1, 1)})
        with pytest.raises(ConfigurationError, match="tags"):
            await cliniko.patients.create({**names, "tags": {1, 2}})
        with pytest.raises(ConfigurationError, match="n"):
            await cliniko.patients.create({**names, "n": float("nan")})
    assert len(server.bodies) == 1
    assert json.loads(server.bodies[0]) == {
        "first_name": "A", "last_name": "B", "date_of_birth": "1990-05-06", "x": "1.50",
        "at": "2026-01-01T17:04:05Z",
    }  # fmt: skip


# -- a list that ends short of its own total_entries (outside finding G20) ----------------------


@pytest.mark.parametrize("links_on", [False, True])
@pytest.mark.parametrize("mode", ["pages", "by_id", "cli-export"])
async def test_a_list_ending_short_of_its_total_is_a_pagination_error(
    hostile: Callable[[Handler], Server], mode: str, links_on: bool, tmp_path: Path
) -> None:
    # The server holds ids 1-5 but page 1 brings only id 1 (total_entries: 5), linking to an
    # empty page 2 or to nothing. Sequential paging and by_id() returned [1] without a word
    # (and `cliniko export` reported 1 patient, exit 0); only concurrent paging objected.
    def handler(request: Request, server: Server) -> Any:
        wanted = request.query_params.getlist("q[]")
        if any(q.startswith("id:>") for q in wanted):
            after = int(next(q for q in wanted if q.startswith("id:>"))[4:])
            ids = list(range(after + 1, 6))
            return page(ids, total=len(ids))
        if number(request) == 1:
            return page([1], total=5, next="/patients?page=2&per_page=100" if links_on else None)
        return page([], total=5)

    server = hostile(handler)
    if mode == "cli-export":
        import subprocess
        import sys

        out = str(tmp_path / "patients.jsonl")
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cliniko_async", "--base-url", server.url, "export",
             "patients", "-o", out],
            env={"CLINIKO_API_KEY": DEFAULT_API_KEY, "CLINIKO_USER_AGENT": DEFAULT_USER_AGENT,
                 "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        assert "total_entries there says 5" in proc.stderr, proc.stderr
        assert not (tmp_path / "patients.jsonl").exists()  # never looks finished
        return
    cliniko = client(server)
    if mode == "pages":
        got, error = await collect(cliniko, per_page=100)
    else:
        got, error = [], None
        try:
            async with asyncio.timeout(DEADLINE), cliniko:
                async for record in cliniko.patients.list(per_page=100).by_id():
                    got.append(record.id)
        except ClinikoError as exc:
            error = exc
    assert got == [1]  # what came is yielded, then the error
    assert isinstance(error, PaginationError), repr(error)
    assert "total_entries there says 5" in str(error)
