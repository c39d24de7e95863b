"""The one cattrs converter: API JSON <-> attrs models, with Cliniko's quirks handled here.

Quirks: ids come as JSON numbers or strings (and exceed 2**53: never through float); dates
and datetimes may be ``""`` for "none"; references are ``{"links": {"self": url}}``; money is a
decimal string; unknown keys are kept on ``Model.extra``; missing optional keys are fine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs

from ._model import TAGGED_UNIONS, Extra, Model
from ._types import UNSET, Link, LinkOrLinks
from .errors import ConfigurationError

__all__ = [
    "ModelDecodeError",
    "converter",
    "structure",
    "structure_many",
    "unstructure",
    "unstructure_body",
]

T = TypeVar("T")


class ModelDecodeError(ValueError):
    """Data that cannot be turned into the model (the pipeline re-raises it as DecodeError)."""


converter = cattrs.Converter(detailed_validation=False)


def _int(value: Any, _: Any) -> int:
    if value.__class__ is str and value.isdigit():  # ids: int64 sent as strings
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise ModelDecodeError(f"expected an integer, got {value!r}")


def _datetime(value: Any, _: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is dt.UTC:  # "...Z", Cliniko's own form
            return parsed
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC) if parsed.utcoffset() else parsed.replace(tzinfo=dt.UTC)
    raise ModelDecodeError(f"expected an ISO 8601 datetime, got {value!r}")


def _date(value: Any, _: Any) -> dt.date | None:
    if value.__class__ is str and len(value) == 10:
        return dt.date.fromisoformat(value)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    raise ModelDecodeError(f"expected a YYYY-MM-DD date, got {value!r}")


def _time(value: Any, _: Any) -> dt.time | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return dt.time.fromisoformat(value)
    raise ModelDecodeError(f"expected a time of day, got {value!r}")


def _decimal(value: Any, _: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ModelDecodeError(f"expected a decimal amount, got {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ModelDecodeError(f"expected a decimal amount, got {value!r}") from None


_new = object.__new__
_setattr = object.__setattr__


def _link(value: Any, _: Any) -> Link | None:
    if value.__class__ is dict:  # {"links": {"self": url}}, or a record's own {"self": url}
        links = value.get("links", value)
        url = links.get("self") if links.__class__ is dict else None
        if url.__class__ is str:
            link = _new(Link)  # Link(url) without the frozen __init__'s overhead
            _setattr(link, "url", url)
            return link
    if value is None:
        return None
    if isinstance(value, Mapping):
        links = value.get("links", value)
        url = links.get("self") if isinstance(links, Mapping) else None
        if url is None and isinstance(value.get("link"), str):  # telehealth guide's shape
            url = value["link"]
        if isinstance(url, str):
            return Link(url)
        if url is None and not value:
            return None
    if isinstance(value, str):
        return Link(value)
    raise ModelDecodeError(f"expected a link object, got {value!r}")


def _str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ModelDecodeError(f"expected a string, got {type(value).__name__}")


def _bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ModelDecodeError(f"expected true or false, got {value!r}")


converter.register_structure_hook(bool, _bool)  # before int: bool is an int subclass
converter.register_structure_hook(int, _int)
converter.register_structure_hook(str, _str)
converter.register_structure_hook(dt.datetime, _datetime)
converter.register_structure_hook(dt.date, _date)
converter.register_structure_hook(dt.time, _time)
converter.register_structure_hook(Decimal, _decimal)
converter.register_structure_hook(Link, _link)
converter.register_structure_hook(
    LinkOrLinks,
    lambda v, _: tuple(_link(x, Link) for x in v) if isinstance(v, list) else _link(v, Link),
)


def _is_optional(t: Any) -> bool:
    args = getattr(t, "__args__", ())
    return typing.get_origin(t) in (typing.Union, types.UnionType) and type(None) in args


def _optional_inner(t: Any) -> Any:
    rest = tuple(a for a in t.__args__ if a is not type(None))
    return rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007


def without_none(t: Any) -> Any:
    """``X | None`` -> ``X`` (``A | B | None`` -> ``A | B``); any other annotation unchanged."""
    return _optional_inner(t) if _is_optional(t) else t


def _optional_hook(t: Any) -> Callable[[Any, Any], Any]:
    """``X | None``: resolve X's hook once, instead of dispatching on every value."""
    inner = _optional_inner(t)
    handler = converter.get_structure_hook(inner)

    def hook(value: Any, _: Any) -> Any:
        return None if value is None else handler(value, inner)

    return hook


