"""Sample records for any model, in Cliniko's wire format, derived from the attrs model itself.

The fake Cliniko seeds every resource that has no hand-written data with these, so each of the
API's operations answers with a realistic, typed body.
"""

from __future__ import annotations

import datetime as dt
import re
import typing
import uuid
import zlib
from decimal import Decimal
from typing import Any

import attrs

from .._converter import without_none
from .._model import TAGGED_UNIONS, Model
from .._types import Link
from ._data import EPOCH, iso
from ._limits import RECORD_LIMITS

__all__ = ["plural", "sample", "spec_pattern"]

#: Link fields whose name is not the plural of the resource they point at.
_LINK_TARGETS = {
    "referring_doctor": "contacts",
    "merged_with_patient": "patients",
    "repeated_from": "individual_appointments",
    "latest_booking": "bookings",
    "default_appointment_type": "appointment_types",
    "payment": "payments",
}


_HINTS: dict[type, dict[str, Any]] = {}


_LIFECYCLE = frozenset({"archived_at", "deleted_at", "cancelled_at", "merged_at"})


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def plural(name: str) -> str:
    """A resource's plural as in its path: ``patient`` -> ``patients``, ``y`` -> ``ies``."""
    if name.endswith("y"):
        return name[:-1] + "ies"
    return name if name.endswith("s") else name + "s"


def sample(cls: type[Model], n: int, *, resource: str = "") -> dict[str, Any]:
    """Record number ``n`` of ``cls`` as Cliniko would send it (links as absolute paths)."""
    out: dict[str, Any] = {}
    hints = _hints(cls)
    renames = cls.__renames__
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue
        wire = renames.get(field.name, field.name)
        out[wire] = _within(
            _value(hints[field.name], field, wire, n, resource),
            RECORD_LIMITS.get(cls.__name__, {}).get(wire, {}),
            n,
            wire,
        )
    if "id" in out:
        out["id"] = str(n)
    if "links" in out and resource:
        out["links"] = {"self": f"/{resource}/{n}"}
    return out


_PATTERNS: dict[tuple[str, bool], re.Pattern[str]] = {}


def spec_pattern(pattern: str, field: str) -> re.Pattern[str]:
    """The spec's (Ruby) ``pattern`` as a Python one: ``\\h`` is a hex digit; an email pattern is
    matched ignoring case (the spec's is upper case only; Cliniko's own data is lower case)."""
    fold = "email" in field
    if (pattern, fold) not in _PATTERNS:
        python = pattern.replace("\\h", "[0-9A-Fa-f]")
        _PATTERNS[pattern, fold] = re.compile(python, re.IGNORECASE if fold else 0)
    return _PATTERNS[pattern, fold]


def _within(value: Any, limits: dict[str, Any], n: int, field: str) -> Any:
    """``value`` made to respect the spec's ``limits`` for its field (enum, format, length,
    range, pattern): the fake never serves a record its own spec would refuse."""
    if value is None or not limits:
        return value
    if "enum" in limits:
        return limits["enum"][n % len(limits["enum"])]
    if isinstance(value, str):
        if limits.get("format") == "ipv4":
            return f"10.0.{n // 250 % 250}.{1 + n % 250}"
        pattern = limits.get("pattern")
        if pattern is not None and spec_pattern(pattern, field).search(value) is None:
            if "example" in limits:
                return limits["example"]
            if pattern.startswith("^#"):
                return "#3366cc"  # a colour
        value = value[: limits.get("maxLength", len(value))]
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = limits.get("minimum"), limits.get("maximum")
        if low is not None and value <= low:
            value = int(low) + 1
        if high is not None and value >= high:
            value = int(high) - 1
    return value


def _value(t: Any, field: attrs.Attribute[Any] | None, name: str, n: int, owner: str) -> Any:
    t = without_none(t)
    enum = field.metadata.get("enum") if field is not None else None
    if enum:
        return enum[n % len(enum)]
    if t is Link:
        target = _LINK_TARGETS.get(name, plural(name))
        return {"links": {"self": f"/{target}/{1 + n % 3}"}}
    if t is bool:
        return n % 2 == 0
    if t is int:
        int64 = field is not None and field.metadata.get("format") == "int64"
        return str(n) if int64 or name == "id" else n % 5 + 1
    if t is str:
        if "token" in name or name.endswith("uuid"):
            return str(uuid.UUID(int=zlib.crc32(f"{owner}.{name}.{n}".encode())))
        if "email" in name:
            return f"person{n}@example.com"
        if "url" in name:
            return f"https://files.example.com/{owner or 'x'}/{n}"
        if name.endswith("_id"):
            return str(n)
        return f"{name.replace('_', ' ')} {n}"
    if t is dt.datetime:
        if name in _LIFECYCLE and n % 3:  # every third record is archived, deleted, cancelled
            return None
        return iso(EPOCH + dt.timedelta(days=n, hours=9))
    if t is dt.date:
        return (EPOCH.date() + dt.timedelta(days=n)).isoformat()
    if t is dt.time:
        return f"{9 + n % 8:02d}:00"
    if t is Decimal:
        number = field is not None and field.metadata.get("format") == "number"
        return 10.5 + n if number else f"{10 + n}.5"
    if t is float:
        return 1.5 + n
    origin = typing.get_origin(t)
    if origin is tuple:
        item = typing.get_args(t)[0]
        return [_value(item, field, name, n, owner)]
    if origin is dict:
        return {}
    if t in TAGGED_UNIONS:
        _, variants = TAGGED_UNIONS[t]
        variant = list(variants.values())[n % len(variants)]
        return sample(variant, n)
    if isinstance(t, type) and issubclass(t, Model):
        return sample(t, n)
    return None
