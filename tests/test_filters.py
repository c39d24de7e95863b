"""q() filters: operators per type, encoding, validation before anything is sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from cliniko_async import ConfigurationError, FilterType, q
from cliniko_async._filters import encode_filters

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
