"""Filters (``q[]=field:OPvalue``), built with :func:`q`, validated before anything is sent."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TypeAlias

import attrs

from .errors import ConfigurationError

__all__ = ["Filter", "FilterType", "FilterValue", "QueryFilters", "encode_filters", "q"]

FilterValue: TypeAlias = "str | int | Decimal | dt.date | dt.datetime | bool"


class FilterType(enum.Enum):
    """The filter type of a field, which decides the operators it accepts."""

    STRING = "string"
    INTEGER = "integer"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    ARRAY = "array"


_NULL_OPS = frozenset({"?", "!?"})
#: Operators per filter type (Cliniko's "Filtering Results"; ``?``/``!?`` are not-null/null).
OPERATORS: Mapping[FilterType, frozenset[str]] = {
    FilterType.STRING: frozenset({"=", "!=", "~", "~~"}) | _NULL_OPS,
    FilterType.INTEGER: frozenset({"=", "!=", ">=", ">", "<=", "<"}) | _NULL_OPS,
    FilterType.DATE: frozenset({"=", ">=", ">", "<=", "<"}) | _NULL_OPS,
    FilterType.DATETIME: frozenset({">=", ">", "<=", "<", "*"}) | _NULL_OPS,
    FilterType.BOOLEAN: frozenset({"=", "!="}) | _NULL_OPS,
    FilterType.ARRAY: frozenset({"~"}) | _NULL_OPS,
}
_ALL_OPERATORS = frozenset().union(*OPERATORS.values())
_DATE_WILDCARD = re.compile(r"^[\d*]{4}-[\d*]{2}-[\d*]{2}$")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")


@attrs.frozen(slots=True)
class Filter:
    """One condition: ``field``, operator ``op`` and a value (None for ``?``, ``!?``, ``*``)."""

    field: str
    op: str
    value: FilterValue | tuple[int, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.op, str) or self.op not in _ALL_OPERATORS:
            raise ConfigurationError(
                f"unknown filter operator {self.op!r} for field {self.field!r}; "
                f"use one of {', '.join(sorted(_ALL_OPERATORS))}"
            )
        if not isinstance(self.field, str) or not _FIELD.match(self.field):
            raise ConfigurationError(
                f"invalid filter field name {self.field!r}: use the API's snake_case field name"
            )
        _check_value(self.field, self.value)

    def encode(self) -> str:
        """The ``field:OPvalue`` string sent as one ``q[]`` parameter (before URL encoding)."""
        return f"{self.field}:{self.op}{_encode_value(self.field, self.value)}"

    def check_type(self, ftype: FilterType) -> None:
        """Raise :class:`ConfigurationError` if this operator or value does not suit ``ftype``."""
        if self.op not in OPERATORS[ftype]:
            allowed = " ".join(sorted(OPERATORS[ftype]))
            raise ConfigurationError(
                f"operator {self.op!r} is not valid for {ftype.value} field {self.field!r}; "
                f"{ftype.value} fields accept: {allowed}"
            )
        value = self.value
        if value is None or self.op in _NULL_OPS:
            return
        ok: bool
        if ftype is FilterType.DATETIME:
            ok = isinstance(value, dt.datetime)
        elif ftype is FilterType.DATE:
            ok = (isinstance(value, dt.date) and not isinstance(value, dt.datetime)) or (
                isinstance(value, str) and bool(_DATE_WILDCARD.match(value))
            )
        elif ftype is FilterType.INTEGER:
            ok = isinstance(value, int | tuple | Decimal) and not isinstance(value, bool)
            if isinstance(value, str):
                ok = value.isascii() and value.isdigit()
        elif ftype is FilterType.BOOLEAN:
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str | int) and not isinstance(value, bool)
        if not ok:
            raise ConfigurationError(
                f"value {value!r} does not suit {ftype.value} field {self.field!r}"
                + (
                    "; pass a datetime.date or a 'YYYY-MM-DD' pattern with * wildcards"
                    if ftype is FilterType.DATE
                    else ""
                )
            )


def _check_value(field: str, value: object) -> None:
    """Refuse, at construction, a value no filter type can send."""
    if value is None or isinstance(value, str | bool | int | dt.date):
        return
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConfigurationError(f"the filter on {field!r} cannot compare with {value!r}")
        return
    if isinstance(value, tuple):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigurationError(
                f"the list in the filter on {field!r} must hold one or more integers, "
                f"got {value!r}"[:300]
            )
        return
    raise ConfigurationError(
        f"the filter on {field!r} takes a str, int, Decimal, date, datetime or bool, not "
        f"{type(value).__name__}"
    )


def _int_list(field: str, values: object, *, sort: bool = False) -> tuple[int, ...]:
    """``values`` (any iterable of ints, not a string) as a tuple, or ConfigurationError."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"one_of() on {field!r} takes a list of integers, e.g. q({field!r}).one_of([1, 2]), "
            f"got {type(values).__name__}"
        )
    items = tuple(values)
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ConfigurationError(
            f"the list in the filter on {field!r} must hold one or more integers, got {items!r}"[
                :300
            ]
        )
    return tuple(sorted(items)) if sort else items


def _encode_value(field: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(
                f"naive datetime {value.isoformat()} in the filter on {field!r}: Cliniko compares "
                "in UTC, so pass an aware datetime, e.g. datetime(..., tzinfo=datetime.UTC)"
            )
        utc = value.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None)
        return utc.isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigurationError(
                f"the list in the filter on {field!r} must hold one or more integers"
            )
        return ",".join(str(v) for v in value)
    return str(value)