converter.register_structure_hook_factory(_is_optional, _optional_hook)


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``tuple[X, ...]`` from a JSON array: X's hook resolved once."""
    item = typing.get_args(t)[0]
    handler = converter.get_structure_hook(item)

    def hook(value: Any, _: Any) -> tuple[Any, ...]:
        if value.__class__ is not list and not isinstance(value, list | tuple):
            raise ModelDecodeError(f"expected an array, got {type(value).__name__}")
        return tuple([handler(v, item) for v in value])

    return hook


converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook)


#: Field types whose values usually arrive as they are: a class check skips the hook call.
_PASS_THROUGH = (str, bool, int)


class _Never:
    """A class no JSON value has: fields of other types always go through their hook."""


class _UtcIsoString:
    """Marks datetime fields: a ``...Z`` string is parsed inline, anything else takes the hook."""


_fromisoformat = dt.datetime.fromisoformat
_UTC = dt.UTC


def _model_hook(cls: type[Model]) -> Callable[[Any, Any], Model]:
    """Structure a model by walking the keys the response carries (the hot path).

    Cliniko's records are sparse, so only keys present and not null are converted and set;
    the fields left unset read as their defaults (see ``Model.__getattr__``). Values that
    already have the right class (strings, booleans, ints) skip their hook, and Cliniko's own
    datetime form (``...Z``) is parsed inline. Keys the model does not know go to ``extra``.
    """
    renames = cls.__renames__
    hints = typing.get_type_hints(cls)
    table: dict[str, tuple[Callable[[Any, Any], None], type, Callable[[Any, Any], Any], Any]] = {}
    for a in attrs.fields(cls):
        if a.name == "extra":
            continue
        inner = without_none(hints[a.name])
        fast = inner if inner in _PASS_THROUGH else _Never
        if inner is dt.datetime:
            fast = _UtcIsoString
        slot = inspect.getattr_static(cls, a.name)  # the slot's descriptor: set it directly
        handler = converter.get_structure_hook(inner)
        table[renames.get(a.name, a.name)] = (slot.__set__, fast, handler, inner)
    id_from_link = "id" in table and "links" in table

    def hook(data: Any, _: Any) -> Model:
        if data.__class__ is not dict and not isinstance(data, Mapping):
            raise ModelDecodeError(
                f"expected an object for {cls.__name__}, got {type(data).__name__}"
            )
        obj = _new(cls)
        extra = None
        for key, value in data.items():
            try:
                set_slot, fast, handler, t = table[key]
            except KeyError:  # a key this model does not know (yet)
                if extra is None:
                    extra = {}
                extra[key] = value
                continue
            if value is None:
                continue
            if value.__class__ is fast:
                set_slot(obj, value)
            elif (
                fast is _UtcIsoString
                and value.__class__ is str
                and value
                and (parsed := _fromisoformat(value)).tzinfo is _UTC
            ):
                set_slot(obj, parsed)
            else:
                set_slot(obj, handler(value, t))
        if extra is not None:
            _setattr(obj, "extra", Extra(extra))
        if id_from_link and data.get("id") is None:  # no id: take it from links.self
            own = getattr(obj, "links", None)
            if own.__class__ is Link and own.id is not None:
                _setattr(obj, "id", own.id)
        return obj

    return hook


converter.register_structure_hook_factory(
    lambda t: isinstance(t, type) and issubclass(t, Model), _model_hook
)


def _is_tagged_union(t: Any) -> bool:
    try:
        return t in TAGGED_UNIONS
    except TypeError:  # unhashable annotations
        return False


