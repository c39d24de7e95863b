"""The sync engine: a full copy on the first run, then only what changed, deletions included."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from .._filters import Filter, q
from .._model import Model
from .._pagination import Paginator
from ..errors import (
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
)
from ._changes import Change
from ._cursors import CursorState, from_iso, to_iso
from ._plan import ResourcePlan, plan
from ._postgres import PostgresStore
from ._schema import project, record_id
from ._sqlite import Counts, Row, SQLiteStore

if TYPE_CHECKING:
    from .._client import Cliniko

__all__ = [
    "Mirror", "MirrorResult", "Progress", "ResourceResult", "Store", "open_store", "raw_pages",
]  # fmt: skip

PER_PAGE = 100
_MINIMAL_KEYS = frozenset({"id", "deleted_at", "links"})


@attrs.frozen
class RawPage:
    """One page: ``(record as sent, model)`` pairs and the list's ``total_entries``."""

    items: list[tuple[dict[str, Any], Model]]
    total: int | None


async def raw_pages(
    cliniko: Cliniko,
    p: ResourcePlan,
    op: str,
    filters: Sequence[Filter],
    *,
    concurrency: int,
    sort: str | None = None,
    by_id: bool = False,
) -> AsyncIterator[RawPage]:
    """Pages of ``(raw record, model)`` from ``cliniko.<resource>.<op>`` with ``filters``."""
    lister = getattr(getattr(cliniko, p.name), op)
    with warnings.catch_warnings():  # the /deleted lists are deprecated; they are what there is
        warnings.simplefilter("ignore", DeprecationWarning)
        source = lister(q=list(filters), sort=sort, per_page=PER_PAGE)
    paginator: Paginator[Any] = source.by_id() if by_id else source
    async with contextlib.aclosing(paginator.pages(concurrency=concurrency)) as pages:
        async for page in pages:  # Page.raw: the records as sent, beside the models
            raws = cast("list[dict[str, Any]]", list(page.raw))
            yield RawPage(list(zip(raws, page.items, strict=True)), page.total_entries)


def _row(p: ResourcePlan, raw: dict[str, Any], record: Model, index: dict[str, int]) -> Row | None:
    rid = record_id(raw)
    if rid is None:
        return None
    cells = list(project(p.model, record, raw))
    cells[0] = rid

    def cell(name: str) -> str | None:
        i = index.get(name)
        value = cells[i] if i is not None else raw.get(name)
        return value if isinstance(value, str) and value else None

    return Row(
        id=rid,
        cells=tuple(cells),
        raw=_dumps(raw),
        deleted_at=cell("deleted_at"),
        archived_at=cell("archived_at"),
        cancelled_at=cell("cancelled_at"),
        minimal=set(raw) <= _MINIMAL_KEYS,
    )


def _dumps(raw: dict[str, Any]) -> str:
    from ._schema import dumps

    return dumps(raw)


@attrs.define
class ResourceResult:
    """What one run did to one resource."""

    name: str
    counts: Counts = attrs.field(factory=Counts)
    pages: int = 0
    records: int = 0
    full: bool = False
    #: Why the resource was skipped (the key may not read it: 403, 404, a refused filter);
    #: its cursor did not move and the next run tries again. Other errors end the run.
    error: str | None = None


