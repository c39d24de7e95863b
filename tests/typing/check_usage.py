"""Typical user code, checked by mypy --strict (never executed): revealed types must match."""

from __future__ import annotations

import datetime as dt
from typing import assert_type

from cliniko_async import Cliniko, Page, Paginator, q
from cliniko_async.models import IndividualAppointment, Patient, PatientInput, Practitioner


async def user_code(cliniko: Cliniko) -> None:
    assert_type(await cliniko.patients.get(1), Patient)
    assert_type(cliniko.patients.list(q=[q("first_name") == "Ada"]), Paginator[Patient])
    async for patient in cliniko.patients.list():
        assert_type(patient, Patient)
    async for page in cliniko.practitioners.list().pages():
        assert_type(page, Page[Practitioner])
    assert_type(await cliniko.practitioners.list_for_business(1).collect(), list[Practitioner])
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    appts = cliniko.individual_appointments.list(q=[q("starts_at") >= since])
    assert_type(await appts.collect(), list[IndividualAppointment])
    assert_type(await cliniko.patients.create(PatientInput(first_name="A", last_name="B")), Patient)
    assert_type(await cliniko.patients.archive(1), None)
