"""Faults and bad input: exactly-once export under faults; fuzzed parsers raise only our errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliniko_async import Cliniko, ClinikoError, ConfigurationError, Filter, RateLimit, q
from cliniko_async._config import ApiKey
from cliniko_async._filters import encode_filters
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, FaultRule, Faults

from ._mockserver import BASE_URL, USER_AGENT


@pytest.mark.looptime
async def test_export_of_10000_under_faults_is_exactly_once() -> None:
    rules = [
        FaultRule(path="/v1/patients", error_rate=0.10, drop_rate=0.05, latency=(0.01, 0.2)),
    ]
    fake = FakeCliniko(
        patients=10_000, appointments=0, rate_limit=(200, 60.0), faults=Faults(rules, seed=9)
    )
    http = httpx.AsyncClient(transport=fake.transport())
    async with Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http,
        max_retries=8, rate_limit=RateLimit(200, 60.0),
    ) as cliniko:  # fmt: skip
        ids = [p.id async for p in cliniko.patients.list(per_page=100, sort="id")]
    await http.aclose()
    assert ids == list(range(1, 10_001))  # every record exactly once, in order
    stats = fake.stats()
    assert stats.rejected == 0
    assert len(stats.accepted) > 100  # the faults really happened and were retried


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.one_of(st.none(), st.text(max_size=6)))
def test_fuzzed_keys_and_shards_raise_only_configuration_errors(
    raw: str, shard: str | None
) -> None:
    message = ""
    try:
        key = ApiKey.parse(raw, shard=shard)
    except ConfigurationError as exc:
        message = str(exc)
    else:
        assert key.shard.isalnum() and len(key.shard) <= 4  # never a host-changing shard
    assert raw not in message or len(raw) < 8  # the key is not echoed back


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=20),
    st.sampled_from(["==", "!=", ">=", ">", "<=", "<", "contains", "like", "raw"]),
    st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.dates(), st.datetimes()),
)
def test_fuzzed_filters_raise_only_our_errors(field: str, op: str, value: Any) -> None:
    try:
        if op == "raw":
            encode_filters([f"{field}:{value}"])
            return
        f = q(field)
        makers: dict[str, Callable[[], Filter]] = {
            "==": lambda: f == value, "!=": lambda: f != value, ">=": lambda: f >= value,
            ">": lambda: f > value, "<=": lambda: f <= value, "<": lambda: f < value,
            "contains": lambda: f.contains(value), "like": lambda: f.like(value),
        }  # fmt: skip
        built = makers[op]()
        encode_filters([built])
    except ClinikoError:
        pass
