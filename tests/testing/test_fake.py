"""The fake Cliniko itself: pagination, filters (vs brute force), windows, faults, auth, serving."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import threading
from typing import Any

import httpx
import pytest

from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    FakeCliniko,
    FaultRule,
    Faults,
    serve,
)

AUTH = (DEFAULT_API_KEY, "")
HEADERS = {"user-agent": DEFAULT_USER_AGENT, "accept": "application/json"}


def client(fake: FakeCliniko) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=fake.transport(), base_url="http://127.0.0.1/v1", auth=AUTH, headers=HEADERS
    )


async def all_ids(http: httpx.AsyncClient, path: str, params: list[tuple[str, str]]) -> list[int]:
    ids: list[int] = []
    url: str | None = path
    query: list[tuple[str, str]] | None = [*params, ("per_page", "100")]
    while url:
        r = await http.get(url, params=tuple(query) if query else None)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [int(p["id"]) for p in body[path.strip("/")]]
        url, query = body["links"].get("next"), None
    return ids


@pytest.mark.parametrize(("total", "pages"), [(0, 1), (100, 1), (101, 2), (250, 3)])
async def test_pagination_edges(total: int, pages: int) -> None:
    fake = FakeCliniko(patients=total, rate_limit=None)
    async with client(fake) as http:
        seen = 0
        for n in range(1, pages + 1):
            r = (await http.get("/patients", params={"page": n, "per_page": 100})).json()
            assert r["total_entries"] == total
            assert r["links"]["self"].startswith("http://127.0.0.1/v1/patients?")
            assert ("next" in r["links"]) == (n < pages)
            assert ("previous" in r["links"]) == (n > 1)
            seen += len(r["patients"])
        assert seen == total
        assert (await http.get("/patients", params={"per_page": 101})).status_code == 400
        assert (await http.get("/patients", params={"per_page": 0})).status_code == 400


FILTER_CASES: list[tuple[str, Any]] = [
    ("first_name:=Ada", lambda p: p["first_name"] == "Ada"),
    ("first_name:!=Ada", lambda p: p["first_name"] != "Ada"),
    ("last_name:~ov", lambda p: "ov" in p["last_name"].lower()),
    ("email:~~ada.%@example.com", lambda p: p["email"].startswith("ada.")),
    ("id:=3,5,7", lambda p: int(p["id"]) in (3, 5, 7)),
    ("id:!=4", lambda p: int(p["id"]) != 4),
    ("id:>=10", lambda p: int(p["id"]) >= 10),
    ("id:>10", lambda p: int(p["id"]) > 10),
    ("id:<=10", lambda p: int(p["id"]) <= 10),
    ("id:<10", lambda p: int(p["id"]) < 10),
    ("date_of_birth:>=1980-01-01", lambda p: (p["date_of_birth"] or "") >= "1980-01-01"),
    ("date_of_birth:<1960-06-01", lambda p: "" < (p["date_of_birth"] or "") < "1960-06-01"),
    ("date_of_birth:=****-05-**", lambda p: (p["date_of_birth"] or "")[5:7] == "05"),
    ("date_of_birth:!?", lambda p: p["date_of_birth"] is None),
    ("date_of_birth:?", lambda p: p["date_of_birth"] is not None),
    ("created_at:>2025-06-01T00:00:00Z", lambda p: p["created_at"] > "2025-06-01T00:00:00Z"),
    ("created_at:<=2025-06-01T00:00:00Z", lambda p: p["created_at"] <= "2025-06-01T00:00:00Z"),
    ("accepted_privacy_policy:=true", lambda p: p["accepted_privacy_policy"] is True),
    ("accepted_privacy_policy:!=true", lambda p: p["accepted_privacy_policy"] is not True),
]  # fmt: skip


@pytest.mark.parametrize(("flt", "predicate"), FILTER_CASES)
async def test_every_operator_matches_brute_force(flt: str, predicate: Any) -> None:
    fake = FakeCliniko(patients=300, rate_limit=None, seed=7)
    expected = sorted(int(p["id"]) for p in fake.data["patients"].values() if predicate(p))
    async with client(fake) as http:
        assert sorted(await all_ids(http, "/patients", [("q[]", flt)])) == expected
        assert expected or flt.endswith(("!?", "=Ada"))  # the data exercises the filter


async def test_integer_link_filters_sort_and_bad_filters() -> None:
    fake = FakeCliniko(patients=40, appointments=300, rate_limit=None)
    rows = fake.data["individual_appointments"].values()
    expected = sorted(int(a["id"]) for a in rows if a["patient"]["links"]["self"] == "/patients/3")
    async with client(fake) as http:
        got = await all_ids(http, "/individual_appointments", [("q[]", "patient_id:=3")])
        assert sorted(got) == expected
        r = (
            await http.get("/patients", params={"sort": "last_name:desc,id", "per_page": 100})
        ).json()
        names = [(p["last_name"], int(p["id"])) for p in r["patients"]]
        assert names == sorted(names, key=lambda t: (tuple(-ord(c) for c in t[0]), t[1]))
        for bad in ["nope:=1", "created_at:=2020-01-01T00:00:00Z", "first_name:>a", "junk"]:
            assert (await http.get("/patients", params={"q[]": bad})).status_code == 400


@pytest.mark.looptime
@pytest.mark.parametrize("window", ["rolling", "fixed"])
async def test_rate_limit_windows_counted(window: Any) -> None:
    fake = FakeCliniko(patients=5, rate_limit=(10, 2.0), window=window)
    loop = asyncio.get_running_loop()
    async with client(fake) as http:
        codes = [(await http.get("/patients/1")).status_code for _ in range(12)]
        assert codes == [200] * 10 + [429] * 2
        r = await http.get("/patients/1")
        reset = int(r.headers["x-ratelimit-reset"])
        date = r.headers["date"]
        assert reset > fake.clock.wall() - 1 and date
        await asyncio.sleep(2.01)
        assert (await http.get("/patients/1")).status_code == 200
        # A slow trickle: one request every 0.3 s for 10 s stays within 10 per 2 s.
        start = loop.time()
        while loop.time() - start < 10:
            await http.get("/patients/1")
            await asyncio.sleep(0.3)
    stats = fake.stats()
    assert stats.rejected == 3
    assert stats.max_in_window == 10
    assert len(stats.accepted) == 11 + 34


async def test_faults_reproducible_from_seed() -> None:
    async def run(seed: int) -> list[str]:
        rule = FaultRule(path="/v1/patients*", error_rate=0.2, drop_rate=0.1, html_rate=0.1,
                         malformed_json_rate=0.1)  # fmt: skip
        fake = FakeCliniko(rate_limit=None, faults=Faults([rule], seed=seed))
        out = []
        async with client(fake) as http:
            for _ in range(60):
                try:
                    r = await http.get("/patients")
                    out.append(f"{r.status_code}:{r.text[:6]}")
                except httpx.RemoteProtocolError:
                    out.append("drop")
        return out

    a, b, c = await run(1), await run(1), await run(2)
    assert a == b and a != c
    assert {"drop", '503:{"mess'} <= set(a)


async def test_auth_user_agent_404_422_and_crud() -> None:
    fake = FakeCliniko(rate_limit=None)
    async with client(fake) as http:
        bad = await http.get("/patients", auth=("MS0xd3Jvbmcta2V5LTAw-au1", ""))
        assert bad.status_code == 401 and "message" in bad.json()
        noua = await http.get("/patients", headers={"user-agent": "python-httpx"})
        assert noua.status_code == 400
        missing = await http.get("/patients/999999")
        assert missing.status_code == 404 and missing.json()["message"]
        invalid = await http.post("/patients", json={"first_name": "A"})
        assert invalid.status_code == 422
        assert invalid.json() == {
            "message": "Validation Failed",
            "errors": {"last_name": "can't be blank"},
        }
        created = await http.post("/patients", json={"first_name": "A", "last_name": "B"})
        pid = created.json()["id"]
        assert created.status_code == 201
        assert (await http.patch(f"/patients/{pid}", json={"notes": "x"})).json()["notes"] == "x"
        assert (await http.post(f"/patients/{pid}/archive")).status_code == 204
        listed = await all_ids(http, "/patients", [])
        assert int(pid) not in listed
        archived = await all_ids(http, "/patients", [("q[]", "archived_at:?")])
        assert archived == [int(pid)]
        everyone = await all_ids(http, "/patients", [("q[]", "archived_at:*")])
        assert sorted(everyone) == sorted([*listed, int(pid)])
        assert (await http.post(f"/patients/{pid}/unarchive")).json()["archived_at"] is None


def test_serve_starts_and_stops_over_real_http() -> None:
    before = set(threading.enumerate())
    fake = FakeCliniko(rate_limit=None)
    with serve(fake) as url:
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{url}/patients/1", auth=AUTH, headers=HEADERS)
        assert r.status_code == 200
        assert r.json()["links"]["self"] == f"{url}/patients/1"
    assert set(threading.enumerate()) <= before


def test_generation_scales() -> None:
    start = dt.datetime.now()
    fake = FakeCliniko(patients=100_000, appointments=10_000, rate_limit=None)
    assert len(fake.data["patients"]) == 100_000
    assert (dt.datetime.now() - start).total_seconds() < 20


def test_served_responses_are_not_held_by_nagle() -> None:
    # Regression: without TCP_NODELAY on accepted sockets every response waited for a delayed
    # ACK (~40 ms each). 20 sequential round trips then took > 0.8 s; now about 20 ms.
    fake = FakeCliniko(rate_limit=None)
    with serve(fake) as url, httpx.Client(auth=AUTH, headers=HEADERS) as http:
        http.get(f"{url}/patients/1")
        start = dt.datetime.now()
        for _ in range(20):
            http.get(f"{url}/patients/1")
        assert (dt.datetime.now() - start).total_seconds() < 0.4


@pytest.mark.looptime
async def test_slow_bodies_skewed_dates_and_foreign_next_links() -> None:
    rule = FaultRule(
        path="/v1/patients", slow_body=2.0, date_skew=3600, next_link_host="evil.example"
    )
    fake = FakeCliniko(rate_limit=None, faults=Faults([rule]))
    loop = asyncio.get_running_loop()
    async with client(fake) as http:
        start = loop.time()
        r = await http.get("/patients", params={"per_page": 5})
        assert loop.time() - start >= 2.0  # the body took two (virtual) seconds to arrive
        assert r.json()["links"]["next"].startswith("http://evil.example/")
        server_date = email.utils.parsedate_to_datetime(r.headers["date"]).timestamp()
        assert abs(server_date - (fake.clock.wall() + 3600)) < 5
        plain = await http.get("/patients/1")
        assert (
            abs(
                email.utils.parsedate_to_datetime(plain.headers["date"]).timestamp()
                - fake.clock.wall()
            )
            < 5
        )


TEMPLATES = "appointment_confirmation_template_ids"


@pytest.mark.parametrize(
    ("flt", "predicate"),
    [
        (f"{TEMPLATES}:~3", lambda a: "3" in a[TEMPLATES]),
        (f"{TEMPLATES}:?", lambda a: bool(a[TEMPLATES])),
        (f"{TEMPLATES}:!?", lambda a: not a[TEMPLATES]),
    ],
)  # fmt: skip
async def test_array_operators_match_brute_force(flt: str, predicate: Any) -> None:
    fake = FakeCliniko(appointment_types=60, rate_limit=None, seed=5)
    rows = fake.data["appointment_types"].values()
    expected = sorted(int(a["id"]) for a in rows if predicate(a))
    async with client(fake) as http:
        assert sorted(await all_ids(http, "/appointment_types", [("q[]", flt)])) == expected
    assert expected


def test_dropped_connection_over_real_http() -> None:
    fake = FakeCliniko(rate_limit=None, faults=Faults([FaultRule(drop_rate=1.0)]))
    with serve(fake) as url, httpx.Client(auth=AUTH, headers=HEADERS) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"{url}/patients/1")


async def test_any_operator_includes_archived_records() -> None:
    fake = FakeCliniko(patients=30, rate_limit=None)
    async with client(fake) as http:
        for pid in (3, 4, 5):
            assert (await http.post(f"/patients/{pid}/archive")).status_code == 204
        assert len(await all_ids(http, "/patients", [])) == 27  # archived ones left out
        every = await all_ids(http, "/patients", [("q[]", "archived_at:*")])
        assert sorted(every) == list(range(1, 31))  # q("archived_at").any(): archived too
        only = await all_ids(http, "/patients", [("q[]", "archived_at:?")])
        assert sorted(only) == [3, 4, 5]


# -- issue 18: the fake answers as Cliniko does --
async def test_default_order_is_created_at_ascending() -> None:
    fake = FakeCliniko(patients=30, rate_limit=None)
    # Records whose creation order is not their id order.
    for pid, when in ((3, "2020-01-01T00:00:00Z"), (7, "2019-06-01T00:00:00Z")):
        fake.data["patients"][pid]["created_at"] = when
    async with client(fake) as http:
        body = (await http.get("/patients", params={"per_page": 100})).json()
        created = [p["created_at"] for p in body["patients"]]
        assert created == sorted(created)
        assert [p["id"] for p in body["patients"]][:2] == ["7", "3"]
        desc = (await http.get("/patients", params={"per_page": 100, "order": "desc"})).json()
        assert [p["id"] for p in desc["patients"]] == [p["id"] for p in body["patients"]][::-1]


async def test_order_desc_applies_to_sort_fields_without_their_own_direction() -> None:
    fake = FakeCliniko(patients=30, rate_limit=None)
    async with client(fake) as http:
        params = {"per_page": "100", "sort": "last_name", "order": "desc"}
        names = [
            p["last_name"] for p in (await http.get("/patients", params=params)).json()["patients"]
        ]
        assert names == sorted(names, reverse=True)
        params = {"per_page": "100", "sort": "last_name:asc", "order": "desc"}
        names = [
            p["last_name"] for p in (await http.get("/patients", params=params)).json()["patients"]
        ]
        assert names == sorted(names)
        bad = await http.get("/patients", params={"order": "sideways"})
        assert bad.status_code == 400


async def test_available_times_cannot_be_ordered() -> None:
    fake = FakeCliniko(rate_limit=None)
    path = "/businesses/1/practitioners/1/appointment_types/1/available_times"
    async with client(fake) as http:
        params = {"from": "2026-03-02", "to": "2026-03-03"}
        assert (await http.get(path, params=params)).status_code == 200
        r = await http.get(path, params={**params, "sort": "appointment_start"})
        assert r.status_code == 400


async def test_a_key_without_its_shard_suffix_is_accepted() -> None:
    fake = FakeCliniko(rate_limit=None)
    bare = DEFAULT_API_KEY.rsplit("-", 1)[0]
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://127.0.0.1/v1", auth=(bare, ""), headers=HEADERS
    ) as http:
        assert (await http.get("/patients/1")).status_code == 200
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://127.0.0.1/v1", auth=(bare + "x", ""),
        headers=HEADERS,
    ) as http:  # fmt: skip
        assert (await http.get("/patients/1")).status_code == 401


async def test_filters_on_a_single_record_get_are_applied_or_refused() -> None:
    fake = FakeCliniko(rate_limit=None)
    async with client(fake) as http:
        # GET /appointment_types/{id} documents archived_at: applied.
        assert (
            await http.get("/appointment_types/1", params={"q[]": "archived_at:*"})
        ).status_code == 200
        assert (
            await http.get("/appointment_types/1", params={"q[]": "archived_at:?"})
        ).status_code == 404
        assert (
            await http.get("/appointment_types/1", params={"q[]": "name:=x"})
        ).status_code == 400
        # GET /patients/{id} documents no filters: refused, not ignored.
        assert (await http.get("/patients/1", params={"q[]": "first_name:=x"})).status_code == 400
        assert (await http.get("/patients/1")).status_code == 200


async def test_an_empty_memo_create_is_refused() -> None:
    fake = FakeCliniko(rate_limit=None)
    async with client(fake) as http:
        r = await http.post("/communications", json={})
        assert r.status_code == 422
        assert set(r.json()["errors"]) >= {"patient_id", "content", "category_code"}
        assert set(r.json()) == {"errors", "message"}
        memo = {"category_code": 12, "content": "Called", "direction_code": 1, "from": "Us",
                "to": "Them", "type_code": 1, "patient_id": "1"}  # fmt: skip
        assert (await http.post("/communications", json=memo)).status_code == 201
        assert (
            await http.post("/communications", json={**memo, "category_code": 1})
        ).status_code == 422
        assert (await http.post("/patient_cases", json={})).status_code == 422


async def test_each_response_carries_exactly_one_date_header() -> None:
    fake = FakeCliniko(
        rate_limit=(1, 60.0), faults=Faults([FaultRule(path="/v1/businesses*", html_rate=1.0)])
    )
    async with client(fake) as http:
        for path in ("/patients/1", "/patients/1", "/nope"):
            r = await http.get(path)
            assert len(r.headers.get_list("date")) == 1, (path, r.status_code)
    fake = FakeCliniko(
        rate_limit=None, faults=Faults([FaultRule(path="/v1/businesses*", html_rate=1.0)])
    )
    with serve(fake) as url:
        async with httpx.AsyncClient(base_url=url, auth=AUTH, headers=HEADERS) as http:
            for path in ("/patients/1", "/patients", "/patients/999999", "/businesses", "/nope"):
                r = await http.get(url + path)
                assert len(r.headers.get_list("date")) == 1, (path, r.status_code)
                assert email.utils.parsedate_to_datetime(r.headers["date"]) is not None


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/patients", {"first_name": "A" * 400, "last_name": "B"}, 422, "first_name"),
        ("/patients", {"first_name": "A", "last_name": "B", "date_of_birth": "not-a-date"}, 422,
         "date_of_birth"),
        ("/patients", {"first_name": "A", "last_name": "B", "date_of_birth": "2026-02-30"}, 422,
         "date_of_birth"),
        ("/patients", {"first_name": 5, "last_name": "B"}, 422, "first_name"),
        ("/patients", {"first_name": "A", "last_name": "B", "accepted_privacy_policy": "yes"}, 422,
         "accepted_privacy_policy"),
        ("/patients", {"first_name": "A", "last_name": "B", "referring_doctor_id": 1.5}, 422,
         "referring_doctor_id"),
        ("/contacts", {"first_name": "A", "last_name": "B", "doctor_type": "__bogus__"}, 422,
         "doctor_type"),
        ("/medical_alerts", {"name": "Latex", "patient_id": -5}, 404, "patient"),
        ("/medical_alerts", {"name": "Latex", "patient_id": "99999"}, 404, "patient"),
        ("/individual_appointments", {"appointment_type_id": "1", "business_id": "1",
         "patient_id": "1", "practitioner_id": "1", "starts_at": "tomorrow"}, 422, "starts_at"),
        # the spec's minLength, exclusive ranges and patterns (found by tests/test_schemathesis)
        ("/medical_alerts", {"name": "", "patient_id": "1"}, 422, "name"),
        ("/unavailable_block_types", {"name": "Lunch", "duration_in_minutes": 1441}, 422,
         "duration_in_minutes"),
        ("/unavailable_block_types", {"name": "Lunch", "duration_in_minutes": 0}, 422,
         "duration_in_minutes"),
        ("/unavailable_block_types", {"name": "Lunch", "color": "#hhhhhh"}, 422, "color"),
        ("/taxes", {"name": "GST", "rate": "-1"}, 422, "rate"),
        # ... inside nested models too: a question of a section, an answer of a question
        ("/treatment_note_templates", {"name": "T", "content": {"sections": [{"name": "S",
         "questions": [{"name": "Q" * 256, "type": "text"}]}]}}, 422,
         "content.sections[0].questions[0].name"),
        ("/treatment_note_templates", {"name": "T", "content": {"sections": [{"name": "S",
         "questions": [{"name": "Q", "type": "checkboxes", "answers": [{"value": "V" * 256}]}]}]}},
         422, "content.sections[0].questions[0].answers[0].value"),
    ],
)  # fmt: skip
async def test_bodies_cliniko_refuses_are_refused_and_never_stored(
    path: str, body: dict[str, Any], status: int, field: str
) -> None:
    fake = FakeCliniko(patients=3, appointments=3, rate_limit=None)
    table = path.strip("/")
    before = {k: dict(v) for k, v in fake.data.get(table, {}).items()}
    async with client(fake) as http:
        r = await http.post(path, json=body)
        assert r.status_code == status, r.text
        assert field in r.json()["errors"] and "message" in r.json()
        assert {k: dict(v) for k, v in fake.data.get(table, {}).items()} == before
        if table != "patients":
            existing = next(iter(fake.data[table]), None)
            if existing is not None:
                r = await http.patch(f"{path}/{existing}", json=body)
                assert r.status_code in (status, 422, 404), r.text
        # Nothing stored, so nothing served later answers 500.
        for later in ("/patients/1/medical_alerts", "/attendees/1/patient_forms", path):
            assert (await http.get(later)).status_code in (200, 404)


async def test_numbers_for_decimal_fields_are_stored_as_cliniko_sends_them() -> None:
    fake = FakeCliniko(patients=1, rate_limit=None)
    async with client(fake) as http:
        r = await http.post("/taxes", json={"name": "GST", "rate": 10, "amount": 2.5})
        assert r.status_code == 201, r.text
        assert (r.json()["rate"], r.json()["amount"]) == ("10", "2.5")  # strings, as the spec says


async def test_sample_records_keep_to_the_spec_enums_formats_and_lengths() -> None:
    fake = FakeCliniko(patients=1, rate_limit=None)
    for record in fake.data["attendees"].values():
        assert record["invoice_status"] in (None, 10, 20, 30, 40)
        assert record["treatment_note_status"] in (None, 10, 90)
        assert record["booking_ip_address"].count(".") == 3
    for record in fake.data["contacts"].values():
        assert len(record["country_code"]) <= 2 and record["type_code"] in (0, 1, 2)
    for record in fake.data["communications"].values():  # one kind (memo), consistently
        assert (record["category"], record["category_code"]) == ("Memo", 12)


async def test_available_times_in_year_one_are_date_times() -> None:
    fake = FakeCliniko(patients=1, rate_limit=None)
    async with client(fake) as http:
        path = "/businesses/1/practitioners/1/appointment_types/1/available_times"
        r = await http.get(path, params={"from": "0001-01-01", "to": "0001-01-02"})
        assert r.status_code == 200
        assert r.json()["available_times"][0]["appointment_start"] == "0001-01-01T09:00:00Z"
        r = await http.get(path, params={"from": "9999-12-30", "to": "9999-12-31"})
        assert r.status_code == 400  # not a 500 from a date past year 9999


async def test_unknown_body_keys_are_dropped_not_stored() -> None:
    fake = FakeCliniko(patients=1, rate_limit=None)
    async with client(fake) as http:
        r = await http.post("/patients", json={"first_name": "A", "last_name": "B", "bogus": 1})
        assert r.status_code == 201
        assert "bogus" not in r.json()


def test_limits_match_the_spec() -> None:
    from tests import _spec

    if not _spec.AVAILABLE:
        pytest.skip("../shared/cliniko-api is not available")
    from cliniko_async.testing._limits import LIMITS, RECORD_LIMITS

    assert spec_limits() == LIMITS, "regenerate: python -m tests.testing.test_fake"
    assert record_limits() == RECORD_LIMITS, "regenerate: python -m tests.testing.test_fake"


#: The constraints of a request body's field the fake checks (its type comes from the model).
INPUT_KEYS = ("enum", "maxLength", "minLength", "minimum", "maximum", "exclusiveMinimum",
              "exclusiveMaximum", "pattern")  # fmt: skip
#: A record's field: what the fake's sample data must respect (``example`` only with a pattern).
RECORD_FORMATS = frozenset({"ipv4", "uuid", "uri", "email"})


def constraints(prop: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The ``keys`` of one property of the spec (enum without null, as a tuple)."""
    out = {k: prop[k] for k in keys if k in prop}
    if "enum" in out:
        enum = tuple(v for v in out.pop("enum") if v is not None)
        if enum:
            out["enum"] = enum
    return out


