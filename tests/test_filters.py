"""q() filters: operators per type, encoding, validation before anything is sent."""

from __future__ import annotations

import datetime as dt
import inspect
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cliniko_async import ConfigurationError, FilterType, q
from cliniko_async._filters import encode_filters

from . import _spec

UTC = dt.UTC
KNOWN = {
    "first_name": FilterType.STRING,
    "id": FilterType.INTEGER,
    "date_of_birth": FilterType.DATE,
    "created_at": FilterType.DATETIME,
    "accepted_privacy_policy": FilterType.BOOLEAN,
    "patient_ids": FilterType.ARRAY,
}


def test_operators_encode() -> None:
    aest = dt.timezone(dt.timedelta(hours=10))
    assert encode_filters(
        [
            q("first_name") == "Jo",
            q("first_name") != "Jo",
            q("first_name").contains("o"),
            q("first_name").like("J%n"),
            q("id").one_of([3, 1, 2]),
            q("id") == [5, 4],
            q("id") >= 7,
            q("date_of_birth") < dt.date(2000, 5, 1),
            q("date_of_birth") == "****-05-**",
            q("created_at") >= dt.datetime(2026, 1, 1, 10, 0, tzinfo=aest),
            q("created_at").any(),
            q("accepted_privacy_policy") == True,  # noqa: E712
            q("patient_ids").contains(12),
            q("first_name").is_null(),
            q("first_name").not_null(),
            "first_name:~Smi",
        ],
        KNOWN,
    ) == [
        "first_name:=Jo",
        "first_name:!=Jo",
        "first_name:~o",
        "first_name:~~J%n",
        "id:=3,1,2",
        "id:=4,5",
        "id:>=7",
        "date_of_birth:<2000-05-01",
        "date_of_birth:=****-05-**",
        "created_at:>=2026-01-01T00:00:00Z",
        "created_at:*",
        "accepted_privacy_policy:=true",
        "patient_ids:~12",
        "first_name:!?",
        "first_name:?",
        "first_name:~Smi",
    ]


