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
