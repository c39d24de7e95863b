"""Async paginators over Cliniko's ``page``/``per_page`` lists and ``links.next``."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from typing import Any, Generic, Self, TypeAlias, TypeVar

import attrs
import httpx

from ._converter import ModelDecodeError as _ConverterDecodeError
from ._converter import structure_many
from ._links import resolve_link
from ._model import EMPTY, Extra
from ._session import QueryParams, Session
from .errors import ClinikoError, ConfigurationError, DecodeError, ModelDecodeError, PaginationError

__all__ = ["MAX_PER_PAGE", "Page", "PageLinks", "Paginator", "check_per_page", "has_ids"]

M = TypeVar("M")
MAX_PER_PAGE = 100
#: Larger ``total_entries`` are not believed (no Cliniko account holds 10**12 records).
MAX_TOTAL_ENTRIES = 10**12
_DECODE_ERRORS = (_ConverterDecodeError, ModelDecodeError)


def has_ids(model: type[Any]) -> bool:
    """Whether records of ``model`` carry an ``id`` (``by_id()`` needs one)."""
    return attrs.has(model) and "id" in attrs.fields_dict(model)


def _total(raw: object) -> int | None:
    """``total_entries`` as an int, or None when missing or nonsense (never an exception)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            return None
        value = int(raw)
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 20:
        value = int(raw)
    else:
        return None
    return value if 0 <= value <= MAX_TOTAL_ENTRIES else None


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
    """The page's ``links``: ``self``, and ``next``/``previous`` when they exist.

    Keys Cliniko may add to the links object later stay reachable in ``extra``; a link that is
    not a string is kept there too (and following it raises ``UnsafeURLError``).
    """

    self_: str | None = None
    next: str | None = None
    previous: str | None = None
    extra: Mapping[str, Any] = attrs.field(default=EMPTY, eq=False, repr=False)

    @classmethod
    def from_json(cls, raw: object) -> PageLinks:
        """The links object of a page as sent (anything that is not a dict: no links)."""
        if not isinstance(raw, dict):
            return cls()
        known: dict[str, str | None] = {"self": None, "next": None, "previous": None}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key in known and (value is None or isinstance(value, str)):
                known[key] = value
            else:
                extra[str(key)] = value
        return cls(
            known["self"], known["next"], known["previous"], Extra(extra) if extra else EMPTY
        )


@attrs.frozen
class Page(Generic[M]):
    """One page of a list: its ``items``, ``total_entries`` and ``links``.

    ``raw``: the page's records as Cliniko sent them (decoded JSON objects, one per item, in
    the same order), for code that keeps the wire form beside the model: a database's JSON
    column, fields the model does not have yet. ``for page in paginator.pages(): for record,
    item in zip(page.raw, page.items): ...``. Not part of equality or ``repr``.
    """

    items: list[M]
    total_entries: int | None
    links: PageLinks
    number: int
    raw: Sequence[Mapping[str, Any]] = attrs.field(default=(), eq=False, repr=False)

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
        if not has_ids(self._model):
            raise ConfigurationError(
                f"by_id() pages by record id, and {self._key} records ({self._model.__name__}) "
                "have no id: iterate the list itself (page by page) instead"
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

    def _base(self) -> httpx.URL:
        return self._session.config.base_url

    def _public_url(self, url: str) -> str:
        try:
            return str(resolve_link(self._base(), url).copy_with(query=None))
        except ClinikoError:
            return str(self._base())

    async def _fetch(self, url: str, params: QueryParams | None, number: int) -> _Fetched[M]:
        data = await self._session.request("GET", url, params=params)
        page = self._parse(data, url, number)
        raw = data.get("links") if isinstance(data, dict) else None
        next_raw = raw.get("next") if isinstance(raw, dict) else None
        if next_raw is None or next_raw == "":
            return page, None
        try:
            current = resolve_link(self._base(), url)
            return page, str(resolve_link(self._base(), next_raw, current=current))
        except ClinikoError as exc:  # raised when the caller asks for that page
            return page, exc

    def _parse(self, data: Any, url: str, number: int) -> Page[M]:
        if not isinstance(data, dict) or not isinstance(data.get(self._key), list):
            got = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)[:5]}"
            raise DecodeError(
                f"expected a list page with a {self._key!r} array",
                method="GET",
                url=self._public_url(url),
                status_code=200,
                snippet=f"got {got}"[:200],
            )
        try:
            items = structure_many(data[self._key], self._model)
        except (*_DECODE_ERRORS, RecursionError) as exc:
            raise DecodeError(
                f"a {self._key} record did not match the {self._model.__name__} model",
                method="GET",
                url=self._public_url(url),
                status_code=200,
                snippet=str(exc)[:200] if not isinstance(exc, RecursionError) else "too deep",
            ) from None
        return Page(
            items=items,
            total_entries=_total(data.get("total_entries")),
            links=PageLinks.from_json(data.get("links")),
            number=number,
            raw=tuple(data[self._key]),
        )


