"""Request-body validation for the fake Cliniko: refuse what Cliniko refuses, store nothing else.

Driven by the package's own request-body models (``PatientInput`` ...: field names and types,
``__required__``) and the generated :data:`~._limits.LIMITS` table (lengths and allowed values
from Cliniko's OpenAPI description), so it works without the spec at run time. A body that fails
answers 422 in Cliniko's shape (``{"message": "Validation Failed", "errors": {field: message}}``);
a reference to a record that does not exist (``patient_id: 999``) answers 404. Keys a body model
does not know are dropped, as Cliniko's strong parameters drop them.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from .._model import TAGGED_UNIONS, Input
from .._types import Unset
from ._limits import LIMITS
from ._records import plural, spec_pattern

__all__ = ["Invalid", "limit_problem", "minimal_body", "validate_body"]

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_MAX_DEPTH = 32
#: Reference fields whose table is not the plural of the field name.
_REFERENCE_TABLES = {
    "referring_doctor_id": "contacts",
    "repeated_from_id": "individual_appointments",
    "contact_id": "contacts",
}


@attrs.frozen
class Invalid(Exception):
    """Why a body was refused: HTTP ``status`` and Cliniko's ``errors`` mapping."""

    status: int
    errors: dict[str, str]

    def body(self) -> dict[str, Any]:
        if self.status == 404:
            field, message = next(iter(self.errors.items()))
            return {"message": f"{field} {message}", "errors": self.errors}
        return {"message": "Validation Failed", "errors": self.errors}


_HINTS: dict[type, dict[str, Any]] = {}


