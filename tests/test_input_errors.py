"""Bad user input raises ConfigurationError before anything is sent; nothing else escapes."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliniko_async import Cliniko, q
from cliniko_async._filters import Filter, FilterType, encode_filters
from cliniko_async.errors import ClinikoError, ConfigurationError
from cliniko_async.models import PatientUpdateInput
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT

SENT: list[httpx.Request] = []


def _answer(request: httpx.Request) -> httpx.Response:
    SENT.append(request)
    return httpx.Response(200, json={"id": "1", "patients": [], "available_times": []})


@pytest.fixture(autouse=True)
def _nothing_sent_yet() -> Iterator[None]:
    SENT.clear()
    yield
    SENT.clear()


def client() -> Cliniko:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    return Cliniko(
        api_key=DEFAULT_API_KEY,
        user_agent=DEFAULT_USER_AGENT,
        base_url="http://127.0.0.1:9/v1",
        http_client=http,
        max_retries=0,
    )


# -- filters --
@pytest.mark.parametrize(
    "build",
    [
        lambda: q("id").one_of(5),  # type: ignore[arg-type]
        lambda: q("id").one_of("123"),  # type: ignore[arg-type]
        lambda: q("id").one_of([]),
        lambda: q("id").one_of([1, "a"]),  # type: ignore[list-item]
        lambda: q("id").one_of([True]),
        lambda: q("id") == {1, "a"},
        lambda: q("id") == [1, None],
        lambda: q("id") == [],
        lambda: q("id") >= object(),  # type: ignore[operator]
        lambda: q("id") >= 1.5,  # type: ignore[operator]
        lambda: q("amount") >= Decimal("NaN"),
        lambda: q("id") == {"a": 1},
        lambda: q(5),  # type: ignore[arg-type]
        lambda: q("First Name"),
        lambda: encode_filters(5),  # type: ignore[arg-type]
        lambda: encode_filters([5]),  # type: ignore[list-item]
        lambda: encode_filters({"id": 1}),
        lambda: encode_filters([q("id") == "١٢"], {"id": FilterType.INTEGER}),
    ],
)
def test_bad_filters_raise_configuration_error(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build()


def test_good_filters_still_encode() -> None:
    assert encode_filters(
        [q("id").one_of([3, 1]), q("id") == {2, 1}, q("id").one_of(iter([4]))]
    ) == [
        "id:=3,1",
        "id:=1,2",
        "id:=4",
    ]


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.decimals(),
    st.dates(),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.booleans()), max_size=4),
    st.frozensets(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)
_ops = st.sampled_from(["==", "!=", ">=", ">", "<=", "<", "one_of", "contains", "like"])
_types = st.sampled_from(list(FilterType))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), _ops, _values, _types)
def test_filters_raise_only_cliniko_errors(
    field: str, op: str, value: Any, ftype: FilterType
) -> None:
    try:
        f = q(field)
        builders: dict[str, Callable[[], Filter]] = {
            "==": lambda: f == value,
            "!=": lambda: f != value,
            ">=": lambda: f >= value,
            ">": lambda: f > value,
            "<=": lambda: f <= value,
            "<": lambda: f < value,
            "one_of": lambda: f.one_of(value),
            "contains": lambda: f.contains(value),
            "like": lambda: f.like(value),
        }
        built = builders[op]()
        encode_filters([built], {field: ftype})
        encode_filters(built)
    except ClinikoError:
        pass


# -- path ids --
@pytest.mark.parametrize(
    "bad",
    ["\u0661\u0662", "12\n", "\uff11", "\uff11\uff12", 0, "0", "00", -1, "-1", "+1", " 1",
     "1 ", "1.0", 1.0, "1e3", True, False, None, "", "abc", 2**63, str(2**63), "9" * 30, b"12",
     [1], Decimal(1)],
)  # fmt: skip
async def test_bad_path_ids_raise_before_anything_is_sent(bad: Any) -> None:
    async with client() as cliniko:
        with pytest.raises(ConfigurationError, match="positive integer id"):
            await cliniko.patients.get(bad)
        with pytest.raises(ConfigurationError):
            await cliniko.patients.update(bad, PatientUpdateInput(first_name="A"))
        with pytest.raises(ConfigurationError):
            cliniko.practitioners.list_for_business(bad)
    assert SENT == []


@pytest.mark.parametrize(
    ("good", "sent"), [(12, "12"), ("12", "12"), ("012", "12"), (2**63 - 1, str(2**63 - 1))]
)
async def test_good_path_ids(good: Any, sent: str) -> None:
    async with client() as cliniko:
        await cliniko.patients.get(good)
    assert SENT[0].url.path == f"/v1/patients/{sent}"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=8),
        st.integers(),
        st.floats(),
        st.none(),
        st.booleans(),
        st.binary(max_size=4),
    )
)
async def test_ids_raise_only_cliniko_errors(value: Any) -> None:
    async with client() as cliniko:
        try:
            await cliniko.patients.get(value)
        except ClinikoError:
            return
    assert SENT[-1].url.path.removeprefix("/v1/patients/").isdigit()


# -- sort --
async def test_sort_fields_with_digits_are_accepted() -> None:
    async with client() as cliniko:
        # any field sorts at runtime; the type names the fields the spec lists (its filters)
        await cliniko.patients.list(sort="address_1,created_at:desc").collect()  # type: ignore[arg-type]
    assert SENT[0].url.params["sort"] == "address_1,created_at:desc"


@pytest.mark.parametrize("sort", ["1abc", "Address", "a b", "a,", "a:down", "a;b", 5])
async def test_bad_sort_is_refused(sort: Any) -> None:
    async with client() as cliniko:
        with pytest.raises(ConfigurationError):
            cliniko.patients.list(sort=sort)
    assert SENT == []


@pytest.mark.parametrize("kwargs", [{"sort": "appointment_start"}, {"order": "desc"}])
async def test_available_times_cannot_be_ordered(kwargs: dict[str, Any]) -> None:
    async with client() as cliniko:
        with pytest.raises(TypeError, match="sort|order"):  # no such parameters
            cliniko.available_times.list(
                1, 2, 3, params={"from": "2026-01-01", "to": "2026-01-02"}, **kwargs
            )
    assert SENT == []


# -- bodies --
_json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.decimals(),
    st.dates(), st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC))), st.times(),
    st.builds(object), st.binary(max_size=3), st.frozensets(st.integers(), max_size=2),
)  # fmt: skip
_bodies = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _bodies, max_size=4))
async def test_mapping_bodies_raise_only_cliniko_errors(body: dict[str, Any]) -> None:
    async with client() as cliniko:
        try:
            await cliniko.patients.create(body)
        except ClinikoError:
            return


async def test_a_mapping_body_for_a_create_needs_the_required_fields() -> None:
    """A plain dict is checked like the model: the create's required fields, by wire name."""
    async with client() as cliniko:
        with pytest.raises(
            ConfigurationError,
            match=r"create\(\) body is missing required field\(s\) first_name, last_name",
        ):
            await cliniko.patients.create({"notes": "no names"})
        with pytest.raises(ConfigurationError, match="last_name"):
            await cliniko.patients.create({"first_name": "Ada", "last_name": None})
        assert SENT == []
        await cliniko.patients.create({"first_name": "Ada", "last_name": "Lovelace"})
        assert len(SENT) == 1
        # An update sends only what is given: no required fields there.
        await cliniko.patients.update(1, {"notes": "only this"})
        assert len(SENT) == 2