def schema_properties(schema: dict[str, Any]) -> dict[str, Any]:
    from tests import _spec

    schema = _spec.resolve(schema)
    props: dict[str, Any] = {}
    for part in [schema, *schema.get("allOf", [])]:
        props.update(_spec.resolve(part).get("properties", {}))
    return {wire: _spec.resolve(prop) for wire, prop in props.items()}


def spec_limits() -> dict[str, dict[str, dict[str, Any]]]:
    """The constraints of each field of each request body model, from openapi.yaml: the
    top-level bodies and the models nested in them (``answer`` of a checkboxes question)."""
    from cliniko_async import models
    from cliniko_async._model import Input

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in sorted(dir(models)):
        cls = getattr(models, name)
        if not (isinstance(cls, type) and issubclass(cls, Input) and cls is not Input):
            continue
        schema = input_schema(name)
        if schema is None:
            continue
        fields = {}
        for wire, prop in sorted(schema_properties(schema).items()):
            found_limits = constraints(prop, INPUT_KEYS)
            if found_limits:
                fields[wire] = found_limits
        if fields:
            out[name] = fields
    return out


def input_schema(name: str) -> dict[str, Any] | None:
    """The spec's schema of the request body model ``name``, read from its docstring's first
    line: ``Request body: [Cliniko schema] ``X``[ for an update...].`` names a schema or a
    request body; ``Request body: ``field`` of Parent.`` a property of the parent's schema
    (``answer`` of a question: an item of its ``answers``)."""
    import re

    from cliniko_async import models
    from tests import _spec

    spec = _spec.spec()
    first = (getattr(models, name, None).__doc__ or "").strip().split("\n", 1)[0]
    top = re.match(
        r"^Request body: (?:Cliniko schema )?``(\w+)``(?: for an update\b.*)?\.?$", first
    )
    if top:
        source = top.group(1)
        if "Cliniko schema" in first:
            return dict(spec["components"]["schemas"][source])
        if source in spec["components"]["requestBodies"]:
            body = spec["components"]["requestBodies"][source]["content"]["application/json"]
            return dict(body["schema"])
        return None
    nested = re.match(r"^Request body: ``(\w+)`` of (\w+)\.?$", first)
    if nested is None:
        return None
    field, parent = nested.groups()
    parent_schema = spec["components"]["schemas"].get(parent) or input_schema(parent)
    if parent_schema is None:
        return None
    props = schema_properties(parent_schema)
    if field in props:
        found = props[field]
    elif f"{field}s" in props:  # an item of an array: ``answer`` of ``answers``
        found = _spec.resolve(props[f"{field}s"].get("items", {}))
    else:
        return None
    return found if "properties" in found or "allOf" in found else None


