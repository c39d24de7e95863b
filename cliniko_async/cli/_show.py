"""``cliniko get`` and ``cliniko list``: records as Cliniko sent them, as tables or JSON.

Both read the API's own JSON (``Cliniko.request``), not the models: ``--json`` prints exactly
the fields Cliniko sent, and the tables show the fields that have a value.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from .._client import Cliniko
from .._filters import Filter, encode_filters
from .._resource import ListOp
from ..errors import ConfigurationError, DecodeError
from ._console import plain

__all__ = ["check_columns", "fetch_list", "parse_columns", "record_table", "records_table"]

#: Columns of a ``list`` table when ``--columns`` does not say: the first fields with values.
DEFAULT_COLUMNS = 6


async def fetch_list(
    cliniko: Cliniko, op: ListOp[Any], filters: list[Filter | str], limit: int
) -> list[dict[str, Any]]:
    """The first ``limit`` records of the list, as Cliniko sent them (``links.next`` followed
    only to the configured base URL: the client refuses any other)."""
    params = [("q[]", f) for f in encode_filters(filters, op.filters)]
    params.append(("per_page", str(min(limit, 100))))
    url: str | None = op.render_path(())
    records: list[dict[str, Any]] = []
    query: list[tuple[str, str]] | None = params
    while url is not None and len(records) < limit:
        data = await cliniko.request("GET", url, params=query)
        items = data.get(op.key) if isinstance(data, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise DecodeError(
                f"expected a list page with a {op.key!r} array", method="GET",
                url=cliniko.base_url + op.render_path(()), status_code=200,
                snippet=json.dumps(data)[:200],
            )  # fmt: skip
        records += items[: limit - len(records)]
        links = data.get("links")
        following = links.get("next") if isinstance(links, dict) else None
        url = following if isinstance(following, str) and following and items else None
        query = None  # the next link carries its query
    return records


def parse_columns(columns: str | None) -> list[str] | None:
    """``--columns A,B``: the names (None: the default columns). No name at all is bad input."""
    if columns is None:
        return None
    names = [c.strip() for c in columns.split(",") if c.strip()]
    if not names:
        raise ConfigurationError(
            f"--columns {columns!r} names no field: give some (--columns id,last_name) "
            "or leave the option out for the default columns"
        )
    return names


def check_columns(
    columns: list[str] | None, op: ListOp[Any], records: list[dict[str, Any]], resource: str
) -> None:
    """Every column a field of the resource: one the model knows or one Cliniko sent (a field
    newer than the model). An unknown name is bad input, not an empty column."""
    if columns is None:
        return
    known = [op.model.__renames__.get(a.name, a.name) for a in attrs.fields(op.model)]
    fields = [name for name in known if name != "extra"]
    fields += sorted({key for record in records for key in record} - set(fields))
    unknown = [name for name in columns if name not in fields]
    if not unknown:
        return
    close = [match for name in unknown for match in difflib.get_close_matches(name, fields, n=1)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigurationError(
        f"--columns: {', '.join(map(repr, unknown))} "
        f"{'is not a field' if len(unknown) == 1 else 'are not fields'} of {resource}{hint}; "
        f"its fields: {', '.join(sorted(fields))}"
    )


def cell(value: Any) -> str:
    """One value as a table cell: references as their URL, nested values as compact JSON."""
    if isinstance(value, dict) and set(value) == {"links"} and isinstance(value["links"], dict):
        value = value["links"].get("self", value["links"])
    if isinstance(value, dict) and set(value) == {"self"}:
        value = value["self"]  # a record's own links
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def has_value(value: Any) -> bool:
    return value not in (None, "", [], {})


def record_table(record: Mapping[str, Any], title: str) -> Table:
    """One record: a row per field that has a value (``--json`` shows them all).

    Names and values are shown as text: their control characters visible, never sent to the
    terminal, and ``[...]`` in them printed, not read as rich markup."""
    table = Table(title=plain(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        if has_value(value):
            table.add_row(plain(key), plain(cell(value)))
    return table


def records_table(
    records: list[dict[str, Any]], columns: Iterable[str] | None, title: str
) -> tuple[Table, list[str]]:
    """Records as rows; (the table, the fields with values left out of it). Text as in
    :func:`record_table`: control characters visible, no markup."""
    present: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in present and has_value(value) and not isinstance(value, dict | list):
                present.append(key)
    if "id" in present:
        present.remove("id")
        present.insert(0, "id")
    chosen = list(columns) if columns is not None else present[:DEFAULT_COLUMNS]
    table = Table(title=plain(title))
    for name in chosen:
        table.add_column(plain(name), overflow="fold")
    for record in records:
        table.add_row(
            *(plain(cell(record.get(name)) if has_value(record.get(name)) else "")
              for name in chosen)
        )  # fmt: skip
    left_out = [name for name in present if name not in chosen]
    return table, left_out


def print_table(table: Table) -> None:
    Console(highlight=False).print(table)