def _tagged_union_hook(t: Any) -> Callable[[Any, Any], Model]:
    """Pick the member by its tag (``type``); an unknown tag falls back to the first member."""
    tag, variants = TAGGED_UNIONS[t]
    hooks = {value: (converter.get_structure_hook(cls), cls) for value, cls in variants.items()}
    fallback = next(iter(hooks.values()))

    def hook(data: Any, _: Any) -> Model:
        if not isinstance(data, Mapping):
            raise ModelDecodeError(f"expected an object, got {type(data).__name__}")
        handler, cls = hooks.get(str(data.get(tag)), fallback)
        result: Model = handler(data, cls)
        return result

    return hook


converter.register_structure_hook_factory(_is_tagged_union, _tagged_union_hook)


@contextlib.contextmanager
def _model_errors(cls: type[Any]) -> Iterator[None]:
    """Anything structuring raises (cattrs, fromisoformat, ...) as a ModelDecodeError."""
    try:
        yield
    except ModelDecodeError:
        raise
    except Exception as exc:
        raise ModelDecodeError(f"{cls.__name__}: {type(exc).__name__}: {exc}"[:300]) from None


def structure(data: Any, cls: type[T]) -> T:
    """Turn decoded JSON into ``cls``; raise :class:`ModelDecodeError` (never KeyError etc.)."""
    with _model_errors(cls):
        return converter.structure(data, cls)


def structure_many(records: Any, cls: type[T]) -> list[T]:
    """A page of records: :func:`structure` on each, with ``cls``'s hook looked up once."""
    if not isinstance(records, list):
        raise ModelDecodeError(f"expected a list of {cls.__name__}, got {type(records).__name__}")
    hook = converter.get_structure_hook(cls)
    with _model_errors(cls):
        return [hook(record, cls) for record in records]


def _wire_value(name: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and (name == "id" or name.endswith(("_id", "_ids"))):
        return str(value)  # ids are int64: sent as strings, like Cliniko's own docs
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(
                f"naive datetime in {name!r}: pass an aware datetime (e.g. tzinfo=datetime.UTC)"
            )
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Link):
        return value.url
    if isinstance(value, list | tuple):
        return [_wire_value(name, v) for v in value]
    if isinstance(value, Mapping):
        return {k: _wire_value(k, v) for k, v in value.items()}
    if attrs.has(type(value)):  # a nested request object: its own required fields apply
        return unstructure_body(value, for_create=True)
    return value


def unstructure_body(obj: object, *, for_create: bool) -> dict[str, Any]:
    """A request model as a JSON body: fields left ``UNSET`` are omitted, ``None`` sends null.

    For a create, fields the API requires must be set (checked here, before sending).
    """
    cls = type(obj)
    renames: Mapping[str, str] = getattr(cls, "__renames__", {})
    if for_create:
        required: frozenset[str] = getattr(cls, "__required__", frozenset())
        missing = sorted(f for f in required if getattr(obj, f, UNSET) is UNSET)
        if missing:
            raise ConfigurationError(
                f"{cls.__name__} is missing required field(s) {', '.join(missing)}: set them "
                "before creating the record"
            )
    body: dict[str, Any] = {}
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        value = getattr(obj, field.name)
        if value is UNSET or field.name == "extra":
            continue
        body[renames.get(field.name, field.name)] = _wire_value(field.name, value)
    return body


def unstructure(obj: Any) -> Any:
    """A model back in Cliniko's wire format (the inverse of :func:`structure`).

    Links become ``{"links": {"self": url}}``, datetimes ``...Z`` strings, money decimal
    strings, ids strings; keys kept in ``extra`` come back too. ``None`` fields are sent as null.
    """
    if isinstance(obj, Model):
        cls = type(obj)
        out: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if field.name != "extra":
                wire = cls.__renames__.get(field.name, field.name)
                value = getattr(obj, field.name)
                own_link = wire == "links" and isinstance(value, Link)  # a record's own URL
                out[wire] = {"self": value.url} if own_link else unstructure(value)
        if "id" in out and isinstance(out["id"], int):
            out["id"] = str(out["id"])
        out.update(obj.extra)
        return out
    if isinstance(obj, Link):
        return {"links": {"self": obj.url}}
    if isinstance(obj, dt.datetime):
        return obj.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"
    if isinstance(obj, dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, tuple | list):
        return [unstructure(v) for v in obj]
    return obj
