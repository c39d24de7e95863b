"""``--filter`` and ``--since`` expressions, turned into the library's filters."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from .._filters import Filter, FilterType, FilterValue, encode_filters, q
from ..errors import ConfigurationError

__all__ = ["OPERATORS", "parse_datetime", "parse_filter", "since_filter"]

_EXPR = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|!\?|~~|=|>|<|~|\?|\*)\s*(.*?)\s*$", re.DOTALL
)
_RAW = re.compile(r"^[a-z_][a-z0-9_]*:")  # the API's own form, sent unchecked: last_name:~Sm
_NO_VALUE = frozenset({"?", "!?", "*"})
OPERATORS = (
    "=, !=, >, >=, <, <=, ~ (contains), ~~ (like, % as wildcard), "
    "? (has a value), !? (has none), * (any, e.g. archived_at*)"
)


def parse_datetime(text: str, what: str) -> dt.datetime:
    """An aware datetime from ISO 8601 text (``Z`` or an offset required)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{what} {text!r} is not an ISO 8601 datetime such as 2026-01-31T09:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{what} {text!r} has no time zone: add Z (UTC) or an offset such as +10:00"
        )
    return value


def parse_filter(expr: str, known: Mapping[str, FilterType]) -> Filter | str:
    """``last_name=Smith``, ``id>=100``, ``created_at>2026-01-01T00:00:00Z``, ``email~@acme``.

    The field and the operator are checked by the library itself (``encode_filters`` against
    the list's filter types), so the command and the API reject the same things, with the
    library's :class:`ConfigurationError` message. The API's raw form ``field:OPvalue`` is
    passed through as the library does (operator checked, field not).
    """
    if _RAW.match(expr):
        try:
            encode_filters([expr])
        except ConfigurationError as exc:
            raise ConfigurationError(f"--filter {expr!r}: {exc}") from None
        return expr
    found = _EXPR.match(expr)
    if found is None:
        raise ConfigurationError(
            f"--filter {expr!r} is not FIELD OPERATOR VALUE (operators: {OPERATORS})"
        )
    name, op, raw = found.groups()
    _check_doubled_operator(expr, name, op, raw)
    if op in _NO_VALUE and raw:
        raise ConfigurationError(f"--filter {expr!r}: the operator {op} takes no value")
    if not known:
        raise ConfigurationError(f"--filter {expr!r}: this list takes no filters")
    ftype = known.get(name)
    value: FilterValue | tuple[int, ...] | None = None
    if ftype is not None and op not in _NO_VALUE:
        value = _value(raw, ftype, op, expr)
    elif op not in _NO_VALUE:
        value = raw
    try:
        result = Filter(q(name).name, op, value)
        encode_filters([result], known)  # unknown field, or an operator the type lacks
    except ConfigurationError as exc:
        raise ConfigurationError(f"--filter {expr!r}: {exc}") from None
    return result


#: Operators people type that are not ours, and what to type instead.
_MEANT = {"==": "=", "=>": ">=", "=<": "<=", "<>": "!=", "=~": "~", "~=": "~", "!==": "!="}


def _check_doubled_operator(expr: str, name: str, op: str, raw: str) -> None:
    """``last_name==Turing`` is not ``=`` with the value ``=Turing``: say what to type."""
    if not raw or raw[0] not in "=<>!~":  # (a leading * is a date wildcard: ****-05-**)
        return
    value = raw.lstrip("=<>!~")
    typed = op + raw[: len(raw) - len(value)]
    meant = _MEANT.get(typed)
    hint = f"use {meant}: {name}{meant}{value}" if meant else f"operators: {OPERATORS}"
    raise ConfigurationError(
        f"--filter {expr!r}: {typed} is not an operator ({hint}); a value that really starts "
        f"with {raw[0]!r} goes in the API's own form, {name}:{op}{raw}"
    )


def since_filter(text: str, known: Mapping[str, FilterType]) -> Filter:
    """``--since DATETIME``: ``updated_at >= DATETIME`` (aware datetimes only)."""
    value = parse_datetime(text, "--since")
    if "updated_at" not in known:
        raise ConfigurationError("--since: this list has no updated_at filter")
    return Filter("updated_at", ">=", value)


def _value(raw: str, ftype: FilterType, op: str, expr: str) -> FilterValue | tuple[int, ...]:
    if ftype is FilterType.DATETIME:
        return parse_datetime(raw, f"--filter {expr!r}:")
    try:
        if ftype is FilterType.INTEGER and op == "=" and "," in raw:
            return tuple(int(v) for v in raw.split(","))  # id=1,2,3: any of them
        if ftype is FilterType.INTEGER:
            return int(raw)
        if ftype is FilterType.DATE:
            return raw if "*" in raw else dt.date.fromisoformat(raw)  # 2026-**-01 wildcards
    except ValueError:
        kind = "an integer" if ftype is FilterType.INTEGER else "a date (YYYY-MM-DD)"
        raise ConfigurationError(f"--filter {expr!r}: the value must be {kind}") from None
    if ftype is FilterType.BOOLEAN:
        if raw not in ("true", "false"):
            raise ConfigurationError(f"--filter {expr!r}: the value must be true or false")
        return raw == "true"
    return raw
