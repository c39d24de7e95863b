"""Async paginators over Cliniko's ``page``/``per_page`` lists and ``links.next``."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Generic, Self, TypeVar

import attrs

from ._converter import ModelDecodeError, structure_many
from ._session import QueryParams, Session
from .errors import ConfigurationError, DecodeError, UnsafeURLError

__all__ = ["MAX_PER_PAGE", "Page", "PageLinks", "Paginator", "check_per_page"]

M = TypeVar("M")
MAX_PER_PAGE = 100


def check_per_page(per_page: int | None) -> None:
    """Cliniko accepts ``per_page`` from 1 to 100."""
    if per_page is not None and (
        isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 100
    ):
        raise ConfigurationError(
            f"per_page={per_page!r} is out of range: Cliniko returns 1 to {MAX_PER_PAGE} "
            "records per page; iterate the paginator to get more"
        )


@attrs.frozen
class PageLinks:
    """The page's ``links``: ``self``, and ``next``/``previous`` when they exist."""

    self_: str | None = None
    next: str | None = None
    previous: str | None = None


@attrs.frozen
class Page(Generic[M]):
    """One page of a list: its ``items``, ``total_entries`` and ``links``."""

    items: list[M]
    total_entries: int | None
    links: PageLinks
    number: int

    def __iter__(self) -> Generator[M, None, None]:
        yield from self.items

    def __len__(self) -> int:
        return len(self.items)