@attrs.define
class MirrorResult:
    """What one run did: per resource, pages fetched (one request each; retries are not
    counted), elapsed seconds, and the key's rate limit (``limit`` requests per ``period``)."""

    resources: dict[str, ResourceResult]
    elapsed: float
    limit: int
    period: float

    @property
    def requests(self) -> int:
        return sum(r.pages for r in self.resources.values())

    @property
    def minimum(self) -> float:
        """The requests at the limit's sustained rate: ``requests / (limit / period)``."""
        return self.requests * self.period / self.limit

    @property
    def floor(self) -> float:
        """The least time from a fresh budget: ``limit`` at once, ``limit`` more a period later
        and so on (no window of ``period`` ever carries more than ``limit``)."""
        return self.period * ((self.requests - 1) // self.limit) if self.requests else 0.0

    @property
    def totals(self) -> Counts:
        total = Counts()
        for r in self.resources.values():
            total.add(r.counts)
        return total


@attrs.frozen
class Progress:
    """Reported after every committed page of a query: records read so far by the query and
    its ``total_entries``; ``phase`` is ``"full"``, ``"changes"`` or ``"deleted"``."""

    resource: str
    records: int
    total: int | None
    phase: str


Store = SQLiteStore | PostgresStore


def open_store(database: str, *, account: str = "") -> Store:
    """A store for ``sqlite:///path`` (or a bare path) or ``postgresql://...`` (asyncpg).

    ``account``: PostgreSQL only: whose rows (many keys can share one database, see
    :class:`PostgresStore`)."""
    if database.startswith(("postgresql://", "postgres://")):
        return PostgresStore(database, account=account)
    if account:
        raise ConfigurationError(
            "account= needs a postgresql:// database (SQLite holds one account per file)"
        )
    if database.startswith("sqlite:///"):
        return SQLiteStore(database.removeprefix("sqlite:///") or ":memory:")
    if "://" in database:
        raise ConfigurationError(
            f"unsupported database URL {database.split('://')[0]}://... "
            "(sqlite:///path or postgresql://...)"
        )
    return SQLiteStore(database)


class Mirror:
    """Keeps a copy of an account in a database.

    ::

        async with Cliniko(...) as cliniko, Mirror(cliniko, "sqlite:///cliniko.db") as mirror:
            result = await mirror.run()          # first run: everything; later: what changed
            async for change in mirror.changes(since=0):
                ...

    ``overlap``: how far before the stored cursor each incremental run starts asking
    (clock skew between this machine and Cliniko, same-second updates). ``clock``: this
    machine's idea of Cliniko's time (seconds since the epoch). ``account``: with a
    ``postgresql://`` URL, whose rows these are, so many keys share one database (see
    :class:`PostgresStore`; a name of your choosing, never the API key).
    """

    def __init__(
        self,
        cliniko: Cliniko,
        database: str | Store = "sqlite:///cliniko.db",
        *,
        resources: Iterable[str] | None = None,
        overlap: dt.timedelta = dt.timedelta(minutes=5),
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        progress: Callable[[Progress], None] | None = None,
        account: str = "",
    ) -> None:
        self.cliniko = cliniko
        if isinstance(database, str):
            self.store: Store = open_store(database, account=account)
        elif account and getattr(database, "account", "") != account:
            raise ConfigurationError("pass account= to the store you give, not to the Mirror")
        else:
            self.store = database
        self.plans = plan(resources)
        self.overlap = overlap
        self.concurrency = concurrency
        self.clock = clock
        self.progress = progress
        self._opened = False
        #: Columns the last ``open()`` added to existing tables (``table.column``).
        self.added: list[str] = []

    async def __aenter__(self) -> Mirror:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> list[str]:
        """Create or migrate the tables; return the columns a migration added."""
        self.added = await self.store.open(self.plans)
        self._opened = True
        return self.added

    async def close(self) -> None:
        await self.store.close()

    def _now(self) -> str:
        return to_iso(dt.datetime.fromtimestamp(self.clock(), dt.UTC))

    async def run(self) -> MirrorResult:
        """One pass over every planned resource, concurrently, inside the key's one budget."""
        if not self._opened:
            await self.open()
        start = time.monotonic()
        results = {p.name: ResourceResult(p.name) for p in self.plans}
        try:
            async with asyncio.TaskGroup() as group:
                for p in self.plans:
                    group.create_task(self._resource(p, results[p.name]))
        except BaseExceptionGroup as failed:
            # The first resource that failed stops the pass (each page's cursor is saved: the
            # next run resumes); raise its error as it is (a ClinikoError from the client), not
            # wrapped in the task group's ExceptionGroup.
            first = _first(failed)
            others = len(failed.exceptions) - 1
            if others:
                first.add_note(f"({others} more resource(s) failed in this run too)")
            raise first from None
        limit = self.cliniko.rate_limit
        elapsed = time.monotonic() - start
        return MirrorResult(results, elapsed, limit.requests, limit.period)

    async def _resource(self, p: ResourcePlan, result: ResourceResult) -> None:
        state = await self.store.cursor(p.name)
        try:
            if state.phase == "full" or state.cursor is None or not p.incremental:
                result.full = True
                await self._full(p, state, result)
            else:
                await self._incremental(p, state, result)
        except (PermissionDeniedError, NotFoundError, BadRequestError) as exc:
            result.error = str(exc)
        except Exception as exc:
            exc.add_note(f"while mirroring {p.name} (a rerun resumes from its last saved page)")
            raise

    async def _copy(
        self,
        p: ResourcePlan,
        op: str,
        filters: list[Filter],
        result: ResourceResult,
        state: CursorState,
        *,
        sort: str | None = None,
        resume: bool = False,
        by_id: bool = False,
    ) -> CursorState:
        index = {c: i for i, c in enumerate(_column_names(p))}
        total: int | None = None
        done = 0
        phase = (
            "deleted"
            if op != "list" or any(f.field == "deleted_at" for f in filters)
            else ("full" if result.full else "changes")
        )
        async for page in raw_pages(
            self.cliniko, p, op, filters, sort=None if by_id else sort, by_id=by_id,
            concurrency=1 if by_id else self.concurrency,
        ):  # fmt: skip
            result.pages += 1
            total = page.total if total is None else total
            rows = [r for r in (_row(p, raw, rec, index) for raw, rec in page.items) if r]
            if resume and rows:
                state = attrs.evolve(state, resume_id=max(r.id for r in rows))
            counts = await self.store.write(p.name, rows, cursor=state if resume else None)
            result.counts.add(counts)
            result.records += len(rows)
            done += len(page.items)
            if self.progress is not None:
                self.progress(Progress(p.name, done, total, phase))
        return state

    def _deletion_queries(
        self, p: ResourcePlan, since: dt.datetime | None
    ) -> list[tuple[str, list[Filter]]]:
        when = [q("deleted_at").not_null()] if since is None else [q("deleted_at") >= since]
        if p.deletions == "filter":
            return [("list", when)]
        if p.deletions == "list":
            return [("list_deleted", when)]
        if p.deletions == "list_all":
            return [("list_deleted", [])]
        return []

    async def _full(self, p: ResourcePlan, state: CursorState, result: ResourceResult) -> None:
        started = state.run_started if state.phase == "full" and state.run_started else None
        state = attrs.evolve(state, phase="full", run_started=started or self._now())
        resume = p.resume_by_id
        for attempt in range(2):
            filters = [q(f).any() for f in p.lifecycle]
            if resume and state.resume_id is not None:
                filters.append(q("id") > state.resume_id)
            try:
                state = await self._copy(
                    p, "list", filters, result, state, sort="id" if resume else None,
                    resume=resume, by_id=attempt > 0,
                )  # fmt: skip
                break
            except PaginationError:
                # The list changed under the concurrent read (a page shifted): go on from the
                # last committed id, one keyset page after another (which nothing can shift).
                if not resume or attempt > 0:
                    raise
                state = attrs.evolve(state, resume_id=(await self.store.cursor(p.name)).resume_id)
        for op, deleted_filters in self._deletion_queries(p, None):
            await self._copy(p, op, deleted_filters, result, state, by_id=p.resume_by_id)
        assert state.run_started is not None
        done = CursorState(p.name, "incremental", cursor=state.run_started)
        await self.store.save_cursor(done)

    async def _incremental(
        self, p: ResourcePlan, state: CursorState, result: ResourceResult
    ) -> None:
        started = self._now()
        assert state.cursor is not None
        since = from_iso(state.cursor) - self.overlap
        filters = [q("updated_at") >= since, *(q(f).any() for f in p.lifecycle)]
        # Keyset pages (id > the last one seen): records deleted or hidden while the run reads
        # cannot shift a page and hide another record from it.
        await self._copy(p, "list", filters, result, state, by_id=p.resume_by_id)
        for op, deleted_filters in self._deletion_queries(p, since):
            await self._copy(p, op, deleted_filters, result, state, by_id=p.resume_by_id)
        await self.store.save_cursor(attrs.evolve(state, cursor=started))

    async def changes(self, since: int = 0) -> AsyncIterator[Change]:
        """Events logged by the runs, after ``since`` (a ``Change.seq``), in order."""
        if not self._opened:
            await self.open()
        while True:
            batch = await self.store.changes(since)
            if not batch:
                return
            for change in batch:
                yield change
            assert batch[-1].seq is not None
            since = batch[-1].seq

    async def last_change(self) -> int:
        """The ``seq`` of the last change logged (0: none): ``changes(since=...)`` starts there
        to see only what the next runs change."""
        if not self._opened:
            await self.open()
        return await self.store.last_seq()

    async def status(self) -> list[tuple[CursorState, int, int]]:
        """Per resource: its cursor, rows and tombstones."""
        if not self._opened:
            await self.open()
        counts = await self.store.table_counts()
        cursors = {c.resource: c for c in await self.store.cursors()}
        return [
            (cursors.get(p.name, CursorState(p.name)), *counts.get(p.name, (0, 0)))
            for p in self.plans
        ]


def _column_names(p: ResourcePlan) -> list[str]:
    from ._schema import columns

    return [c.name for c in columns(p.model)]


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group (its first leaf, however deep)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
