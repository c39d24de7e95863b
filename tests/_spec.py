"""Cliniko's API description (../shared/cliniko-api) for the coverage tests, and a validator.

The validator covers the part of OpenAPI 3.0 the spec uses: $ref, type, format, nullable,
enum, properties, items, anyOf/oneOf. ``lenient`` accepts the quirks the docs' own examples
show (ids as numbers, "" for an empty date, money as numbers), which the converter handles.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

API_DIR = Path(
    os.environ.get(
        "CLINIKO_API_DIR", Path(__file__).resolve().parents[2] / "shared" / "cliniko-api"
    )
)
AVAILABLE = (API_DIR / "openapi.yaml").exists()
METHODS = ("get", "post", "patch", "put", "delete")


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((API_DIR / "openapi.yaml").read_text())
    return loaded


@cache
def endpoints() -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = json.loads((API_DIR / "endpoints.json").read_text())["operations"]
    return ops


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation in openapi.yaml."""
    return [
        (method.upper(), path, op)
        for path, item in spec()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def response_schema(method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """The 2xx status and its JSON schema (None: no body)."""
    op = spec()["paths"][path][method.lower()]
    for code, response in op["responses"].items():
        if code.startswith("2"):
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            return code, schema
    raise AssertionError(f"{method} {path} has no 2xx response")


_INT64 = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def validate(
    value: Any, schema: dict[str, Any], where: str = "$", lenient: bool = False
) -> list[str]:
    """Every way ``value`` breaks ``schema`` (an empty list when it conforms)."""
    schema = resolve(schema)
    if value is None:
        return [] if schema.get("nullable") or not schema else [f"{where}: null not allowed"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            results = [validate(value, m, where, lenient) for m in schema[key]]
            return [] if any(not r for r in results) else min(results, key=len)
    kind = schema.get("type")
    fmt = schema.get("format")
    errors: list[str] = []
    if kind == "object" or "properties" in schema:
        if lenient and isinstance(value, list) and set(schema.get("properties", {})) == {"links"}:
            return [e for v in value for e in validate(v, schema, where, lenient)]  # quirk 3.3
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += validate(value[name], sub, f"{where}.{name}", lenient)
        return errors
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{i}]", lenient)
        return errors
    if kind == "string":
        if lenient and fmt in ("int64", "decimal") and isinstance(value, int | float):
            return []
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {value!r}"]
        if lenient and value == "" and fmt in ("date", "date-time"):
            return []
        if "enum" in schema and value not in schema["enum"] and not lenient:
            return [f"{where}: {value!r} not in {schema['enum']}"]
        checks = {
            "int64": lambda v: bool(_INT64.match(v)),
            "decimal": lambda v: bool(_DECIMAL.match(v)),
            "date": lambda v: bool(dt.date.fromisoformat(v)),
            "date-time": lambda v: bool(dt.datetime.fromisoformat(v.replace("Z", "+00:00"))),
            "time": lambda v: bool(dt.time.fromisoformat(v)),
        }
        try:
            ok = checks[fmt](value) if fmt in checks else True
        except ValueError:
            ok = False
        return [] if ok else [f"{where}: {value!r} is not a {fmt}"]
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if lenient and isinstance(value, str):
            ok = bool(_INT64.match(value))
        return [] if ok else [f"{where}: expected an integer, got {value!r}"]
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if lenient and isinstance(value, str):  # money as a decimal string (quirks 4.1)
            ok = bool(_DECIMAL.match(value))
        return [] if ok else [f"{where}: expected a number, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
    return []
