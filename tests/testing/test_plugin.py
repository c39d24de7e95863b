"""The pytest plugin's fixtures, as a user's suite gets them (entry point ``cliniko_async``)."""

from __future__ import annotations

from cliniko_async import Cliniko, q
from cliniko_async.testing import FakeCliniko


async def test_fixtures_are_connected(cliniko: Cliniko, fake_cliniko: FakeCliniko) -> None:
    patient = await cliniko.patients.get(1)
    assert patient.first_name == fake_cliniko.data["patients"][1]["first_name"]
    adas = await cliniko.patients.list(q=[q("first_name") == patient.first_name]).collect()
    assert patient.id in {p.id for p in adas}
    assert len(fake_cliniko.stats().accepted) == 1 + 1
