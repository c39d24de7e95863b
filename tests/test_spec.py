"""The client against Cliniko's own API description: every operation exposed, served, typed.

Reads ../shared/cliniko-api (or $CLINIKO_API_DIR) when present: openapi.yaml (the authority),
endpoints.json (adds the operations documented only in the older reference) and the docs'
example bodies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import typing
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliniko_async import models
from cliniko_async._converter import structure, unstructure, without_none
from cliniko_async._model import TAGGED_UNIONS, Model
from cliniko_async._resource import ListOp
from cliniko_async._types import Link, LinkOrLinks
from cliniko_async.errors import ModelDecodeError
from cliniko_async.resources import RESOURCES
from cliniko_async.resources._upload import UploadOp
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko
from cliniko_async.testing._records import sample
from cliniko_async.testing._validate import minimal_body

from . import _spec

ROOT = Path(__file__).resolve().parent.parent

#: Tests that read the API description itself (the rest run everywhere).
needs_spec = pytest.mark.skipif(
    not _spec.AVAILABLE, reason=f"Cliniko's API description is not at {_spec.API_DIR}"
)

DESCRIPTORS = {
    (op.method, op.path): (resource, attr, op)
    for resource, cls in RESOURCES.items()
    for attr, op in cls.operations().items()
    if not isinstance(op, UploadOp)
}


@needs_spec
def test_every_operation_is_exposed_once() -> None:
    in_yaml = {(m, p) for m, p, _ in _spec.operations()}
    documented = {(o["method"], o["path"]) for o in _spec.endpoints()}
    assert len(in_yaml) == 211 and len(in_yaml | documented) == 230
    assert sorted((in_yaml | documented) - set(DESCRIPTORS)) == []
    assert sorted(set(DESCRIPTORS) - (in_yaml | documented)) == []
    for method, path, op in _spec.operations():
        descriptor = DESCRIPTORS[method, path][2]
        assert bool(descriptor.deprecated) == op.get("deprecated", False), (method, path)
    for extra in documented - in_yaml:  # the older reference only: flagged as such
        assert "older API reference" in (DESCRIPTORS[extra][2].deprecated or "")


def test_deprecated_operations_warn_with_the_replacement() -> None:
    from cliniko_async import Cliniko

    cliniko = Cliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT)
    with pytest.warns(DeprecationWarning, match=r"use list\(q=\[q\('patient_id'\) == patient_id"):
        cliniko.invoices.list_for_patient(1)
    with pytest.warns(DeprecationWarning, match=r"use archive\(\)"):
        coro = cliniko.patients.delete(1)
    coro.close()


# -- models against the spec's schemas ----------------------------------------------------------


def _type_ok(hint: Any, schema: dict[str, Any]) -> bool:
    """Does the model's annotation (None stripped) implement the spec's schema?"""
    if not schema:
        return hint is Any
    if "$ref" in schema:
        target = _spec.resolve(schema)
        if "enum" in target and "properties" not in target:
            return bool(hint is str)
        name = schema["$ref"].rsplit("/", 1)[-1]
        return bool(getattr(hint, "__name__", "") == name)
    if "oneOf" in schema or "anyOf" in schema:
        members = schema.get("oneOf") or schema.get("anyOf") or []
        refs = {m["$ref"].rsplit("/", 1)[-1] for m in members}
        return {a.__name__ for a in typing.get_args(hint)} == refs
    kind: str = schema.get("type", "")
    fmt: str | None = schema.get("format")
    if kind == "array":
        args = typing.get_args(hint)
        return typing.get_origin(hint) is tuple and _type_ok(args[0], schema.get("items", {}))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if set(props) == {"links"} or (props and set(props) <= {"self", "next", "previous"}):
            return hint is Link or hint == LinkOrLinks
        if not props:
            return typing.get_origin(hint) is dict
        return isinstance(hint, type) and issubclass(hint, Model) and _fields_ok(hint, schema)
    expected = {
        ("string", "date-time"): dt.datetime,
        ("string", "date"): dt.date,
        ("string", "time"): dt.time,
        ("string", "int64"): int,
        ("string", "decimal"): Decimal,
        ("integer", None): int,
        ("number", None): Decimal,
        ("boolean", None): bool,
    }.get((kind, fmt))
    return bool(hint is (expected or (str if kind == "string" else None)))


def _fields_ok(cls: type[Model], schema: dict[str, Any]) -> bool:
    problems = _field_problems(cls, schema)
    assert not problems, f"{cls.__name__}: {problems}"
    return True


def _field_problems(cls: type[Model], schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    wire = {cls.__renames__.get(a.name, a.name): a.name for a in attrs.fields(cls)}
    wire.pop("extra")
    problems = (
        [f"fields {sorted(set(wire) ^ set(props))} differ"] if set(wire) != set(props) else []
    )
    hints = typing.get_type_hints(cls)
    for name, sub in props.items():
        if name in wire and not _type_ok(without_none(hints[wire[name]]), sub):
            problems.append(f"{name}: {hints[wire[name]]} does not implement {sub}")
    return problems


@needs_spec
@pytest.mark.parametrize(
    "name",
    sorted(n for n, s in _spec.spec()["components"]["schemas"].items() if "properties" in s)
    if _spec.AVAILABLE
    else [],
)
def test_model_fields_and_types_match_the_schema(name: str) -> None:
    cls = getattr(models, name)
    assert issubclass(cls, Model) and attrs.has(cls)
    assert cls.__attrs_attrs__ is not None and "__slots__" in vars(cls)  # frozen, slotted
    schema = _spec.spec()["components"]["schemas"][name]
    assert _field_problems(cls, schema) == []  # type: ignore[arg-type]


@needs_spec
def test_union_schemas_merge_their_members() -> None:
    schemas = _spec.spec()["components"]["schemas"]
    for name in ("Booking", "Communication", "PatientAttachment"):
        members = [_spec.resolve(m) for m in schemas[name]["anyOf"]]
        wanted = set().union(*(m["properties"] for m in members))
        fields = {models.__dict__[name].__renames__.get(a.name, a.name) for a in
                  attrs.fields(getattr(models, name))} - {"extra"}  # fmt: skip
        assert fields == wanted, name


# -- the fake serves every operation, and what it serves is what the spec says ---------------------


def _ids(path: str) -> str:
    return re.sub(r"{\w+}", "1", path)


@pytest.mark.parametrize("key", sorted(DESCRIPTORS), ids=lambda k: f"{k[0]} {k[1]}")
async def test_the_fake_serves_every_operation(key: tuple[str, str]) -> None:
    resource, attr, op = DESCRIPTORS[key]
    fake = FakeCliniko(patients=5, appointments=10)
    params = {"from": "2026-03-02", "to": "2026-03-03"} if "available_time" in op.path else {}
    body = minimal_body(op.body) if op.method in ("POST", "PATCH", "PUT") else None
    if attr == "cancel":
        body = {"cancellation_reason": 50}
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url="http://127.0.0.1/v1", auth=(DEFAULT_API_KEY, "")
    ) as http:
        response = await http.request(
            op.method,
            _ids(op.path).lstrip("/"),
            params=params,
            json=body,
            headers={"User-Agent": DEFAULT_USER_AGENT},
        )
    assert response.is_success, (response.status_code, response.text[:300])
    if op.model is None:
        assert response.status_code == 204 and not response.content
    if _spec.AVAILABLE:  # what the fake sends is what Cliniko's spec says it sends
        spec_key = key if key[1] in _spec.spec()["paths"] else _top_list(resource)
        status, schema = _spec.response_schema(*spec_key)
        assert str(response.status_code) == status
        if schema is None:
            assert not response.content
        else:
            assert _spec.validate(response.json(), schema) == []
    if op.model is None:
        return
    data = response.json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if isinstance(op, ListOp):
            items = data[op.key]
            assert items or attr != "list", "the fake's main lists are never empty"
            for item in items:
                structure(item, op.model)
        elif op.model is not None:
            assert isinstance(structure(data, op.model), op.model)


def _top_list(resource: str) -> tuple[str, str]:
    op = RESOURCES[resource].operations()["list"]
    return op.method, op.path


# -- the docs' own examples -----------------------------------------------------------------------


def _examples() -> list[tuple[str, dict[str, Any]]]:
    if not _spec.AVAILABLE:
        return []
    index = json.loads((_spec.API_DIR / "examples" / "index.json").read_text())
    return sorted((name, meta) for name, meta in index.items() if meta["kind"] == "response")


@needs_spec
def test_only_the_documented_broken_examples_are_left_out() -> None:
    broken = {name for name, meta in _examples() if not meta["valid_json"]}
    invalid_md = (_spec.API_DIR / "examples" / "INVALID.md").read_text()
    assert broken and all(name in invalid_md for name in broken)


@needs_spec
@pytest.mark.parametrize(
    ("name", "meta"), [e for e in _examples() if e[1]["valid_json"]], ids=lambda v: str(v)[:60]
)
def test_every_example_response_validates_and_structures(name: str, meta: dict[str, Any]) -> None:
    data = json.loads((_spec.API_DIR / "examples" / name).read_text())
    method = meta["endpoint_method"]
    method = "PATCH" if method == "PUT" else method
    resource, _, op = DESCRIPTORS[method, meta["path"]]
    spec_key = (method, meta["path"]) if meta["path"] in _spec.spec()["paths"] else None
    schema = _spec.response_schema(*(spec_key or _top_list(resource)))[1]
    if schema is not None:
        assert _spec.validate(data, schema, lenient=True) == []
    if isinstance(op, ListOp):
        for item in data[op.key]:
            structure(item, op.model)
    elif op.model is not None:
        structure(data, op.model)


# -- robustness: Cliniko adds fields, leaves optional ones out ------------------------------------

RESPONSE_MODELS = sorted(
    (c for c in vars(models).values() if isinstance(c, type) and issubclass(c, Model)),
    key=lambda c: c.__name__,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    cls=st.sampled_from(RESPONSE_MODELS),
    n=st.integers(1, 50),
    drop=st.sets(st.integers(0, 200)),
    added=st.dictionaries(st.text(min_size=1, max_size=12).map(lambda s: "new_" + s), _JSON),
)
def test_added_and_missing_fields_never_break_structuring(
    cls: type[Model], n: int, drop: set[int], added: dict[str, Any]
) -> None:
    record = sample(cls, n, resource="things")
    keys = sorted(record)
    for i in drop:
        if keys:
            record.pop(keys[i % len(keys)], None)
    record.update(added)
    if record.get("id") is None and "links" not in record and _has_id(cls):
        with pytest.raises(ModelDecodeError, match="has no id"):  # a record's id is guaranteed
            structure(record, cls)
        return
    first = structure(record, cls)
    assert dict(first.extra) == added
    again = structure(unstructure(first), cls)
    assert again == first and dict(again.extra) == added


def _has_id(cls: type[Model]) -> bool:
    """Whether ``cls`` guarantees an ``id`` (``id: int``, no default)."""
    found = attrs.fields_dict(cls).get("id")
    return found is not None and found.default is attrs.NOTHING


def test_tagged_unions_pick_their_member_and_fall_back() -> None:
    union = models.PatientCustomField
    tag, variants = TAGGED_UNIONS[union]
    assert tag == "type" and variants["date"] is models.PatientCustomFieldDate
    patient = structure(
        {"id": "1", "custom_fields": {"sections": [{"token": "t", "fields": [
            {"type": "date", "token": "a", "value": "2026-01-02"},
            {"type": "rating", "token": "b", "value": "5", "stars": 5},
        ]}]}},
        models.Patient,
    )  # fmt: skip
    assert patient.custom_fields is not None
    sections = patient.custom_fields.sections
    assert sections is not None and sections[0].fields is not None
    date_field, new_field = sections[0].fields
    assert isinstance(date_field, models.PatientCustomFieldDate)
    assert date_field.value == dt.date(2026, 1, 2)
    assert isinstance(new_field, models.PatientCustomFieldText)  # a new kind: kept, not lost
    assert new_field.type == "rating" and new_field.extra == {"stars": 5}


@needs_spec
def test_generated_code_and_readme_table_are_fresh() -> None:
    """tools/generate.py --check: the committed models, resources and README table match."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CLINIKO_API_DIR": str(_spec.API_DIR)},
    )
    assert done.returncode == 0, done.stderr