#: A fetched page and where its ``links.next`` leads: a URL, an error to raise, or nowhere.
_Fetched: TypeAlias = "tuple[Page[M], str | ClinikoError | None]"


def _page_key(url: str, params: QueryParams | None, base: httpx.URL) -> tuple[Any, ...] | None:
    """What identifies a page request: origin, path and sorted query (no page means page 1)."""
    try:
        full = resolve_link(base, url)
    except ClinikoError:
        return None
    if params:
        full = full.copy_merge_params(tuple(params))
    items = sorted(full.params.multi_items())
    if not any(k == "page" for k, _ in items):
        items = sorted([*items, ("page", "1")])
    return (full.scheme, full.host, full.port, full.path, tuple(items))


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

    Every page is checked before it is yielded: a ``links.next`` back to a page already fetched,
    a record that came on an earlier page, a page larger than ``per_page``, a ``total_entries``
    the pages contradict (concurrent mode), a list that ends with fewer records than its last
    ``total_entries`` counts, or ids that do not increase (``by_id()``) raise
    :class:`~cliniko_async.errors.PaginationError` instead of looping or losing records.
    """

    def __init__(self, paginator: Paginator[M], concurrency: int) -> None:
        self._paginator = paginator
        self._concurrency = concurrency
        self._pending: list[asyncio.Task[_Fetched[M]]] = []
        self._next_number = 1
        self._last_number: int | None = None
        self._started = False
        self._done = False
        self._deferred: ClinikoError | None = None
        self._seen_pages: set[tuple[Any, ...]] = set()
        self._seen_ids: set[int] = set()
        self._received = 0
        self._per_page = paginator._per_page
        self._total: int | None = None
        self._first_total = 0
        self._last_id: int | None = None
        self._url = ""

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _spawn(self, url: str, params: QueryParams | None, number: int) -> None:
        p = self._paginator
        key = _page_key(url, params, p._base())
        if key is not None and self._last_number is None:  # following links (or by id)
            if key in self._seen_pages:
                raise self._error(
                    f"links.next of page {number - 1} points back at a page already fetched "
                    "(the list would never end)"
                )
            self._seen_pages.add(key)
        task: asyncio.Task[_Fetched[M]] = asyncio.ensure_future(p._fetch(url, params, number))
        # Retrieve the exception of a prefetch nobody awaits, so nothing is logged as lost.
        task.add_done_callback(_consume)
        self._pending.append(task)

    def _error(self, message: str) -> PaginationError:
        return PaginationError(
            message,
            method="GET",
            url=self._paginator._public_url(self._url or self._paginator._path),
        )

    async def __anext__(self) -> Page[M]:
        if self._done:
            raise StopAsyncIteration
        p = self._paginator
        if not self._started:
            self._started = True
            self._spawn(p._path, p._first_params(), 1)
        if not self._pending:
            self._done = True
            if self._deferred is not None:
                raise self._deferred
            raise StopAsyncIteration
        task = self._pending.pop(0)
        try:
            page, next_url = await task
            self._check(page)
            self._schedule_after(page, next_url)
        except BaseException:
            self._cancel_all()
            self._done = True
            raise
        return page

    # -- checks ------------------------------------------------------------------------------
    def _check(self, page: Page[M]) -> None:
        """Raise PaginationError if this page cannot be trusted (see the class docstring)."""
        p = self._paginator
        self._url = page.links.self_ or p._path
        items = page.items
        limit = self._per_page or MAX_PER_PAGE
        if len(items) > limit:
            raise self._error(
                f"page {page.number} holds {len(items)} records, more than per_page={limit}"
            )
        ids = [getattr(item, "id", None) for item in items]
        if p._by_id:
            if any(not isinstance(i, int) for i in ids):
                raise self._error(f"page {page.number} of a by_id() list has records without id")
            previous = self._last_id
            for i in ids:
                if previous is not None and i <= previous:  # type: ignore[operator]
                    raise self._error(
                        f"by_id(): id {i} came after id {previous} on page {page.number}; the "
                        "server ignored the id:>N filter or did not sort by id, so records "
                        "would be repeated or skipped"
                    )
                previous = i
            self._last_id = previous
        for i in ids:
            if isinstance(i, int):
                if i in self._seen_ids:
                    raise self._error(
                        f"record id {i} came again on page {page.number}: the pages overlap "
                        "(a list that changes while it is read can do this; by_id() cannot)"
                    )
                self._seen_ids.add(i)
        self._received += len(items)
        if page.total_entries is not None:
            self._total = page.total_entries
        if self._last_number is not None and page.number > 1:
            self._check_against_total(page)

    def _check_against_total(self, page: Page[M]) -> None:
        """Concurrent mode: each page must be what page 1's ``total_entries`` implies."""
        assert self._last_number is not None and self._per_page is not None
        total = self._first_total
        last = self._last_number
        expected = self._per_page if page.number < last else total - (last - 1) * self._per_page
        # The last page links nowhere; every other page links to the next one.
        wrong_link = bool(page.links.next) == (page.number == last)
        if len(page.items) != expected or wrong_link:
            link = "links to a next page" if page.number == last else "links to no next page"
            raise self._error(
                f"total_entries={total} on page 1 means {last} pages of {self._per_page}, but "
                f"page {page.number} holds {len(page.items)} records"
                + (f" and {link}" if wrong_link else "")
                + ": records would be lost or repeated (the list changed while it was read, or "
                "the server miscounts); read it with concurrency=1 or by_id()"
            )

    # -- what to fetch next ----------------------------------------------------------------------
    def _schedule_after(self, page: Page[M], next_url: str | ClinikoError | None) -> None:
        p = self._paginator
        if self._concurrency > 1 and page.number == 1 and page.total_entries is not None:
            self._start_concurrent(page, next_url)
        if self._last_number is not None:
            # Concurrent mode: keep up to `concurrency` pages in flight, in page order.
            while len(self._pending) < self._concurrency and self._next_number <= self._last_number:
                number = self._next_number
                self._next_number += 1
                self._spawn(p._path, p._first_params(number), number)
            return
        if p._by_id:  # the next page: ids above the last one seen
            if self._last_id is not None and len(page.items) >= (p._per_page or MAX_PER_PAGE):
                params = [*p._first_params(), ("q[]", f"id:>{self._last_id}")]
                self._spawn(p._path, params, page.number + 1)
            elif page.total_entries is not None and len(page.items) < page.total_entries:
                # A short page ends the list, yet it counts more records above the last id.
                self._deferred = self._cut_short(page, page.total_entries, len(page.items))
            return
        if next_url is None:
            if self._total is not None and self._received < self._total:
                # The last page's total_entries counts records that never came.
                self._deferred = self._cut_short(page, self._total, self._received)
            return
        if isinstance(next_url, ClinikoError):
            self._deferred = next_url  # raised when the caller asks for that page
            return
        if not page.items:
            self._deferred = self._error(
                f"page {page.number} is empty but links to a next page (the list would not end)"
            )
            return
        per_page = self._per_page or MAX_PER_PAGE
        if self._total is not None and self._received > 2 * self._total + 2 * per_page:
            self._deferred = self._error(
                f"{self._received} records received and links.next still points on, but "
                f"total_entries says {self._total}"
            )
            return
        try:
            self._spawn(next_url, None, page.number + 1)
        except PaginationError as exc:
            self._deferred = exc

    def _cut_short(self, page: Page[M], total: int, received: int) -> PaginationError:
        return self._error(
            f"the list ends at page {page.number} with {received} records, but total_entries "
            f"there says {total}: records would be lost (a page cut short, or a record created "
            "where the list was already read); read it again (by_id() if it keeps changing)"
        )

    def _start_concurrent(self, page: Page[M], next_url: str | ClinikoError | None) -> None:
        total = page.total_entries
        assert total is not None
        n = len(page.items)
        if self._per_page is None:
            if total > n and n == 0:
                raise self._error(f"total_entries={total} but page 1 is empty")
            self._per_page = n if total > n else MAX_PER_PAGE
        per_page = self._per_page
        if (total > n and n < per_page) or (total < n) or (total <= n and next_url is not None):
            raise self._error(
                f"page 1 holds {n} records of per_page={per_page}"
                + (" and links to a next page" if next_url is not None else "")
                + f", which contradicts total_entries={total}: reading the pages it implies "
                "would lose or repeat records; read the list with concurrency=1 or by_id()"
            )
        self._first_total = total
        self._last_number = max(1, math.ceil(total / per_page))
        self._next_number = 2

    def _cancel_all(self) -> None:
        for task in self._pending:
            task.cancel()
        self._pending.clear()

    async def aclose(self) -> None:
        """Stop: cancel any prefetch in flight and wait for it to finish."""
        tasks = list(self._pending)
        self._cancel_all()
        self._done = True
        me = asyncio.current_task()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                # The prefetch's own cancellation is expected; the caller's is not swallowed.
                if me is not None and me.cancelling():
                    raise
            except Exception:  # noqa: S110 - a prefetch nobody asked for: its error is moot
                pass

    def __del__(self) -> None:
        for task in self._pending:
            if not task.done():
                task.cancel()


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