class Paginator(Generic[M]):
    """What ``list()`` returns: an async iterator over records, with ``pages()`` and ``collect()``.

    Sequential iteration fetches the next page while the caller works on the current one;
    ``pages(concurrency=N)`` fetches pages 2..last in parallel (within the rate limit) once
    ``total_entries`` is known, still yielding them in order.
    """

    def __init__(
        self,
        session: Session,
        path: str,
        key: str,
        model: type[M],
        params: QueryParams,
        *,
        per_page: int | None = None,
    ) -> None:
        check_per_page(per_page)
        self._session = session
        self._path = path
        self._key = key
        self._model = model
        self._params = list(params)
        self._per_page = per_page
        self._items: AsyncIterator[M] | None = None
        self._by_id = False

    def __repr__(self) -> str:
        return f"<Paginator {self._path} per_page={self._per_page or 'default'}>"

    # -- items -----------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[M]:
        return _ItemIterator(self.pages())

    async def collect(self, *, concurrency: int = 1) -> list[M]:
        """Every record of every page, in order."""
        out: list[M] = []
        async with contextlib.aclosing(self.pages(concurrency=concurrency)) as pages:
            async for page in pages:
                out.extend(page.items)
        return out

    def by_id(self) -> Paginator[M]:
        """The same records, paged by id instead of by page number (keyset pagination).

        Each request asks for the records with an id above the last one seen, in id order, so
        records created or deleted during a long export never shift the pages: nothing is
        skipped and nothing comes twice. (Page numbers can: see the README.)
        """
        if any(name in ("sort", "order") for name, _ in self._params):
            raise ConfigurationError(
                "by_id() pages in id order: leave sort= and order= out of list()"
            )
        clone = Paginator(
            self._session, self._path, self._key, self._model, self._params,
            per_page=self._per_page or MAX_PER_PAGE,
        )  # fmt: skip
        clone._by_id = True
        return clone

    # -- pages -----------------------------------------------------------------------------
    def pages(self, *, concurrency: int = 1) -> PageIterator[M]:
        """An async iterator of :class:`Page` objects (items, total_entries, links)."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if concurrency > 1 and self._by_id:
            raise ConfigurationError("by_id() pages one after another: concurrency must be 1")
        return PageIterator(self, concurrency)

    def _first_params(self, page: int | None = None) -> list[tuple[str, str]]:
        params = list(self._params)
        if self._by_id:
            params.append(("sort", "id"))
        if self._per_page is not None:
            params.append(("per_page", str(self._per_page)))
        if page is not None:
            params.append(("page", str(page)))
        return params

    async def _fetch(self, url: str, params: QueryParams | None, number: int) -> Page[M]:
        data = await self._session.request("GET", url, params=params)
        return self._parse(data, url, number)

    def _parse(self, data: Any, url: str, number: int) -> Page[M]:
        public_url = str(self._session.url_for(url).copy_with(query=None))
        if not isinstance(data, dict) or not isinstance(data.get(self._key), list):
            got = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:5]}"
            raise DecodeError(
                f"expected a list page with a {self._key!r} array",
                method="GET",
                url=public_url,
                status_code=200,
                snippet=f"got {got}",
            )
        try:
            items = structure_many(data[self._key], self._model)
        except ModelDecodeError as exc:
            raise DecodeError(
                f"a {self._key} record did not match the {self._model.__name__} model",
                method="GET",
                url=public_url,
                status_code=200,
                snippet=str(exc)[:200],
            ) from None
        raw_links = data.get("links")
        links: dict[str, Any] = raw_links if isinstance(raw_links, dict) else {}
        total = data.get("total_entries")
        try:
            total_entries = int(total) if total is not None else None
        except (TypeError, ValueError):
            total_entries = None
        return Page(
            items=items,
            total_entries=total_entries,
            links=PageLinks(links.get("self"), links.get("next"), links.get("previous")),
            number=number,
        )


class _ItemIterator(Generic[M]):
    """Flattens pages into records; closes the page iterator when exhausted or collected."""

    def __init__(self, pages: PageIterator[M]) -> None:
        self._pages = pages
        self._buffer: list[M] = []
        self._index = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> M:
        while self._index >= len(self._buffer):
            page = await self._pages.__anext__()
            self._buffer, self._index = page.items, 0
        item = self._buffer[self._index]
        self._index += 1
        return item

    async def aclose(self) -> None:
        await self._pages.aclose()


class PageIterator(Generic[M]):
    """Async iterator of pages with one page of prefetch (or N with ``concurrency``).

    Breaking out early leaves nothing running: the prefetch is cancelled when the iterator is
    closed (``aclose()``, ``async with``) or garbage-collected.
    """

    def __init__(self, paginator: Paginator[M], concurrency: int) -> None:
        self._paginator = paginator
        self._concurrency = concurrency
        self._pending: list[asyncio.Task[Page[M]]] = []
        self._next_number = 1
        self._last_number: int | None = None
        self._started = False
        self._done = False
        self._deferred: UnsafeURLError | None = None

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _spawn(self, make: Callable[[], Any]) -> asyncio.Task[Page[M]]:
        task: asyncio.Task[Page[M]] = asyncio.ensure_future(make())
        # Retrieve the exception of a prefetch nobody awaits, so nothing is logged as lost.
        task.add_done_callback(_consume)
        self._pending.append(task)
        return task

    async def __anext__(self) -> Page[M]:
        if self._done:
            raise StopAsyncIteration
        p = self._paginator
        if not self._started:
            self._started = True
            self._spawn(lambda: p._fetch(p._path, p._first_params(), 1))
        if not self._pending:
            self._done = True
            if self._deferred is not None:
                raise self._deferred
            raise StopAsyncIteration
        task = self._pending.pop(0)
        try:
            page = await task
        except BaseException:
            self._cancel_all()
            self._done = True
            raise
        self._schedule_after(page)
        return page

    def _schedule_after(self, page: Page[M]) -> None:
        p = self._paginator
        if self._concurrency > 1 and page.number == 1 and page.total_entries is not None:
            per_page = p._per_page or len(page.items) or 1
            self._last_number = max(1, math.ceil(page.total_entries / per_page))
            self._next_number = 2
        if self._last_number is not None:
            # Concurrent mode: keep up to `concurrency` pages in flight, in page order.
            while len(self._pending) < self._concurrency and self._next_number <= self._last_number:
                number = self._next_number
                self._next_number += 1
                self._spawn(lambda n=number: p._fetch(p._path, p._first_params(n), n))  # type: ignore[misc]
            return
        if p._by_id:  # the next page: ids above the last one seen
            last = getattr(page.items[-1], "id", None) if page.items else None
            if last is not None and len(page.items) >= (p._per_page or MAX_PER_PAGE):
                params = [*p._first_params(), ("q[]", f"id:>{last}")]
                self._spawn(lambda: p._fetch(p._path, params, page.number + 1))
            return
        if page.links.next:
            next_url = page.links.next
            try:
                p._session.url_for(next_url)
            except UnsafeURLError as exc:  # raised when the caller asks for that page
                self._deferred = exc
                return
            self._spawn(lambda: p._fetch(next_url, None, page.number + 1))

    def _cancel_all(self) -> None:
        for task in self._pending:
            task.cancel()
        self._pending.clear()

    async def aclose(self) -> None:
        """Stop: cancel any prefetch in flight and wait for it to finish."""
        tasks = list(self._pending)
        self._cancel_all()
        self._done = True
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def __del__(self) -> None:
        for task in self._pending:
            if not task.done():
                task.cancel()


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