class _Field:
    """The left-hand side of a filter: ``q("field")`` followed by an operator."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"q({self.name!r})"

    def __eq__(self, value: object) -> Filter:  # type: ignore[override]
        if isinstance(value, list | tuple | set | frozenset):
            return Filter(self.name, "=", _int_list(self.name, value, sort=True))
        return Filter(self.name, "=", value)  # type: ignore[arg-type]

    def __ne__(self, value: object) -> Filter:  # type: ignore[override]
        return Filter(self.name, "!=", value)  # type: ignore[arg-type]

    def __ge__(self, value: FilterValue) -> Filter:
        return Filter(self.name, ">=", value)

    def __gt__(self, value: FilterValue) -> Filter:
        return Filter(self.name, ">", value)

    def __le__(self, value: FilterValue) -> Filter:
        return Filter(self.name, "<=", value)

    def __lt__(self, value: FilterValue) -> Filter:
        return Filter(self.name, "<", value)

    __hash__ = None  # type: ignore[assignment]

    def one_of(self, values: Iterable[int]) -> Filter:
        """``field:=1,2,3`` (integer fields)."""
        return Filter(self.name, "=", _int_list(self.name, values))

    def contains(self, value: str | int) -> Filter:
        """``field:~value``: a string containing ``value``, or an array holding it."""
        return Filter(self.name, "~", value)

    def like(self, pattern: str) -> Filter:
        """``field:~~pattern``: SQL-like wildcard match, ``%`` matching any run of characters."""
        return Filter(self.name, "~~", pattern)

    def any(self) -> Filter:
        """``field:*``: any value (e.g. ``archived_at`` to include archived records)."""
        return Filter(self.name, "*")

    def is_null(self) -> Filter:
        """``field:!?``: the field has no value."""
        return Filter(self.name, "!?")

    def not_null(self) -> Filter:
        """``field:?``: the field has a value."""
        return Filter(self.name, "?")


def q(field: str) -> _Field:
    """Start a filter on ``field``: ``q("starts_at") >= datetime(2026, 1, 1, tzinfo=UTC)``.

    Operators: ``==``, ``!=``, ``>=``, ``>``, ``<=``, ``<``, and the methods ``one_of``,
    ``contains``, ``like``, ``any``, ``is_null``, ``not_null``.
    """
    if not isinstance(field, str) or not _FIELD.match(field):
        raise ConfigurationError(
            f"invalid filter field name {field!r}: use the API's snake_case field name"
        )
    return _Field(field)


QueryFilters: TypeAlias = "Iterable[Filter | str] | Filter | str"


def encode_filters(
    filters: QueryFilters | None,
    known: Mapping[str, FilterType] | None = None,
    *,
    operation: str | None = None,
) -> list[str]:
    """Validate ``filters`` against the operation's ``known`` field types and encode them.

    ``known`` is the operation's filter table: None when it is not known (nothing is checked
    but the form), an empty mapping when the operation takes no filters at all (Cliniko documents
    no ``q[]`` for it: any filter, raw strings included, is refused before anything is sent).
    Raw strings (``"first_name:~Jo"``) pass through unchanged, with their operator checked.
    ``operation`` names the operation in errors (``practitioners.get()``).
    """
    if filters is None:
        return []
    if isinstance(filters, Filter | str):
        items: Sequence[Filter | str] = [filters]
    elif isinstance(filters, Iterable) and not isinstance(filters, bytes | Mapping):
        items = list(filters)
    else:
        raise ConfigurationError(
            f"q= takes q(...) conditions or 'field:OPvalue' strings (one or a list), got "
            f"{type(filters).__name__}"
        )
    if known is not None and not known and items:
        _refuse_filters(items[0], operation)
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(_check_raw(item))
            continue
        if not isinstance(item, Filter):
            raise ConfigurationError(
                f"filters must be q(...) conditions or 'field:OPvalue' strings, got {item!r}"
            )
        if known:
            ftype = known.get(item.field)
            if ftype is None:
                raise ConfigurationError(
                    f"{item.field!r} is not a filterable field of this list; filterable: "
                    f"{', '.join(sorted(known))} (a raw 'field:OPvalue' string skips this check)"
                )
            item.check_type(ftype)
        out.append(item.encode())
    return out


def _refuse_filters(first: object, operation: str | None) -> None:
    shown = first.encode() if isinstance(first, Filter) else first
    raise ConfigurationError(
        f"{operation or 'this operation'} takes no filters, got q={shown!r}"[:300]
        + ": Cliniko documents no q[] for it, so a filter would be refused or silently ignored. "
        "Leave q= out and check the fields of what comes back yourself, or filter a list "
        "that documents the field (its filterable fields are in docs/filters.md)"
    )


_RAW = re.compile(r"^([a-z_][a-z0-9_]*):(!\?|\?|~~|~|!=|>=|<=|=|>|<|\*)(.*)$", re.DOTALL)


def _check_raw(raw: str) -> str:
    if not _RAW.match(raw):
        raise ConfigurationError(
            f"malformed filter {raw!r}: write 'field:OPvalue' with an operator from "
            f"{', '.join(sorted(_ALL_OPERATORS))}, e.g. 'last_name:~Smith'"
        )
    return raw
