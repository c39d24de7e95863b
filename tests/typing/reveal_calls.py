# ruff: noqa: E501
# pyright: strict
"""The types of the common calls, exactly: ``# R: <type>`` is what both checkers reveal.

``tests/test_typing.py`` runs mypy --strict and pyright strict on this file (left out of the
project's own runs: ``reveal_type`` prints) and compares each revealed type, module paths
removed, with the marker on its line. Never run.
"""

from __future__ import annotations

import datetime as dt
from typing import reveal_type

from cliniko_async import Cliniko, SyncCliniko, q
from cliniko_async.models import PatientInput, PatientUpdateInput

# fmt: off


async def revealed(cliniko: Cliniko, sync: SyncCliniko) -> None:
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    coro = cliniko.patients.get(1)
    _ = reveal_type(coro)  # R: Coroutine[Any, Any, Patient]
    coro.close()
    reveal_type(await cliniko.patients.get(1))  # R: Patient
    reveal_type(cliniko.patients.list(q=[q("first_name") == "Ada"], sort="last_name"))  # R: Paginator[Patient]
    reveal_type(await cliniko.patients.list().collect())  # R: list[Patient]
    reveal_type(await cliniko.patients.create(PatientInput(first_name="A", last_name="B")))  # R: Patient
    reveal_type(await cliniko.patients.update(1, {"notes": "x"}))  # R: Patient
    reveal_type(await cliniko.patients.update(1, PatientUpdateInput(notes="x")))  # R: Patient
    reveal_type(await cliniko.patients.archive(1))  # R: None
    reveal_type(await cliniko.patients.with_raw_response.get(1))  # R: RawResponse[Patient]
    reveal_type(cliniko.individual_appointments.list(q=[q("starts_at") >= since]))  # R: Paginator[IndividualAppointment]
    reveal_type(await cliniko.individual_appointments.conflicts(1))  # R: Conflicts
    reveal_type(cliniko.practitioners.list_for_business(1))  # R: Paginator[Practitioner]
    reveal_type(sync.patients.get(1))  # R: Patient
    reveal_type(sync.patients.list())  # R: SyncPaginator[Patient]
    reveal_type(sync.patients.with_raw_response.archive(1))  # R: RawResponse[None]
    patient = await cliniko.patients.get(1)
    reveal_type(patient.id)  # R: int
    reveal_type(sync.individual_appointments.get(1).id)  # R: int
    reveal_type(patient.first_name)  # R: str | None
    reveal_type(patient.reminder_type)  # R: Literal['None', 'SMS', 'Email', 'SMS & Email'] | None
    reveal_type((await cliniko.invoices.get(1)).status)  # R: Literal[10, 20, 30, 40] | None
