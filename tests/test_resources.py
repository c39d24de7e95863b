"""The core resources end to end: every operation of patients, practitioners and appointments."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import httpx
import pytest

from cliniko_async import UNSET, Cliniko, ClinikoError, ConfigurationError, Link, NotFoundError, q
from cliniko_async._converter import structure
from cliniko_async.errors import DecodeError, ModelDecodeError
from cliniko_async.models import (
    IndividualAppointment,
    IndividualAppointmentCancelInput,
    IndividualAppointmentInput,
    IndividualAppointmentUpdateInput,
    Patient,
    PatientInput,
    PatientUpdateInput,
    Practitioner,
)

from ._mockserver import API_KEY, BASE_URL, USER_AGENT

HOST = "http://127.0.0.1/v1"


def patient_json(pid: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(pid),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "",
        "archived_at": "",
        "created_at": "2026-01-02T03:04:05Z",
        "patient_phone_numbers": [{"number": "0400", "phone_type": "Mobile"}],
        "concession_type": {"links": {"self": f"{HOST}/concession_types/514810976034364376"}},
        "links": {"self": f"{HOST}/patients/{pid}"},
        **extra,
    }


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else None
        if path == "/v1/patients" and method == "GET":
            return httpx.Response(
                200,
                json={"patients": [patient_json(1), patient_json(2)], "total_entries": 2,
                      "links": {"self": f"{HOST}/patients"}},
            )  # fmt: skip
        if path == "/v1/patients/404":
            return httpx.Response(404, json={"message": "Not found"})
        if path.startswith("/v1/patients/") and method in ("GET", "PATCH"):
            return httpx.Response(200, json=patient_json(int(path.split("/")[3]), **(body or {})))
        if path == "/v1/patients" and method == "POST":
            return httpx.Response(201, json=patient_json(99, **(body or {})))
        if path.endswith(("/archive", "/cancel")) or method == "DELETE":
            return httpx.Response(204)
        if path.endswith("/unarchive"):
            return httpx.Response(200, json=patient_json(int(path.split("/")[3])))
        if path.endswith("/conflicts"):
            return httpx.Response(200, json={"conflicts": {"exist": False}})
        if "practitioners" in path and method == "GET" and not path.split("/")[-1].isdigit():
            return httpx.Response(200, json={"practitioners": [{"id": 3, "first_name": "P"}],
                                             "total_entries": 1, "links": {}})  # fmt: skip
        if "practitioners" in path:
            return httpx.Response(200, json={"id": "514810972972521916", "active": True})
        if path.startswith("/v1/individual_appointments"):
            record = {
                "id": 7,
                "starts_at": "2026-03-01T09:00:00+10:00",
                "patient": {"links": {"self": f"{HOST}/patients/1"}},
                "repeat_rule": {},
                "cancellation_reason": None,
            }
            if (method == "GET" and path.count("/") == 2) or path.endswith("cancelled"):
                return httpx.Response(200, json={"individual_appointments": [record],
                                                 "total_entries": 1, "links": {}})  # fmt: skip
            return httpx.Response(200 if method != "POST" else 201, json={**record, **(body or {})})
        return httpx.Response(500, json={"message": f"unexpected {method} {path}"})


@pytest.fixture
async def setup() -> Any:
    rec = Recorder()
    http = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    async with Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http
    ) as c:
        yield c, rec
    await http.aclose()


async def test_patients_every_operation(setup: Any) -> None:
    cliniko, rec = setup
    patient = await cliniko.patients.get(1)
    assert isinstance(patient, Patient)
    assert patient.id == 1 and patient.first_name == "Ada"
    assert patient.date_of_birth is None and patient.archived_at is None  # "" quirk
    assert patient.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert patient.concession_type == Link(f"{HOST}/concession_types/514810976034364376")
    assert patient.concession_type is not None and patient.concession_type.id == 514810976034364376
    assert patient.patient_phone_numbers and patient.patient_phone_numbers[0].number == "0400"

    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    listed = await cliniko.patients.list(
        q=[q("created_at") >= since, q("last_name").contains("Love")],
        sort="last_name:desc",
        per_page=100,
    ).collect()
    assert [p.id for p in listed] == [1, 2]
    params = rec.requests[-1].url.params
    assert params.get_list("q[]") == ["created_at:>=2026-01-01T00:00:00Z", "last_name:~Love"]
    assert (params["sort"], params["per_page"]) == ("last_name:desc", "100")

    created = await cliniko.patients.create(
        PatientInput(first_name="Grace", last_name="Hopper", notes=None)
    )
    assert json.loads(rec.requests[-1].content) == {
        "first_name": "Grace",
        "last_name": "Hopper",
        "notes": None,
    }
    assert created.id == 99 and created.first_name == "Grace"

    await cliniko.patients.update(5, PatientUpdateInput(email="g@example.com"))
    assert rec.requests[-1].method == "PATCH"
    assert json.loads(rec.requests[-1].content) == {"email": "g@example.com"}  # only fields set

    assert await cliniko.patients.archive(5) is None
    assert rec.requests[-1].url.path == "/v1/patients/5/archive"
    unarchived = await cliniko.patients.unarchive(5)
    assert isinstance(unarchived, Patient)
    with pytest.warns(DeprecationWarning, match="archive"):
        await cliniko.patients.delete(5)
    with pytest.warns(DeprecationWarning, match="archived_at"):
        cliniko.patients.list_archived()
    with pytest.raises(NotFoundError):
        await cliniko.patients.get(404)


async def test_bad_calls_fail_before_sending(setup: Any) -> None:
    cliniko, rec = setup
    with pytest.raises(TypeError, match="last_name"):  # required: a type checker's error too
        PatientInput(first_name="Only")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="PatientInput"):  # the update body is partial
        await cliniko.patients.create(PatientUpdateInput(first_name="Only"))
    with pytest.raises(ConfigurationError, match="id"):
        await cliniko.patients.get("1/../../x")
    with pytest.raises(TypeError, match="patient_id"):  # and a type checker's error
        await cliniko.patients.get()
    with pytest.raises(ConfigurationError, match="not a filterable field"):
        cliniko.patients.list(q=[q("nope") == 1])
    with pytest.raises(ConfigurationError, match="naive datetime"):
        cliniko.patients.list(q=[q("created_at") >= dt.datetime(2026, 1, 1)])
    with pytest.raises(ConfigurationError, match="per_page"):
        cliniko.patients.list(per_page=101)
    with pytest.raises(ConfigurationError, match="sort"):
        cliniko.patients.list(sort="name; drop")
    with pytest.raises(TypeError, match="params"):
        cliniko.patients.list(params={"from": "2026-01-01"})
    with pytest.raises(ConfigurationError, match="PatientUpdateInput"):
        await cliniko.patients.update(1, IndividualAppointmentUpdateInput())
    with pytest.raises(TypeError, match="body"):
        await cliniko.patients.update(1)
    assert rec.requests == []


async def test_practitioners_every_operation(setup: Any) -> None:
    cliniko, rec = setup
    practitioner = await cliniko.practitioners.get(514810972972521916)
    assert isinstance(practitioner, Practitioner) and practitioner.id == 514810972972521916
    for pages, path in [
        (cliniko.practitioners.list(), "/v1/practitioners"),
        (cliniko.practitioners.list_inactive(), "/v1/practitioners/inactive"),
        (cliniko.practitioners.list_for_business(3), "/v1/businesses/3/practitioners"),
        (
            cliniko.practitioners.list_inactive_for_business(3),
            "/v1/businesses/3/practitioners/inactive",
        ),
        (
            cliniko.practitioners.list_for_appointment_type(4),
            "/v1/appointment_types/4/practitioners",
        ),
        (
            cliniko.practitioners.list_inactive_for_appointment_type(4),
            "/v1/appointment_types/4/practitioners/inactive",
        ),
    ]:
        items = await pages.collect()
        assert [p.id for p in items] == [3]
        assert rec.requests[-1].url.path == path


async def test_individual_appointments_every_operation(setup: Any) -> None:
    cliniko, rec = setup
    appt = await cliniko.individual_appointments.get(7)
    assert isinstance(appt, IndividualAppointment)
    assert appt.starts_at == dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC)  # converted to UTC
    assert appt.patient is not None and appt.patient.id == 1
    assert [
        a.id async for a in cliniko.individual_appointments.list(q=[q("patient_id") == [1, 2]])
    ] == [7]
    assert rec.requests[-1].url.params.get_list("q[]") == ["patient_id:=1,2"]
    body = IndividualAppointmentInput(
        appointment_type_id=1, business_id=2, patient_id=3, practitioner_id=4,
        starts_at=dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=10))),
        ends_at=dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.UTC),
    )  # fmt: skip
    await cliniko.individual_appointments.create(body)
    sent = json.loads(rec.requests[-1].content)
    assert sent["patient_id"] == "3" and sent["starts_at"] == "2026-02-28T23:00:00Z"
    await cliniko.individual_appointments.update(7, IndividualAppointmentUpdateInput(notes="x"))
    assert json.loads(rec.requests[-1].content) == {"notes": "x"}
    assert await cliniko.individual_appointments.archive(7) is None
    assert (
        await cliniko.individual_appointments.cancel(
            7, IndividualAppointmentCancelInput(cancellation_reason=50)
        )
        is None
    )
    assert (rec.requests[-1].method, json.loads(rec.requests[-1].content)) == (
        "PATCH",
        {"cancellation_reason": 50},
    )
    conflicts = await cliniko.individual_appointments.conflicts(7)
    assert conflicts.conflicts is not None and conflicts.conflicts.exist is False
    with pytest.warns(DeprecationWarning, match="use archive"):
        await cliniko.individual_appointments.delete(7)
    with pytest.warns(DeprecationWarning, match="cancelled_at"):
        assert len(await cliniko.individual_appointments.list_cancelled().collect()) == 1
    assert UNSET is not None and not UNSET


async def test_enum_values_cliniko_adds_later_decode_unchanged(setup: Any) -> None:
    """Response enums are Literal[...] for type checkers only: a value the spec does not list
    yet reaches the caller as sent (a whole page never fails on one new value)."""
    from cliniko_async import models

    cliniko, _ = setup
    known = await cliniko.patients.update(1, {"reminder_type": "SMS"})
    assert known.reminder_type == "SMS"
    new = await cliniko.patients.update(1, {"reminder_type": "Carrier pigeon"})
    assert new.reminder_type == "Carrier pigeon"
    invoice = structure({"id": "3", "status": 50, "status_description": "Disputed"}, models.Invoice)
    assert (invoice.status, invoice.status_description) == (50, "Disputed")
    with pytest.raises(ModelDecodeError):  # the type is still checked: an int, not a word
        structure({"id": "3", "status": "paid"}, models.Invoice)
    # at run time the aliases are the base types; the listed values stay in the metadata
    runtime = {name: getattr(models, name) for name in ("PatientReminderType", "InvoiceStatus")}
    assert runtime == {"PatientReminderType": str, "InvoiceStatus": int}
    field = attrs.fields_dict(Patient)["reminder_type"]
    assert field.metadata["enum"] == ("None", "SMS", "Email", "SMS & Email")


async def test_a_record_without_its_id_is_a_decode_error_not_a_none() -> None:
    """``Patient.id`` is ``int`` (never None): a record with neither an id nor a links.self
    to take it from fails to decode, as a ClinikoError, on every path (large and sparse
    records, single and listed); a record with only its link gets its id from there."""
    full = patient_json(5)
    del full["id"], full["links"]
    bodies = {
        "/v1/patients/5": full,  # the generated straight-line structure function
        "/v1/patients/6": {"first_name": "Ada"},  # a sparse record: the key loop
        "/v1/patients/7": {"first_name": "Ada", "links": {"self": f"{HOST}/patients/7"}},
        "/v1/patients": {"patients": [patient_json(1), {"first_name": "B"}], "links": {}},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=bodies[request.url.path])

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http
    ) as cliniko:
        for pid in (5, 6):
            with pytest.raises(DecodeError, match="Patient: the record has no id"):
                await cliniko.patients.get(pid)
        assert (await cliniko.patients.get(7)).id == 7  # /patients/deleted's shape
        with pytest.raises(DecodeError, match="has no id"):
            await cliniko.patients.list().collect()
    await http.aclose()
    assert issubclass(DecodeError, ClinikoError)
    with pytest.raises(ModelDecodeError, match="has no id"):  # structure() called directly
        structure({"first_name": "Ada"}, Patient)
    with pytest.raises(TypeError, match="id"):
        Patient()  # type: ignore[call-arg]  # a record is built with its id


def test_creates_take_the_fields_cliniko_requires_as_constructor_arguments() -> None:
    from cliniko_async.models import (
        MemoCommunicationInput,
        PatientCaseInput,
        PatientCaseUpdateInput,
    )

    with pytest.raises(TypeError, match="patient_id"):
        PatientCaseInput(name="Knee")  # type: ignore[call-arg]
    case = PatientCaseInput(name="Knee", patient_id=1)
    assert isinstance(case, PatientCaseUpdateInput)  # a full body updates too
    assert PatientCaseUpdateInput(notes="x").notes == "x"  # an update sets what it likes
    with pytest.raises(TypeError, match="from_"):
        MemoCommunicationInput(  # type: ignore[call-arg]
            category_code=12, content="Called", direction_code=1, patient_id=1, to="A",
            type_code=4,
        )  # fmt: skip