def _fields(cls: type[Input]) -> dict[str, Any]:
    """Wire name -> annotation of a body model."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        renames = cls.__renames__
        _HINTS[cls] = {
            renames.get(a.name, a.name): hints[a.name] for a in attrs.fields(cls) if a.init
        }
    return _HINTS[cls]


def validate_body(
    body: Mapping[str, Any],
    cls: Any,
    *,
    tables: Mapping[str, Mapping[int, Any]],
    create: bool,
) -> dict[str, Any]:
    """``body`` reduced to the fields ``cls`` knows, or :class:`Invalid`.

    ``cls`` is the operation's body model (or a union of them: the first that accepts the body
    wins); ``tables`` are the fake's records, for references.
    """
    candidates = [c for c in _union_args(cls) if isinstance(c, type) and issubclass(c, Input)]
    if not candidates:
        return dict(body)
    first: Invalid | None = None
    for candidate in candidates:
        try:
            return _validate_model(body, candidate, tables, create=create, where="", depth=0)
        except Invalid as exc:
            first = first or exc
    assert first is not None
    raise first


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _validate_model(
    body: Mapping[str, Any],
    cls: type[Input],
    tables: Mapping[str, Mapping[int, Any]],
    *,
    create: bool,
    where: str,
    depth: int,
) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise Invalid(422, {where or "body": "is nested too deeply"})
    fields = _fields(cls)
    limits = LIMITS.get(cls.__name__, {})  # nested models too (a question inside a section)
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    required = set(cls.__required__) if create or depth > 0 else set()
    renames = cls.__renames__
    for name in sorted(required):
        wire = renames.get(name, name)
        if body.get(wire) in (None, "", []):
            errors[where + wire] = "can't be blank"
    missing: dict[str, str] = {}
    for key, value in body.items():
        if not isinstance(key, str) or key not in fields:
            continue  # unknown keys are dropped, as Cliniko does
        try:
            out[key] = _value(value, fields[key], where + key, tables, depth)
        except Invalid as exc:
            if exc.status == 404:
                missing.update(exc.errors)
            else:
                errors.update(exc.errors)
            continue
        problem = limit_problem(key, value, limits.get(key, {}))
        if problem is not None:
            errors[where + key] = problem
    if errors:
        raise Invalid(422, errors)
    if missing:
        raise Invalid(404, missing)
    return out


def _value(
    value: Any,
    annotation: Any,
    where: str,
    tables: Mapping[str, Mapping[int, Any]],
    depth: int,
) -> Any:
    args = [a for a in _union_args(annotation) if a is not Unset]
    if value is None:
        if type(None) in args or Any in args:
            return None
        raise Invalid(422, {where: "can't be blank"})
    problems: list[Invalid] = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _one(value, arg, where, tables, depth)
        except Invalid as exc:
            problems.append(exc)
    if problems and any(p.status == 404 for p in problems):
        raise next(p for p in problems if p.status == 404)
    if not problems:
        raise Invalid(422, {where: "is invalid"})
    # A union (a question of any type): the member that got furthest into the value explains it
    # best (a checkboxes question's too-long answer, not the text question's other type).
    raise max(problems, key=lambda p: max((len(k) for k in p.errors), default=0))


def _one(
    value: Any,
    arg: Any,
    where: str,
    tables: Mapping[str, Mapping[int, Any]],
    depth: int,
) -> Any:
    origin = typing.get_origin(arg)
    if arg is Any or arg is object:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(arg):
            return value
        raise Invalid(422, {where: "is not included in the list"})
    if origin in (list, tuple, Sequence) or origin is typing.get_origin(Sequence[int]):
        if not isinstance(value, list):
            raise Invalid(422, {where: "must be an array"})
        (item_type, *_) = typing.get_args(arg) or (Any,)
        return [
            _value(item, item_type, f"{where}[{i}]", tables, depth + 1)
            for i, item in enumerate(value)
        ]
    if origin in (dict, Mapping) or arg in (dict, Mapping):
        if not isinstance(value, dict):
            raise Invalid(422, {where: "must be an object"})
        return value
    if arg in TAGGED_UNIONS or origin in (typing.Union, types.UnionType):
        return _value(value, arg, where, tables, depth)
    if isinstance(arg, type) and issubclass(arg, Input):
        if not isinstance(value, dict):
            raise Invalid(422, {where: "must be an object"})
        return _validate_model(value, arg, tables, create=True, where=where + ".", depth=depth + 1)
    if arg is bool:
        if isinstance(value, bool):
            return value
        raise Invalid(422, {where: "must be true or false"})
    if arg is int:
        number = _int(value)
        if number is None:
            raise Invalid(422, {where: "must be an integer"})
        _check_reference(where, number, tables)
        return value
    if arg is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Invalid(422, {where: "must be a number"})
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise Invalid(422, {where: "must be a number"}) from None
        if not amount.is_finite():
            raise Invalid(422, {where: "must be a number"})
        return str(value) if isinstance(value, int | float) else value  # as Cliniko sends it
    if arg is dt.datetime:
        if not isinstance(value, str) or not _datetime_ok(value):
            raise Invalid(422, {where: "is not a valid datetime"})
        return value
    if arg is dt.date:
        if not isinstance(value, str) or not _date_ok(value):
            raise Invalid(422, {where: "is not a valid date"})
        return value
    if arg is dt.time:
        if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
            raise Invalid(422, {where: "is not a valid time"})
        return value
    if arg is str:
        if isinstance(value, str):
            if "\x00" in value:
                raise Invalid(422, {where: "is invalid"})
            return value
        raise Invalid(422, {where: "must be a string"})
    if arg is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise Invalid(422, {where: "must be a number"})
    return value  # a type this validator does not know: Cliniko's own checks are not modelled


def limit_problem(field: str, value: Any, limits: Mapping[str, Any]) -> str | None:
    """What is wrong with ``value`` under the spec's ``limits`` for it (None: nothing), in
    Cliniko's words."""
    if value is None or not limits:
        return None
    allowed = limits.get("enum")
    if allowed is not None and value not in allowed:
        return "is not included in the list"
    if isinstance(value, str):
        if "maxLength" in limits and len(value) > limits["maxLength"]:
            return f"is too long (maximum is {limits['maxLength']} characters)"
        if "minLength" in limits and len(value) < limits["minLength"]:
            return f"is too short (minimum is {limits['minLength']} characters)"
        pattern = limits.get("pattern")
        if pattern is not None and spec_pattern(pattern, field).search(value) is None:
            return "is invalid"
    number = _number(value)
    if number is not None:
        low, high = limits.get("minimum"), limits.get("maximum")
        if low is not None and (number <= low if limits.get("exclusiveMinimum") else number < low):
            word = "greater than" if limits.get("exclusiveMinimum") else "greater than or equal to"
            return f"must be {word} {low}"
        if high is not None and (
            number >= high if limits.get("exclusiveMaximum") else number > high
        ):
            word = "less than" if limits.get("exclusiveMaximum") else "less than or equal to"
            return f"must be {word} {high}"
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _check_reference(where: str, number: int, tables: Mapping[str, Mapping[int, Any]]) -> None:
    """``x_id`` (and each of ``x_ids``) must name an existing record of table ``x``s."""
    field = where.rsplit(".", 1)[-1].split("[", 1)[0]
    if field.endswith("_ids"):
        table = plural(field[:-4])
    elif field.endswith("_id"):
        table = _REFERENCE_TABLES.get(field, plural(field[:-3]))
    else:
        return
    if table not in tables:
        return
    if number <= 0 or number not in tables[table]:
        raise Invalid(404, {field.removesuffix("_ids").removesuffix("_id"): "must exist"})


def _date_ok(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _datetime_ok(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:?\d{2})", text, re.ASCII):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_EXAMPLES: Mapping[Any, Any] = {
    str: "Example",
    int: "1",
    bool: True,
    Decimal: "10.00",
    dt.date: "2026-01-01",
    dt.datetime: "2026-01-01T09:00:00Z",
    dt.time: "09:00",
}


def minimal_body(cls: Any) -> dict[str, Any]:
    """The smallest create body of ``cls`` the fake accepts (references point at record 1)."""
    if not (isinstance(cls, type) and issubclass(cls, Input)):
        return {}
    fields = _fields(cls)
    limits = LIMITS.get(cls.__name__, {})
    renames = cls.__renames__
    wanted = {renames.get(n, n) for n in cls.__required__}
    out: dict[str, Any] = {}
    for wire in sorted(wanted):
        allowed = limits.get(wire, {}).get("enum")
        if allowed:
            out[wire] = allowed[0]
            continue
        args = [a for a in _union_args(fields.get(wire, str)) if a in _EXAMPLES]
        out[wire] = _EXAMPLES[args[0]] if args else "Example"
    return out
