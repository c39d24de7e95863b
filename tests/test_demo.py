"""The demo's workload (virtual time): it runs through the public API with zero 429s."""

from __future__ import annotations

import re

import pytest

from cliniko_async._demo import run_demo


@pytest.mark.looptime
async def test_demo_workload() -> None:
    reports: list[tuple[int, int]] = []
    summary = await run_demo(
        patients=500, appointments=2000, progress=lambda done, total: reports.append((done, total))
    )
    assert "500 patients" in summary["concurrent export"]
    assert reports[-1] == (500, 500) and all(total == 500 for _, total in reports)
    assert "150 accepted, 0 refused (429)" in summary["burst of 150 gets"]
    assert "0 x 429" in summary["rate limit"]
    assert "archived" in summary["create/update/archive"]
    # The mirror step: the second run logs exactly what the mutation changed, and costs a few
    # requests (one query per resource and per deleted list) where the first cost a page each.
    changed = summary["mirror: 1% changes"]
    assert re.fullmatch(r"(\d+ (created|updated|archived|cancelled|deleted)(, )?)+", changed)
    assert summary["mirror: second run"].startswith(changed + ", ")
    first = re.search(r"([\d,]+) rows of .*, (\d+) requests$", summary["mirror: first run"])
    second = re.search(r"(\d+) requests$", summary["mirror: second run"])
    assert first and second
    assert int(first[1].replace(",", "")) > 500  # 500 patients and the rest
    assert int(second[1]) <= 8 < int(first[2])
