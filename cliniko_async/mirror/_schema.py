"""Typed columns from the models, and a record projected onto them.

Every field of a resource's model becomes a column: ids and integers ``INTEGER`` (SQLite's and
PostgreSQL's 64-bit integers hold Cliniko's int64 ids exactly), datetimes ``TEXT`` in UTC
(``2026-01-02T03:04:05Z``), money and other decimals ``TEXT`` (exact), links ``<name>_id``
(the referenced id), nested objects and arrays ``TEXT`` holding their JSON. The record as
Cliniko sent it is kept beside the columns in ``_raw``.
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from decimal import Decimal
from typing import Any, Literal

import attrs

from .._converter import without_none
from .._model import Model
from .._types import Link

__all__ = ["Column", "columns", "dumps", "project", "record_id"]

SqlType = Literal["INTEGER", "TEXT", "REAL"]
Kind = Literal["id", "int", "bool", "text", "datetime", "date", "decimal", "real", "link", "json"]
#: Bookkeeping columns every table has (not from the model).
META = ("_raw", "_deleted_at")


@attrs.frozen
class Column:
    name: str  # the column's name in the database
    attr: str  # the model attribute it is read from
    wire: str  # the key in Cliniko's JSON
    kind: Kind

    @property
    def sql_type(self) -> SqlType:
        if self.kind in ("id", "int", "bool", "link"):
            return "INTEGER"
        return "REAL" if self.kind == "real" else "TEXT"


def _kind(t: Any) -> Kind:
    t = without_none(t)
    if t is Link:
        return "link"
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is str:
        return "text"
    if t is dt.datetime:
        return "datetime"
    if t in (dt.date, dt.time):
        return "date"
    if t is Decimal:
        return "decimal"
    if t is float:
        return "real"
    return "json"


_COLUMNS: dict[type[Model], tuple[Column, ...]] = {}


def columns(model: type[Model]) -> tuple[Column, ...]:
    """The model's columns, ``id`` first (the primary key), then in field order."""
    if model in _COLUMNS:
        return _COLUMNS[model]
    hints = typing.get_type_hints(model)
    renames = model.__renames__
    out: list[Column] = [Column("id", "id", "id", "id")]
    taken = {"id", *META}
    for field in attrs.fields(model):
        attr: str = field.name
        if attr in ("extra", "id"):
            continue
        wire = renames.get(attr, attr)
        kind = _kind(hints[attr])
        name = f"{wire}_id" if kind == "link" else wire
        if name in taken:
            name = f"{wire}_link_id" if kind == "link" else f"{wire}_value"
        if name in taken:
            continue
        taken.add(name)
        out.append(Column(name, attr, wire, kind))
    _COLUMNS[model] = tuple(out)
    return _COLUMNS[model]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _utc(value: dt.datetime) -> str:
    if value.tzinfo is None:  # the converter gives aware datetimes; be safe
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _cell(column: Column, value: Any, raw: dict[str, Any]) -> Any:
    if value is None:
        return None
    kind = column.kind
    if kind == "link":
        return value.id if isinstance(value, Link) else None
    if kind == "bool":
        return int(bool(value))
    if kind in ("id", "int"):
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
    if kind == "datetime":
        return _utc(value) if isinstance(value, dt.datetime) else None
    if kind == "date":
        return value.isoformat() if isinstance(value, dt.date | dt.time) else None
    if kind == "decimal":
        return str(value)
    if kind == "real":
        return float(value)
    if kind == "text":
        return str(value)
    wire = raw.get(column.wire)
    return None if wire is None else dumps(wire)


def record_id(raw: dict[str, Any]) -> int | None:
    """A record's id: its ``id``, or the last segment of ``links.self`` (deleted-list records)."""
    value = raw.get("id")
    if isinstance(value, int | str) and str(value).isascii() and str(value).isdigit():
        return int(value)
    links = raw.get("links")
    if isinstance(links, dict) and isinstance(links.get("self"), str):
        tail = links["self"].rstrip("/").rsplit("/", 1)[-1]
        if tail.isascii() and tail.isdigit():
            return int(tail)
    return None


def project(model: type[Model], record: Model, raw: dict[str, Any]) -> tuple[Any, ...]:
    """The row for one record: the model's columns in order (id from ``record_id``)."""
    cols = columns(model)
    out: list[Any] = [record_id(raw)]
    for column in cols[1:]:
        out.append(_cell(column, getattr(record, column.attr, None), raw))
    return tuple(out)