def test_url_encoding_of_special_characters() -> None:
    params = [
        ("q[]", f)
        for f in encode_filters(
            [q("first_name").like("50%_off~"), q("id") > 3, q("id").one_of([1, 2])]
        )
    ]
    url = httpx.URL("https://api.au1.cliniko.com/v1/patients", params=params)
    raw = urlsplit(str(url)).query
    assert "q%5B%5D=" in raw and "%25" in raw and "%3E" in raw and "%2C" in raw
    assert parse_qsl(raw) == [
        ("q[]", "first_name:~~50%_off~"),
        ("q[]", "id:>3"),
        ("q[]", "id:=1,2"),
    ]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (lambda: q("created_at") == dt.datetime(2026, 1, 1, tzinfo=UTC), "not valid for datetime"),
        (lambda: q("created_at") >= dt.datetime(2026, 1, 1), "naive datetime"),
        (lambda: q("created_at") >= dt.date(2026, 1, 1), "does not suit"),
        (lambda: q("first_name") > "a", "not valid for string"),
        (lambda: q("id").like("1%"), "not valid for integer"),
        (lambda: q("nope") == 1, "not a filterable field"),
        (lambda: q("date_of_birth") == "2020-13", "does not suit"),
        (lambda: q("accepted_privacy_policy") == "yes", "does not suit"),
        (lambda: "first_name:^=x", "malformed filter"),
        (lambda: "first_name", "malformed filter"),
    ],
)
def test_bad_filters_raise_clear_errors(flt: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        encode_filters([flt()], KNOWN)  # type: ignore[operator]


def test_invalid_field_name_and_operator() -> None:
    from cliniko_async import Filter

    with pytest.raises(ConfigurationError, match="field name"):
        q("first name")
    with pytest.raises(ConfigurationError, match="unknown filter operator"):
        Filter("id", "=~", 1)


def test_decimal_and_single_filter() -> None:
    assert encode_filters(q("id") >= Decimal(3), KNOWN) == ["id:>=3"]
    assert encode_filters("id:=1") == ["id:=1"]
    assert encode_filters(None) == []


# -- operations that take no filters (Cliniko documents no q[] for them) -----------------------
def _query_ops() -> list[tuple[str, str, Any]]:
    from cliniko_async._resource import GetOp, ListOp
    from cliniko_async.resources import RESOURCES

    return [
        (resource, attr, op)
        for resource, cls in RESOURCES.items()
        for attr, op in cls.operations().items()
        if isinstance(op, GetOp | ListOp)
    ]


NO_FILTERS = [(r, a, op) for r, a, op in _query_ops() if not op.filters]


def test_twenty_two_get_operations_take_no_filters() -> None:
    assert len(NO_FILTERS) == 22
    assert {f"{r}.{a}" for r, a, _ in NO_FILTERS} >= {
        "practitioners.get", "services.list", "settings.get", "users.get_authenticated_user",
        "available_times.list", "individual_appointments.conflicts",
    }  # fmt: skip


@pytest.mark.skipif(not _spec.AVAILABLE, reason="../shared/cliniko-api is not available")
def test_an_operation_takes_filters_exactly_where_the_spec_documents_q() -> None:
    spec = _spec.spec()
    for resource, attr, op in _query_ops():
        item = spec["paths"].get(op.path)
        if item is None or "get" not in item:
            continue  # documented only in the older reference
        params = [*item.get("parameters", []), *item["get"].get("parameters", [])]
        takes_q = any(p.get("name") in ("q", "q[]") for p in params)
        assert bool(op.filters) == takes_q, f"{resource}.{attr} ({op.path})"


@pytest.mark.parametrize(
    ("resource", "attr", "op"), NO_FILTERS, ids=[f"{r}.{a}" for r, a, _ in NO_FILTERS]
)
@pytest.mark.parametrize("flt", [q("id") == 1, "id:=1", [q("archived_at").any()]], ids=str)
async def test_filters_on_an_operation_without_a_filter_table_are_refused_before_sending(
    resource: str, attr: str, op: Any, flt: Any
) -> None:
    from cliniko_async import Cliniko
    from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko

    fake = FakeCliniko(patients=2, appointments=2, rate_limit=None)
    ids = [1] * op.path.count("{")
    params = dict.fromkeys(op.required_params, "2026-01-05") or None
    extra = {"params": params} if params else {}
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT,
        base_url="https://api.au1.cliniko.com/v1", transport=fake.transport(),
    ) as cliniko:  # fmt: skip
        bound = getattr(cliniko, resource)
        method = getattr(bound, attr)
        if "q" in inspect.signature(method).parameters:  # the lists: q= is in the signature

            async def call(flt: Any) -> None:
                async for _ in method(*ids, q=flt, **extra):
                    break

        else:  # a single GET has no q= (a type error); the pipeline under it refuses one too

            async def call(flt: Any) -> None:
                await bound._get(op, tuple(ids), flt, params)

        with pytest.raises(ConfigurationError) as info:
            await call(flt)
        await call(None)  # without the filter the same call goes through: only q= was refused
    message = str(info.value)
    assert message.startswith(f"{op.qualname()}() takes no filters"), message  # names the method
    assert "id:=1" in message or "archived_at:*" in message
    assert "Leave q= out" in message
    assert fake.requests == 1  # the call without q=; nothing was sent for the refused one


def test_an_empty_filter_table_refuses_but_an_unknown_one_checks_only_the_form() -> None:
    with pytest.raises(ConfigurationError, match=r"^users\.get\(\) takes no filters"):
        encode_filters("email:~x", {}, operation="users.get()")
    assert encode_filters([], {}) == [] and encode_filters(None, {}) == []
    assert encode_filters("email:~x") == ["email:~x"]  # no table known: the form only
