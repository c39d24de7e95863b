"""``--filter`` and ``--since`` expressions, turned into the library's filters."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from .._filters import Filter, FilterType, FilterValue, q
from ..errors import ConfigurationError

__all__ = ["parse_datetime", "parse_filter"]

_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|~~|=|>|<|~)\s*(.*?)\s*$", re.DOTALL)
OPERATORS = "=, !=, >, >=, <, <=, ~ (contains), ~~ (like, % as wildcard)"


def parse_datetime(text: str, what: str) -> dt.datetime:
    """An aware datetime from ISO 8601 text (``Z`` or an offset required)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{what} {text!r} is not an ISO 8601 datetime such as 2026-01-31T09:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise ConfigurationError(
            f"{what} {text!r} has no time zone: add Z (UTC) or an offset such as +10:00"
        )
    return value


def parse_filter(expr: str, known: Mapping[str, FilterType]) -> Filter:
    """``last_name=Smith``, ``id>=100``, ``created_at>2026-01-01T00:00:00Z``, ``email~@acme``."""
    found = _EXPR.match(expr)
    if found is None:
        raise ConfigurationError(
            f"--filter {expr!r} is not FIELD OPERATOR VALUE (operators: {OPERATORS})"
        )
    name, op, raw = found.groups()
    ftype = known.get(name)
    if ftype is None:
        raise ConfigurationError(
            f"--filter {expr!r}: {name!r} is not filterable here; filterable: "
            f"{', '.join(sorted(known)) or 'nothing'}"
        )
    field = q(name)
    if op == "~":
        return field.contains(raw)
    if op == "~~":
        return field.like(raw)
    value = _value(raw, ftype, expr)
    comparisons = {
        "=": field.__eq__, "!=": field.__ne__, ">=": field.__ge__, ">": field.__gt__,
        "<=": field.__le__, "<": field.__lt__,
    }  # fmt: skip
    result: Filter = comparisons[op](value)
    return result


def _value(raw: str, ftype: FilterType, expr: str) -> FilterValue:
    try:
        if ftype is FilterType.INTEGER:
            return int(raw)
        if ftype is FilterType.DATE:
            return dt.date.fromisoformat(raw)
        if ftype is FilterType.BOOLEAN and raw in ("true", "false"):
            return raw == "true"
    except ValueError:
        pass
    else:
        if ftype is FilterType.DATETIME:
            return parse_datetime(raw, f"--filter {expr!r}:")
        if ftype is not FilterType.BOOLEAN:
            return raw
    kind = {FilterType.INTEGER: "an integer", FilterType.DATE: "a date (YYYY-MM-DD)",
            FilterType.BOOLEAN: "true or false"}[ftype]  # fmt: skip
    raise ConfigurationError(f"--filter {expr!r}: the value must be {kind}")
