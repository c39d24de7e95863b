"""JSON in and out at the error boundary: nothing but a ``ClinikoError`` escapes from here.

* :func:`loads` decodes a response body (orjson when installed) and refuses bodies nested deeper
  than :data:`MAX_DEPTH`, which no Cliniko response comes near but which would otherwise raise
  ``RecursionError`` later (in ``json``, in ``repr``, in the converter). It raises one of
  :data:`JSON_DECODE_ERRORS`, which the session turns into ``DecodeError``.
* :func:`jsonable` turns a request body given as a mapping into plain JSON values: ``date`` ->
  ``YYYY-MM-DD``, aware ``datetime`` -> UTC ``...Z``, ``Decimal`` -> its string, enums -> their
  value, request-body models -> their wire form; anything else (a naive datetime, a set, NaN, a
  key that is not a string, nesting deeper than :data:`MAX_DEPTH`) raises ``ConfigurationError``
  naming the path of the offending value, before anything is sent.
* :func:`dumps` is ``jsonable`` then compact JSON bytes.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from .errors import ConfigurationError

__all__ = ["JSON_DECODE_ERRORS", "MAX_DEPTH", "JSONTooDeepError", "dumps", "jsonable", "loads"]

#: Deepest nesting accepted in a response or a request body (Cliniko's records reach about 8).
MAX_DEPTH: Final = 64


class JSONTooDeepError(ValueError):
    """A response body nested deeper than :data:`MAX_DEPTH`."""


try:  # optional speed-up
    import orjson

    _loads: Any = orjson.loads
    _DECODE: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - exercised when orjson is absent
    _loads = json.loads
    _DECODE = (json.JSONDecodeError, UnicodeDecodeError)

#: What :func:`loads` raises for a body it will not decode.
JSON_DECODE_ERRORS: Final[tuple[type[Exception], ...]] = (*_DECODE, JSONTooDeepError)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
#: ``{`` -> ``[``, ``}`` -> ``]``: for depth, one kind of bracket is enough (one replace a pass).
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def _too_deep(content: bytes) -> bool:
    """Whether ``content`` nests deeper than MAX_DEPTH, in C-speed passes (no recursion).

    Brackets inside strings count too, which can only overestimate the depth; an overestimate
    is checked again with the strings taken out.
    """
    shape = content.translate(_ONE_KIND, _NOT_BRACKET)
    if len(shape) <= 2 * MAX_DEPTH:
        return False
    return _deeper(shape) and _deeper(_STRING.sub(b"", content).translate(_ONE_KIND, _NOT_BRACKET))


def _deeper(shape: bytes) -> bool:
    # Each pass takes out the innermost level (a ``]`` closing a ``{`` too: the decoder
    # refuses mismatched brackets, and for depth they count alike).
    for _ in range(MAX_DEPTH):
        if not shape:
            return False
        smaller = shape.replace(b"[]", b"")
        if len(smaller) == len(shape):
            return False  # unbalanced: the decoder reports it
        shape = smaller
    return bool(shape)


def loads(content: bytes) -> Any:
    """Decode a JSON response body; raise one of :data:`JSON_DECODE_ERRORS` if it is not one."""
    if _too_deep(content):
        raise JSONTooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return _loads(content)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise JSONTooDeepError(f"JSON nested deeper than {MAX_DEPTH} levels") from None


def jsonable(value: Any, *, where: str = "body", depth: int = 0) -> Any:
    """``value`` as plain JSON values (see the module docstring), or ConfigurationError."""
    if depth > MAX_DEPTH:
        raise ConfigurationError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(f"{where}: {value!r} cannot be sent as JSON")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConfigurationError(f"{where}: {value!r} cannot be sent as JSON")
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(
                f"{where}: naive datetime {value.isoformat()}; pass an aware datetime, e.g. "
                "datetime(..., tzinfo=datetime.UTC)"
            )
        utc = value.astimezone(dt.UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="seconds" if not utc.microsecond else "milliseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="minutes" if not value.second else "seconds")
    if isinstance(value, enum.Enum):
        return jsonable(value.value, where=where, depth=depth + 1)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(f"{where}: key {key!r} is not a string")
            out[key] = jsonable(item, where=f"{where}.{key}", depth=depth + 1)
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray | memoryview):
        return [
            jsonable(item, where=f"{where}[{i}]", depth=depth + 1) for i, item in enumerate(value)
        ]
    from ._model import Input  # a request-body model nested in a mapping

    if isinstance(value, Input):
        from ._converter import unstructure_body

        return jsonable(unstructure_body(value, for_create=False), where=where, depth=depth + 1)
    raise ConfigurationError(
        f"{where}: a {type(value).__name__} cannot be sent as JSON; use str, int, float, bool, "
        "None, Decimal, date, aware datetime, lists and mappings"
    )


def dumps(body: Any) -> bytes:
    """``body`` as compact JSON bytes (via :func:`jsonable`); ConfigurationError if it cannot be."""
    return json.dumps(jsonable(body), separators=(",", ":"), allow_nan=False).encode()
