"""``cliniko mirror``: keep the account in a database, with a progress bar per resource."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from .._config import without_passwords
from ._console import plain, stderr

if TYPE_CHECKING:
    from .._client import Cliniko
    from ..mirror import MirrorResult
    from ..mirror import Progress as MirrorProgress
    from ..testing import FakeCliniko

__all__ = ["mirror_command"]


class _Bars:
    """One bar per resource and query, drawn on stderr from the first committed page on."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<42}"), BarColumn(), MofNCompleteColumn(),
            console=stderr, transient=False,
        )  # fmt: skip
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, report: MirrorProgress) -> None:
        key = (report.resource, report.phase)
        if key not in self._tasks:
            name = f"{report.resource} ({report.phase})"
            self._tasks[key] = self._progress.add_task(name, total=report.total)
        self._progress.update(self._tasks[key], completed=report.records, total=report.total)

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def summary(result: MirrorResult) -> Table:
    """Rows inserted / updated / archived / cancelled / deleted per resource; requests spent."""
    table = Table(title="cliniko mirror", title_justify="left")
    for name in ("resource", "inserted", "updated", "archived", "cancelled", "deleted", "requests"):
        if name == "resource":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="right")
    for name, r in sorted(result.resources.items()):
        c = r.counts
        if r.error is not None or (r.pages == 0 and not (c.inserted or c.updated or c.deleted)):
            continue
        table.add_row(
            name, *(str(v) for v in (c.inserted, c.updated, c.archived, c.cancelled, c.deleted)),
            str(r.pages),
        )  # fmt: skip
    for name, r in sorted(result.resources.items()):
        if r.error is not None:
            table.add_row(name, plain(f"skipped: {r.error}"[:60]), "", "", "", "", str(r.pages))
    t = result.totals
    table.add_row(
        "total", *(str(v) for v in (t.inserted, t.updated, t.archived, t.cancelled, t.deleted)),
        str(result.requests), style="bold",
    )  # fmt: skip
    table.caption = (
        f"{result.requests} requests in {result.elapsed:.1f} s; the limit ({result.limit} per "
        f"{result.period:g} s) allows them in {result.floor:.1f} s from a fresh budget, "
        f"{result.minimum:.1f} s at its sustained rate"
    )
    return table


async def _status(database_url: str, resources: list[str] | None, account: str = "") -> Table:
    from ..mirror import open_store, plan

    plans = plan(resources)
    store = open_store(database_url, account=account)
    try:
        await store.open(plans)
        cursors = {c.resource: c for c in await store.cursors()}
        counts = await store.table_counts()
    finally:
        await store.close()
    table = Table(title=f"cliniko mirror: {without_passwords(database_url)}", title_justify="left")
    for name in ("resource", "phase", "changes since", "rows", "tombstones"):
        table.add_column(name, justify="right" if name in ("rows", "tombstones") else "left")
    for p in plans:
        c = cursors.get(p.name)
        rows, dead = counts.get(p.name, (0, 0))
        phase = "not started" if c is None else c.phase
        cursor = plain((c.cursor if c else None) or "-")  # Cliniko's updated_at: data
        table.add_row(p.name, phase, cursor, str(rows), str(dead))
    return table


async def _mirror(
    cliniko: Cliniko,
    database_url: str,
    resources: list[str] | None,
    watch: float | None,
    *,
    fake: FakeCliniko | None = None,
    runs: int | None = None,
    account: str = "",
) -> list[MirrorResult]:
    """Run the mirror (again every ``watch`` seconds; ``runs`` times at most). With ``fake``
    (the sandbox), its clock is the mirror's and 1% of its records change between runs."""
    from ..mirror import Mirror

    clock = fake.clock.wall if fake is not None else time.time
    done: list[MirrorResult] = []
    async with Mirror(
        cliniko, database_url, resources=resources, clock=clock, account=account
    ) as mirror:
        if mirror.added:
            stderr.print(plain(f"added columns: {', '.join(mirror.added)}"))
        while True:
            with _Bars() as bars:
                mirror.progress = bars
                result = await mirror.run()
            done.append(result)
            stderr.print(summary(result))
            if watch is None or (runs is not None and len(done) >= runs):
                return done
            if fake is not None:
                from ..testing import mutate

                changed = mutate(fake, fraction=0.01, seed=len(done), resources=resources)
                stderr.print(f"sandbox: {len(changed)} records of the fake changed")
            stderr.print(f"next run at {dt.datetime.now().astimezone():%H:%M:%S} + {watch:g} s")
            await asyncio.sleep(watch)


async def _sandbox_mirror(
    database_url: str,
    resources: list[str] | None,
    watch: float | None,
    runs: int | None = None,
    account: str = "",
) -> list[MirrorResult]:
    """``cliniko --sandbox mirror``: the embedded fake, in-process, changing between runs."""
    from .._client import Cliniko
    from ..testing import (
        DEFAULT_API_KEY,
        DEFAULT_USER_AGENT,
        IN_PROCESS_BASE_URL,
        FakeCliniko,
        settle,
    )
    from ._app import SANDBOX_APPOINTMENTS, SANDBOX_PATIENTS

    fake = FakeCliniko(patients=SANDBOX_PATIENTS, appointments=SANDBOX_APPOINTMENTS)
    settle(fake)
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=IN_PROCESS_BASE_URL,
        transport=fake.transport(),
    ) as cliniko:  # fmt: skip
        return await _mirror(
            cliniko, database_url, resources, watch, fake=fake, runs=runs, account=account
        )


@click.command(name="mirror")
@click.argument("database_url", default="sqlite:///cliniko.db")
@click.option(
    "--resources", metavar="NAMES",
    help="Comma-separated resources to mirror (default: every resource with a list).",
)  # fmt: skip
@click.option(
    "--watch", type=click.FloatRange(min=1.0), metavar="SECONDS",
    help="Run again every SECONDS, until interrupted.",
)  # fmt: skip
@click.option("--status", is_flag=True, help="Show each resource's cursor and rows; no requests.")
@click.option(
    "--account", default="", metavar="NAME",
    help="PostgreSQL: whose rows (the _account column), so many keys share one database.",
)  # fmt: skip
@click.pass_obj
def mirror_command(
    settings: Any,
    database_url: str,
    resources: str | None,
    watch: float | None,
    status: bool,
    account: str,
) -> None:
    """Keep the account in a database (SQLite, or PostgreSQL with asyncpg): a full copy, then
    only what changed. With --sandbox: the embedded fake, 1% of it changing between --watch runs.

    Every run commits each page with the resource's cursor, so an interrupted run resumes
    where it stopped. Tables: one per resource (typed columns and the record's JSON in
    `_raw`; deleted records stay as tombstones with `_deleted_at`), plus `_mirror_changes`
    (the change log), `_mirror_cursors` and `_mirror_meta`. In PostgreSQL every table has an
    `_account` column: --account NAME keeps many keys' accounts in one database.
    """
    from ._app import _run

    names = [n.strip() for n in resources.split(",") if n.strip()] if resources else None
    if status:
        stderr.print(asyncio.run(_status(database_url, names, account)))
        return
    if settings.sandbox:
        asyncio.run(_sandbox_mirror(database_url, names, watch, account=account))
        return
    _run(settings, lambda cliniko: _mirror(cliniko, database_url, names, watch, account=account))
