"""Blocking paginators for :class:`~cliniko_async.SyncCliniko`, driven through its event loop."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from ._pagination import Page, PageIterator, Paginator

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["SyncPaginator"]

M = TypeVar("M")


class SyncPaginator(Generic[M]):
    """An iterator over records, with ``pages()`` and ``collect()``, for blocking code.

    Each page is fetched on the client's event-loop thread (which also prefetches the next
    one); breaking out of the loop cancels that work cleanly.
    """

    def __init__(self, paginator: Paginator[M], portal: BlockingPortal) -> None:
        self._paginator = paginator
        self._portal = portal

    def __iter__(self) -> Iterator[M]:
        for page in self.pages():
            yield from page.items

    def pages(self, *, concurrency: int = 1) -> Generator[Page[M], None, None]:
        """Iterate over :class:`~cliniko_async.Page` objects."""
        pages: PageIterator[M] = self._paginator.pages(concurrency=concurrency)
        try:
            while True:
                try:
                    page = self._portal.call(pages.__anext__)
                except StopAsyncIteration:
                    return
                yield page
        finally:
            self._portal.call(pages.aclose)

    def by_id(self) -> SyncPaginator[M]:
        """Keyset pagination: see :meth:`cliniko_async.Paginator.by_id`."""
        return SyncPaginator(self._paginator.by_id(), self._portal)

    def collect(self, *, concurrency: int = 1) -> list[M]:
        """Every record of every page, in order."""
        return self._portal.call(lambda: self._paginator.collect(concurrency=concurrency))