def record_limits() -> dict[str, dict[str, dict[str, Any]]]:
    """For each response model named as a schema of the spec: its fields' enum, length, range,
    pattern (with the spec's example) and string format, for the fake's sample records."""
    from cliniko_async import models
    from cliniko_async._model import Input, Model
    from tests import _spec

    schemas = _spec.spec()["components"]["schemas"]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in sorted(dir(models)):
        cls = getattr(models, name)
        if not (isinstance(cls, type) and issubclass(cls, Model)) or issubclass(cls, Input):
            continue
        if name not in schemas:
            continue
        schema = schemas[name]
        if "anyOf" in schema and "properties" not in schema:  # its records are of the first kind
            schema = schema["anyOf"][0]
        fields = {}
        for wire, prop in sorted(schema_properties(schema).items()):
            found_limits = constraints(prop, (*INPUT_KEYS, "format"))
            if found_limits.get("format") not in RECORD_FORMATS:
                found_limits.pop("format", None)
            if "pattern" in found_limits and "example" in prop:
                found_limits["example"] = prop["example"]
            if found_limits:
                fields[wire] = found_limits
        if fields:
            out[name] = fields
    return out


def render_limits(tables: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> str:
    """The tables as Python source; an enum of five or more values that several fields share
    is written once, as a module constant named after the first field that has it."""
    seen: dict[tuple[Any, ...], list[str]] = {}
    for table in tables.values():
        for model in table.values():
            for wire, found in model.items():
                values = found.get("enum")
                if isinstance(values, tuple) and len(values) >= 5:
                    seen.setdefault(values, []).append(wire)
    names: dict[tuple[Any, ...], str] = {}
    for values, wires in seen.items():
        if len(wires) > 1:
            base = f"_{wires[0].upper()}"
            name, n = base, 1
            while name in names.values():
                n += 1
                name = f"{base}_{n}"
            names[values] = name

    def source(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k!r}: {source(v)}" for k, v in value.items()) + "}"
        if isinstance(value, tuple) and value in names:
            return names[value]
        return repr(value)

    shared = "".join(f"{name} = {values!r}\n" for values, name in names.items())
    return shared + "".join(
        f"\n{comment}{name}: dict[str, dict[str, dict[str, Any]]] = {source(table)}\n"
        for (name, table), comment in zip(
            tables.items(),
            (
                "#: Input class name -> wire field name -> the spec's constraints on that field "
                "(enum,\n#: maxLength, minLength, minimum, maximum, exclusiveMinimum, "
                "exclusiveMaximum, pattern).\n",
                "#: Response model name -> wire field name -> the spec's constraints on that "
                "field.\n",
            ),
            strict=True,
        )
    )


if __name__ == "__main__":  # python -m tests.testing.test_fake: regenerate the limits tables
    import subprocess
    import sys
    from pathlib import Path

    import cliniko_async.testing

    target = Path(cliniko_async.testing.__file__).with_name("_limits.py")
    head = target.read_text().split("\n_", 1)[0].split("#: Input class name", 1)[0]
    target.write_text(
        head.rstrip("\n")
        + "\n\n"
        + render_limits({"LIMITS": spec_limits(), "RECORD_LIMITS": record_limits()})
    )
    subprocess.run([sys.executable, "-m", "ruff", "format", str(target)], check=False)
