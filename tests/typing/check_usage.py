"""Typical user code, checked by mypy --strict (never executed): revealed types must match."""

from __future__ import annotations

import datetime as dt
from typing import assert_type

from cliniko_async import (
    Cliniko,
    ClinikoAccounts,
    Page,
    Paginator,
    RateLimit,
    RawResponse,
    RequestOptions,
    SyncCliniko,
    q,
)
from cliniko_async._sync_pagination import SyncPaginator
from cliniko_async.models import (
    IndividualAppointment,
    Patient,
    PatientInput,
    PatientInputPatientPhoneNumber,
    PatientUpdateInput,
    Practitioner,
)


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
    full = PatientInput(first_name="A", last_name="B")
    assert_type(await cliniko.patients.update(1, full), Patient)  # a full body updates too
    assert_type(await cliniko.patients.update(1, PatientUpdateInput(notes=None)), Patient)
    phone = PatientInputPatientPhoneNumber(number="0400", phone_type="Mobile")
    assert_type(
        await cliniko.patients.create({"first_name": "A", "patient_phone_numbers": [phone]}),
        Patient,
    )
    newest = cliniko.patients.list(sort=["created_at:desc", "last_name"], order="asc", per_page=100)
    assert_type(newest, Paginator[Patient])
    raw = await cliniko.patients.with_raw_response.get(1)
    assert_type(raw, RawResponse[Patient])
    assert_type(raw.parsed, Patient)
    assert_type(raw.status_code, int)
    assert_type(raw.rate_limit_remaining, int | None)
    assert_type(await cliniko.patients.with_raw_response.archive(1), RawResponse[None])


def sync_code(cliniko: SyncCliniko) -> None:
    assert_type(cliniko.patients.get(1), Patient)
    assert_type(cliniko.patients.list(), SyncPaginator[Patient])
    for patient in cliniko.patients.list(q=[q("last_name") == "Lovelace"]):
        assert_type(patient, Patient)
    assert_type(cliniko.patients.archive(1), None)
    assert_type(cliniko.patients.with_raw_response.get(1), RawResponse[Patient])


def options_code() -> None:
    """One keyword list on every client: the same calls type-check on all three."""
    opts = RequestOptions(timeout=5.0, max_retries=0)
    assert_type(Cliniko(api_key="k", user_agent="a", options=opts, deadline=20.0), Cliniko)
    assert_type(SyncCliniko(api_key="k", user_agent="a", rate_limit=RateLimit(10, 1)), SyncCliniko)
    accounts = ClinikoAccounts(user_agent="a", max_rate_limit_wait=5.0, max_sessions=10)
    assert_type(accounts, ClinikoAccounts)
    cliniko = Cliniko(api_key="k", user_agent="a")
    assert_type(cliniko.with_options(timeout=1.0, options=opts), Cliniko)
    assert_type(SyncCliniko(api_key="k", user_agent="a").with_options(backoff_max=1.0), SyncCliniko)
    assert_type(accounts.with_options(max_retries=5), ClinikoAccounts)
