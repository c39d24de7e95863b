"""The demo's workload (virtual time): it runs through the public API with zero 429s."""

from __future__ import annotations

import pytest

from cliniko_async._demo import run_demo


@pytest.mark.looptime
async def test_demo_workload() -> None:
    summary = await run_demo(patients=500, appointments=2000)
    assert "500 patients" in summary["concurrent export"]
    assert "0 refused (429)" in summary["burst of 150 gets"]
    assert "0 x 429" in summary["rate limit"]
    assert "archived" in summary["create/update/archive"]
