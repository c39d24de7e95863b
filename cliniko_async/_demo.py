"""``python -m cliniko_async demo``: the client against the embedded fake Cliniko, end to end."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from . import Cliniko, RateLimit, q
from .models import PatientInput, PatientUpdateInput
from .testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    IN_PROCESS_BASE_URL,
    FakeCliniko,
    mutate,
    settle,
)

Progress = Callable[[int, int], None]
#: What the demo's mirror copies (every resource would take the demo's 50-per-2-s key a while).
MIRROR_RESOURCES = ("patients", "practitioners", "businesses", "appointment_types")


def _print_progress(done: int, total: int) -> None:
    print(f"\r  exporting patients {done:>6,}/{total:,}", end="\n" if done >= total else "",
          flush=True)  # fmt: skip


async def run_demo(
    patients: int = 3000, appointments: int = 20000, progress: Progress = _print_progress
) -> dict[str, str]:
    """Run the workload, reporting the export's progress; return the summary rows."""
    summary: dict[str, str] = {}
    t0 = time.perf_counter()
    fake = FakeCliniko(patients=patients, appointments=appointments, rate_limit=(50, 2.0))
    summary["fake Cliniko"] = f"{patients:,} patients, {appointments:,} appointments (seeded)"
    http = httpx.AsyncClient(transport=fake.transport())
    async with Cliniko(
        api_key=DEFAULT_API_KEY,
        user_agent=DEFAULT_USER_AGENT,
        base_url=IN_PROCESS_BASE_URL,
        http_client=http,
        rate_limit=RateLimit(50, 2.0),  # the fake enforces 50 requests per 2 s
    ) as cliniko:
        # 1. A concurrent export, with a progress line.
        start = time.perf_counter()
        exported = 0
        async for page in cliniko.patients.list(per_page=100).pages(concurrency=8):
            exported += len(page.items)
            progress(exported, page.total_entries or exported)
        summary["concurrent export"] = (
            f"{exported:,} patients in {time.perf_counter() - start:.1f} s (pages in parallel)"
        )

        # 2. A burst of 150 requests on a key allowed 50 per 2 s: paced, never refused.
        stats = fake.stats(DEFAULT_API_KEY)  # the fake's live counters
        accepted_before, rejected_before = len(stats.accepted), stats.rejected
        start = time.perf_counter()
        await asyncio.gather(*(cliniko.patients.get(i) for i in range(1, 151)))
        summary["burst of 150 gets"] = (
            f"{time.perf_counter() - start:.1f} s; server saw "
            f"{len(stats.accepted) - accepted_before} accepted, "
            f"{stats.rejected - rejected_before} refused (429), "
            f"at most {stats.max_in_window} in any 2 s window"
        )

        # 3. Create, update, archive.
        created = await cliniko.patients.create(PatientInput(first_name="Demo", last_name="Person"))
        updated = await cliniko.patients.update(
            created.id, PatientUpdateInput(notes="updated by demo")
        )
        await cliniko.patients.archive(created.id)
        summary["create/update/archive"] = (
            f"patient {created.id}: notes={updated.notes!r}, archived"
        )

        # 4. A filtered query.
        since = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
        found = await cliniko.individual_appointments.list(
            q=[q("starts_at") >= since, q("patient_id") == 7], sort="starts_at"
        ).collect()
        summary["filtered query"] = f"{len(found)} appointments of patient 7 since {since:%Y-%m-%d}"

        # 5. The mirror, as `cliniko --sandbox mirror` runs it: a first run copies the account
        #    into SQLite, 1% of its records change, and the next run fetches only the changes.
        summary.update(await _mirror_twice(cliniko, fake))
        stats = fake.stats(DEFAULT_API_KEY)
        summary["rate limit"] = (
            f"{len(stats.accepted)} requests, {stats.rejected} x 429, "
            f"max {stats.max_in_window} per 2 s window (limit 50)"
        )
    await http.aclose()
    summary["total time"] = f"{time.perf_counter() - t0:.1f} s"
    return summary


async def _mirror_twice(cliniko: Cliniko, fake: FakeCliniko) -> dict[str, str]:
    from .mirror import Mirror

    settle(fake)  # the seeded records' timestamps: none in the fake's future
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'cliniko.db'}"
        async with Mirror(
            cliniko, database, resources=MIRROR_RESOURCES, clock=fake.clock.wall
        ) as mirror:
            first = await mirror.run()
            out["mirror: first run"] = (
                f"{first.totals.inserted:,} rows of {', '.join(MIRROR_RESOURCES)} into SQLite, "
                f"{first.requests} requests"
            )
            seen = await mirror.last_change()
            done = mutate(fake, fraction=0.01, seed=1, resources=MIRROR_RESOURCES)
            changed: Counter[str] = Counter(m.kind for m in done)
            out["mirror: 1% changes"] = _kinds(changed)
            second = await mirror.run()
            feed: Counter[str] = Counter(
                [change.kind async for change in mirror.changes(since=seen)]
            )
            out["mirror: second run"] = f"{_kinds(feed)}, {second.requests} requests"
    return out


def _kinds(counts: Counter[str]) -> str:
    kinds = ("created", "updated", "archived", "cancelled", "deleted")
    return ", ".join(f"{counts[k]} {k}" for k in kinds if counts[k]) or "nothing"


def main() -> int:
    """Print the demo's summary table."""
    print("cliniko-async demo: the client against the embedded fake Cliniko\n")
    summary = asyncio.run(run_demo())
    width = max(map(len, summary))
    print()
    for key, value in summary.items():
        print(f"  {key:<{width}}  {value}")
    return 0