@pytest.mark.parametrize("sort", [b"x", [1], ["first_name", 3], {"first_name"}, 5])
async def test_a_sort_that_is_not_strings_is_a_configuration_error(sort: Any) -> None:
    async with client() as cliniko:
        with pytest.raises(ConfigurationError, match="sort"):
            await cliniko.patients.list(sort=sort).collect()
    assert SENT == []


@pytest.mark.parametrize(
    "options",
    [
        {"max_rate_limit_wait": None},
        {"max_rate_limit_wait": "5"},
        {"max_rate_limit_wait": [1]},
        {"max_rate_limit_wait": float("nan")},
        {"max_rate_limit_wait": -1},
        {"max_rate_limit_wait": Decimal("sNaN")},
        {"max_rate_limit_wait": True},
        {"timeout": [1]},
        {"timeout": Decimal("sNaN")},
        {"timeout": float("nan")},
        {"backoff_max": None},
        {"backoff_max": [1]},
        {"backoff_max": -1},
        {"backoff_base": float("nan")},
        {"backoff_base": float("inf")},
    ],
)
async def test_bad_request_options_are_refused_before_sending(options: dict[str, Any]) -> None:
    async with client() as cliniko:
        with pytest.raises(ConfigurationError, match=next(iter(options))):
            await cliniko.with_options(**options).patients.get(1)
    assert SENT == []


async def test_good_request_options_are_accepted() -> None:
    async with client() as cliniko:
        for options in (
            {"max_rate_limit_wait": 0},
            {"max_rate_limit_wait": float("inf")},
            {"timeout": float("inf")},
            {"timeout": httpx.Timeout(5.0)},
            {"backoff_base": 0, "backoff_max": 0.0},
        ):
            await cliniko.with_options(**options).patients.get(1)
    assert len(SENT) == 5


_anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.decimals(),
    st.binary(max_size=3), st.lists(st.integers(), max_size=2), st.builds(object),
    st.just(float("inf")), st.just(-1),
)  # fmt: skip
_OPTION_NAMES = (
    "timeout", "max_retries", "backoff_base", "backoff_max", "max_rate_limit_wait", "deadline",
    "max_response_size", "rate_limit", "base_url", "shard", "user_agent", "api_key", "limiter",
    "http_client", "transport", "options",
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_OPTION_NAMES), _anything, max_size=3))
async def test_public_constructors_raise_only_cliniko_errors(options: dict[str, Any]) -> None:
    """Any value in any of the constructors' keywords: a client, or a ClinikoError at once."""
    from cliniko_async import ClinikoAccounts, SyncCliniko

    base: dict[str, Any] = {"api_key": DEFAULT_API_KEY, "user_agent": DEFAULT_USER_AGENT}
    for make in (Cliniko, SyncCliniko):
        try:
            made = make(**{**base, **options})
        except ClinikoError:
            continue
        if isinstance(made, SyncCliniko):
            made.close()
        else:
            await made.aclose()
    accounts_options = {k: v for k, v in options.items() if k not in ("api_key", "shard")}
    try:
        accounts = ClinikoAccounts(**{"user_agent": DEFAULT_USER_AGENT, **accounts_options})
    except ClinikoError:
        return
    await accounts.aclose()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(("per_page", "order", "sort", "q")), _anything, max_size=3),
    st.dictionaries(st.sampled_from(_OPTION_NAMES[:7]), _anything, max_size=2),
)
async def test_list_and_request_options_raise_only_cliniko_errors(
    kwargs: dict[str, Any], options: dict[str, Any]
) -> None:
    async with client() as cliniko:
        with contextlib.suppress(ClinikoError):
            await cliniko.with_options(**options).patients.list(**kwargs).collect()
