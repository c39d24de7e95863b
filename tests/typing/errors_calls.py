# ruff: noqa: E501
# pyright: strict
"""Wrong calls: each marked line must be a type error under mypy --strict and pyright strict.

A marker ``# E: mypy[<code>,...] pyright[<rule>,...]`` names the errors each checker must report
on its line, and no other line may have one. ``tests/test_typing.py`` runs both checkers on
this file (it is left out of the project's own mypy and pyright runs) and compares. Never run.
"""

from __future__ import annotations

from cliniko_async import Cliniko, ClinikoAccounts, RateLimit, SyncCliniko, q
from cliniko_async.fastapi import accounts_lifespan, cliniko_lifespan
from cliniko_async.models import (
    IndividualAppointmentCancelInput,
    IndividualAppointmentInput,
    IndividualAppointmentUpdateInput,
    MemoCommunicationInput,
    PatientCaseInput,
    PatientCaseUpdateInput,
    PatientInput,
    PatientInputPatientPhoneNumber,
    PatientUpdateInput,
)

# fmt: off


async def wrong_calls(cliniko: Cliniko, sync: SyncCliniko) -> None:
    await cliniko.patients.create(IndividualAppointmentUpdateInput())  # E: mypy[arg-type] pyright[reportArgumentType]
    await cliniko.patients.create(PatientUpdateInput(first_name="A"))  # E: mypy[arg-type] pyright[reportArgumentType]
    await cliniko.patients.create(1, 2, 3, "x")  # E: mypy[call-arg,arg-type] pyright[reportCallIssue]
    await cliniko.patients.get(1, 2, 3)  # E: mypy[call-arg,arg-type] pyright[reportCallIssue]
    await cliniko.patients.get()  # E: mypy[call-arg] pyright[reportCallIssue]
    await cliniko.patients.get("abc")  # E: mypy[arg-type] pyright[reportArgumentType]
    sync.patients.get("abc")  # E: mypy[arg-type] pyright[reportArgumentType]
    cliniko.patients.list(1)  # E: mypy[call-arg,arg-type] pyright[reportCallIssue]
    cliniko.patients.list(sort="nope")  # E: mypy[arg-type] pyright[reportArgumentType]
    cliniko.patients.list(order="down")  # E: mypy[arg-type] pyright[reportArgumentType]
    cliniko.patients.list(per_page="10")  # E: mypy[arg-type] pyright[reportArgumentType]
    await cliniko.patients.update(1)  # E: mypy[call-arg] pyright[reportCallIssue]
    await cliniko.patients.archive()  # E: mypy[call-arg] pyright[reportCallIssue]
    cliniko.patients.with_raw_response.list()  # E: mypy[attr-defined] pyright[reportAttributeAccessIssue,reportUnknownMemberType]
    cliniko.patients.fetch(1)  # E: mypy[attr-defined] pyright[reportAttributeAccessIssue,reportUnknownMemberType]
    cliniko.practitioners.list_for_business()  # E: mypy[call-arg] pyright[reportCallIssue]
    PatientInput(first_name=1, last_name="B")  # E: mypy[arg-type] pyright[reportArgumentType]
    PatientInput()  # E: mypy[call-arg] pyright[reportCallIssue]
    PatientInput(first_name="Ada")  # E: mypy[call-arg] pyright[reportCallIssue]
    IndividualAppointmentInput(patient_id=1)  # E: mypy[call-arg] pyright[reportCallIssue]
    PatientInputPatientPhoneNumber(phone_type="Pager")  # E: mypy[arg-type] pyright[reportArgumentType]
    IndividualAppointmentCancelInput(cancellation_reason=55)  # E: mypy[arg-type] pyright[reportArgumentType]
    IndividualAppointmentCancelInput()  # E: mypy[call-arg] pyright[reportCallIssue]
    cliniko.services.list(q=[q("id") == 1])  # E: mypy[arg-type] pyright[reportArgumentType]
    PatientCaseInput()  # E: mypy[call-arg] pyright[reportCallIssue]
    PatientCaseInput(name="Knee")  # E: mypy[call-arg] pyright[reportCallIssue]
    MemoCommunicationInput(content="Called")  # E: mypy[call-arg] pyright[reportCallIssue]
    await cliniko.patient_cases.create(PatientCaseUpdateInput(name="Knee"))  # E: mypy[arg-type] pyright[reportArgumentType]
    patient = await cliniko.patients.get(1)
    _no_id: None = patient.id  # E: mypy[assignment] pyright[reportAssignmentType]
    _typo = patient.reminder_type == "Sms"  # E: mypy[comparison-overlap] pyright[reportUnnecessaryComparison]
    _status: str = (await cliniko.invoices.get(1)).status or ""  # E: mypy[assignment] pyright[reportAssignmentType]


def wrong_options(cliniko: Cliniko, sync: SyncCliniko, accounts: ClinikoAccounts) -> None:
    """The constructors and with_options share one keyword list: each wrong on all three."""
    Cliniko(api_key="k", user_agent="a", timeuot=5)  # E: mypy[call-arg] pyright[reportCallIssue]
    SyncCliniko(api_key="k", user_agent="a", timeuot=5)  # E: mypy[call-arg] pyright[reportCallIssue]
    ClinikoAccounts(user_agent="a", timeuot=5)  # E: mypy[call-arg] pyright[reportCallIssue]
    Cliniko(api_key="k", user_agent="a", max_retries="2")  # E: mypy[arg-type] pyright[reportArgumentType]
    SyncCliniko(api_key="k", user_agent="a", max_retries="2")  # E: mypy[arg-type] pyright[reportArgumentType]
    ClinikoAccounts(user_agent="a", max_retries="2")  # E: mypy[arg-type] pyright[reportArgumentType]
    Cliniko(api_key="k", user_agent="a", rate_limit=200)  # E: mypy[arg-type] pyright[reportArgumentType]
    ClinikoAccounts(user_agent="a", options=RateLimit())  # E: mypy[arg-type] pyright[reportArgumentType]
    Cliniko(api_key="k")  # E: mypy[call-arg] pyright[reportCallIssue]
    ClinikoAccounts(user_agent="a", api_key="k")  # E: mypy[call-arg] pyright[reportCallIssue]
    cliniko.with_options(max_retrys=0)  # E: mypy[call-arg] pyright[reportCallIssue]
    sync.with_options(max_retrys=0)  # E: mypy[call-arg] pyright[reportCallIssue]
    accounts.with_options(max_retrys=0)  # E: mypy[call-arg] pyright[reportCallIssue]
    cliniko.with_options(deadline="1")  # E: mypy[arg-type] pyright[reportArgumentType]
    sync.with_options(deadline="1")  # E: mypy[arg-type] pyright[reportArgumentType]
    accounts.with_options(deadline="1")  # E: mypy[arg-type] pyright[reportArgumentType]
    cliniko.with_options(http_client=None)  # E: mypy[call-arg] pyright[reportCallIssue]
    cliniko_lifespan(api_key="k", user_agent="a", timeout="5")  # E: mypy[arg-type] pyright[reportArgumentType]
    accounts_lifespan(user_agent="a", timeuot=5)  # E: mypy[call-arg] pyright[reportCallIssue]
