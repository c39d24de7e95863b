"""Schemathesis: Cliniko's own OpenAPI description run against the fake Cliniko served on loopback.

Every operation of ``openapi.yaml`` gets generated requests, valid ones (positive) and invalid
ones (negative), derandomized so each run sends the same requests. Each response must pass
``not_a_server_error`` (no 5xx) and ``response_schema_conformance`` (the body is what the spec
says that status answers). The fake keeps its state across operations in spec order, so what a
create or update stored is served back by the later lists and reads: the fake must refuse (422,
404) what Cliniko refuses, never store it.

Where the spec contradicts Cliniko's own data, the schema is corrected before the run, each
correction listed in :data:`SPEC_CORRECTIONS` with its reason (nothing else is ignored).
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko, serve

from . import _spec

if not _spec.AVAILABLE:  # the suite notes it loudly (conftest); nothing here runs without it
    pytest.skip("../shared/cliniko-api is not available", allow_module_level=True)

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

#: Examples per operation and generation mode: 211 operations x 2 modes x 6 send 2,532
#: requests, ~40 s on a quiet 2-core machine, ~65 s beside another CPU-bound run. (40 examples,
#: 16,880 requests, 200 s, found nothing more when this was written.)
EXAMPLES = 6
POSITIVE = schemathesis.GenerationMode.POSITIVE
MODES = (POSITIVE, schemathesis.GenerationMode.NEGATIVE)
EMAIL_PATTERN = r"^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Z0-9.-]+\.[A-Z]{2,63}$"


def _email_patterns_ignore_case(spec: dict[str, Any]) -> int:
    """Every ``pattern`` equal to :data:`EMAIL_PATTERN` gets lower case letters too."""
    fixed = 0
    for node in _walk(spec):
        if node.get("pattern") == EMAIL_PATTERN:
            node["pattern"] = EMAIL_PATTERN.replace("A-Z", "A-Za-z")
            fixed += 1
    return fixed


def _availability_times_are_hh_mm(spec: dict[str, Any]) -> int:
    """``DailyAvailability.availabilities[].starts_at/ends_at``: ``format: time`` becomes the
    pattern ``HH:MM``."""
    items = spec["components"]["schemas"]["DailyAvailability"]["properties"]["availabilities"]
    fixed = 0
    for name in ("starts_at", "ends_at"):
        prop = items["items"]["properties"][name]
        if prop.pop("format", None) == "time":
            prop["pattern"] = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
            fixed += 1
    return fixed


#: (correction, why the spec is wrong there, how many places it must change). A correction
#: that changes a different number of places fails the test: a newer spec is looked at again.
SPEC_CORRECTIONS: list[tuple[Callable[[dict[str, Any]], int], str, int]] = [
    (
        _email_patterns_ignore_case,
        "the spec's email pattern allows upper case letters only (Ruby's URI::MailTo pattern, "
        "which is matched ignoring case); Cliniko stores and sends emails in lower case, and "
        "the spec's own examples (patients, users) are lower case",
        5,
    ),
    (
        _availability_times_are_hh_mm,
        "JSON Schema's format 'time' is RFC 3339's full-time (seconds and an offset: "
        "'09:00:00Z'); Cliniko sends times of day as 'HH:MM' ('09:00'), as the spec's own "
        "example and daily_availabilities.md show (quirks.md, 'Same field names, different types')",
        2,
    ),
]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def corrected_spec(leave_out: Callable[[dict[str, Any]], int] | None = None) -> dict[str, Any]:
    spec = copy.deepcopy(_spec.spec())
    for correct, reason, places in SPEC_CORRECTIONS:
        if correct is not leave_out:
            assert correct(spec) == places, f"{correct.__name__}: {reason}"
    return spec


def run_schemathesis(
    url: str, schema: Any, *, examples: int = EXAMPLES, only: str | None = None
) -> tuple[int, dict[str, list[str]], dict[str, int]]:
    """Operations run, failures by operation, requests sent by operation."""
    failures: dict[str, list[str]] = {}
    sent: dict[str, int] = {}
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if only is not None and operation.label != only:
                continue
            operations += 1
            for mode in MODES:
                _run_operation(url, session, operation, mode, examples, failures, sent)
    return operations, failures, sent


def _run_operation(
    url: str,
    session: requests.Session,
    operation: Any,
    mode: schemathesis.GenerationMode,
    examples: int,
    failures: dict[str, list[str]],
    sent: dict[str, int],
) -> None:
    token = base64.b64encode(f"{DEFAULT_API_KEY}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "User-Agent": DEFAULT_USER_AGENT}
    label = operation.label
    # Valid requests name records that exist (every table of the fake has ids 1 to 3), so their
    # 2xx answers are checked too; invalid ones keep their generated (mostly missing) ids.
    ids = {p.name: 1 for p in operation.path_parameters} if mode is POSITIVE else None

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: each failure is reported as sent
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=ids))
    def check(case: Any) -> None:
        sent[label] = sent.get(label, 0) + 1
        try:
            case.call_and_validate(
                base_url=url,
                session=session,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance],
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                failures.setdefault(label, []).append(
                    f"{mode.value}: {failure.title}\n{failure.message[:600]}"
                )

    check()


def test_every_operation_of_the_spec_against_the_served_fake() -> None:
    schema = schemathesis.openapi.from_dict(corrected_spec())
    fake = FakeCliniko(rate_limit=(1_000_000, 60.0))
    started = time.monotonic()
    with serve(fake) as url:
        operations, failures, sent = run_schemathesis(url, schema)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {operations} operations, {sum(sent.values())} requests, {elapsed:.1f} s")
    assert operations == len(_spec.operations()) == 211
    assert len(sent) == operations  # every operation got requests
    assert fake.stats().rejected == 0  # no 429: every response was the operation's own
    report = "\n\n".join(f"{op}:\n" + "\n".join(sorted(set(fs))[:3]) for op, fs in failures.items())
    assert not failures, f"{len(failures)} operations failed:\n{report}"


def test_the_run_fails_when_the_fake_serves_what_the_spec_forbids() -> None:
    # The harness bites: a record outside the spec (an enum value it does not list) is reported.
    schema = schemathesis.openapi.from_dict(corrected_spec())
    fake = FakeCliniko(rate_limit=None)
    fake.data["contacts"][1]["type_code"] = 7
    with serve(fake) as url:
        _, failures, _ = run_schemathesis(url, schema, examples=3, only="GET /contacts")
    assert "GET /contacts" in failures
    assert any("type_code" in f for f in failures["GET /contacts"])


@pytest.mark.parametrize(
    ("correction", "operation", "field"),
    [
        (_email_patterns_ignore_case, "GET /patients", "email"),
        (_availability_times_are_hh_mm, "GET /daily_availabilities", "availabilities"),
    ],
    ids=["email", "availability-times"],
)
def test_each_spec_correction_is_needed(
    correction: Callable[[dict[str, Any]], int], operation: str, field: str
) -> None:
    # Without it, the fake's realistic answer fails the operation that needs it: no correction
    # is there for nothing, and none hides anything else.
    assert correction in [c for c, _, _ in SPEC_CORRECTIONS]
    schema = schemathesis.openapi.from_dict(corrected_spec(leave_out=correction))
    with serve(FakeCliniko(rate_limit=None)) as url:
        _, failures, _ = run_schemathesis(url, schema, examples=2, only=operation)
    assert list(failures) == [operation]
    assert all(field in f for f in failures[operation])
