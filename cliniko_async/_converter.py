"""The one cattrs converter: API JSON <-> attrs models, with Cliniko's quirks handled here.

Quirks: ids come as JSON numbers or strings (and exceed 2**53: never through float); dates
and datetimes may be ``""`` for "none"; references are ``{"links": {"self": url}}``; money is a
decimal string; unknown keys are kept on ``Model.extra``; missing optional keys are fine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import operator
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs

from ._model import TAGGED_UNIONS, Extra, Model
from ._types import UNSET, Link, LinkOrLinks
from .errors import ConfigurationError, ModelDecodeError

__all__ = [
    "ModelDecodeError",
    "converter",
    "structure",
    "structure_many",
    "structurer",
    "unstructure",
    "unstructure_body",
]

T = TypeVar("T")


converter = cattrs.Converter(detailed_validation=False)


#: Cliniko's integers (ids among them) are 64-bit: anything wider is no id or count of its
#: (and would overflow a database column: SQLite's INTEGER, PostgreSQL's bigint).
_INT64 = 1 << 63


def _int(value: Any, _: Any) -> int:
    if value.__class__ is str and value.isdigit():  # ids: int64 sent as strings
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.lstrip("-").isdigit():
        number = int(value)
    else:
        raise ModelDecodeError(f"expected an integer, got {value!r}")
    if not -_INT64 <= number < _INT64:
        text = str(value)
        raise ModelDecodeError(
            f"expected a 64-bit integer, got {text[:40]}{'...' if len(text) > 40 else ''}"
        )
    return number


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
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ModelDecodeError(f"expected a decimal amount, got {value!r}") from None
    # NaN, sNaN and infinities are no amount (comparing one raises InvalidOperation in the
    # user's code), nor is 1E+999999999 (its arithmetic overflows): refused here.
    if not amount.is_finite() or not -_DECIMAL_DIGITS <= amount.adjusted() <= _DECIMAL_DIGITS:
        raise ModelDecodeError(f"expected a finite decimal amount, got {str(value)[:40]!r}")
    return amount


#: An amount's exponent is within this many digits either way (money has a handful).
_DECIMAL_DIGITS = 100


_new = object.__new__


def _filler(cls: type[Any]) -> Any:
    """A twin of a frozen attrs class that plain assignments can fill (then it becomes ``cls``).

    Same slots and layout (no slots of its own), ``object``'s ``__init__``, ``__setattr__`` and
    ``__delattr__``: ``_Filler()`` is the interpreter's plain allocation (cheaper than
    ``object.__new__(cls)``), ``obj.name = value`` its fast slot store (several times cheaper
    than calling the slot descriptor). The structure code builds an instance, fills it and
    assigns ``__class__ = cls``; a twin instance never escapes.
    """
    namespace = {
        "__slots__": (),
        "__init__": object.__init__,
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        "__module__": cls.__module__,
        "__qualname__": f"{cls.__qualname__}._Builder",
    }
    return type(f"{cls.__name__}Builder", (cls,), namespace)


_LinkBuilder = _filler(Link)


def _link(value: Any, _: Any) -> Link | None:
    if value.__class__ is dict:  # {"links": {"self": url}}, or a record's own {"self": url}
        links = value.get("links", value)
        url = links.get("self") if links.__class__ is dict else None
        if url.__class__ is str:
            link: Link = _LinkBuilder()  # Link(url) without the frozen __init__'s overhead
            link.url = url  # type: ignore[misc]  # the builder's own setattr: not frozen
            link.__class__ = Link
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

_fromisoformat = dt.datetime.fromisoformat
_fromisodate = dt.date.fromisoformat
_UTC = dt.UTC


def _model_hook(cls: type[Model]) -> Callable[..., Model]:
    """The structure function of one model class, generated on first use (the hot path).

    Cliniko's records are large and mostly full, so the function is straight-line code with
    one ``dict.get`` per field (no loop over a table, no per-field ``try``), values that
    already have the right class (strings, booleans, ints) kept as they are, Cliniko's own
    ``...Z`` datetimes, ``YYYY-MM-DD`` dates and ``{"links": {"self": url}}`` references
    converted inline, and nested models calling each other's generated functions. Fields the
    response does not carry, or carries as null, are left unset: they read as their defaults
    (see ``Model.__getattr__``). Missing keys are counted, so unknown keys (kept in ``extra``)
    are looked for only when the counts say there are some. Ids sent as digit strings and
    arrays of one or two nested records are converted inline too.

    Records of one endpoint have the same keys: once two records with the same number of
    keys have taken the general code, the function learns the second one's keys (its shape,
    ``_ModelCode.learn``) and records of that shape take code of their own: every value in
    one ``itemgetter`` call, nothing counted, nothing looked up twice. At most ``_SHAPES``
    shapes per model.

    A model that (indirectly) contains itself gets, while its function is being built, one
    that calls the finished function when it runs.
    """
    with _BUILD_LOCK:  # re-entrant: the thread building a model builds what it contains
        if cls in _BUILT:
            return _BUILT[cls]
        if cls in _BUILDING:
            return lambda data, _=None: _BUILT[cls](data)
        _BUILDING.add(cls)
        try:
            built = _BUILT[cls] = _ModelCode(cls).build()
        finally:
            _BUILDING.discard(cls)
        return built


class _Never:
    """A class no JSON value has: fields of other types always go through their hook."""


class _UtcIsoString:
    """Marks datetime fields: a ``...Z`` string is parsed inline, anything else takes the hook."""


def _sparse_hook(cls: type[Model], hints: dict[str, Any]) -> Callable[[dict[str, Any]], Model]:
    """Structure a record carrying few of the model's fields by walking the keys it has.

    The generated function hands such records here: a loop over a handful of keys costs less
    than one ``dict.get`` per field of a large model. ``hints``: ``cls``'s type hints.
    """
    renames = cls.__renames__
    table: dict[str, tuple[Callable[[Any, Any], None], type, Callable[[Any, Any], Any], Any]] = {}
    for a in attrs.fields(cls):
        if a.name != "extra":
            inner = without_none(hints[a.name])
            slot = inspect.getattr_static(cls, a.name)  # the slot's descriptor: set it directly
            # (an int goes through its hook: it must fit in 64 bits)
            fast = inner if inner in _PASS_THROUGH and inner is not int else _Never
            fast = _UtcIsoString if inner is dt.datetime else fast
            handler = converter.get_structure_hook(inner)
            table[renames.get(a.name) or a.name] = (slot.__set__, fast, handler, inner)
    set_extra = inspect.getattr_static(cls, "extra").__set__
    set_id = inspect.getattr_static(cls, "id").__set__ if "id" in table else None
    id_required = set_id is not None and _id_required(cls)

    def structure(data: dict[str, Any]) -> Model:
        obj = _new(cls)
        extra = None
        for key, value in data.items():
            entry = table.get(key)
            if entry is None:  # a key this model does not know (yet)
                if extra is None:
                    extra = {}
                extra[key] = value
            elif value is not None:
                set_slot, fast, handler, t = entry
                if value.__class__ is fast:
                    set_slot(obj, value)
                elif (  # Cliniko's own datetime form, "...Z", parsed inline
                    fast is _UtcIsoString
                    and value.__class__ is str
                    and value
                    and (parsed := _fromisoformat(value)).tzinfo is _UTC
                ):
                    set_slot(obj, parsed)
                else:
                    set_slot(obj, handler(value, t))
        if extra is not None:
            set_extra(obj, Extra(extra))
        if set_id is not None and data.get("id") is None:
            own = getattr(obj, "links", None) if "links" in table else None
            if isinstance(own, Link) and own.id is not None:  # no id: take it from links.self
                set_id(obj, own.id)
            elif id_required:
                raise ModelDecodeError(_NO_ID.format(cls.__name__))
        return obj

    return structure


class _ModelCode:
    """The source of one model's structure function and the names it refers to."""

    def __init__(self, cls: type[Model]) -> None:
        self.cls = cls
        self.names: dict[str, Any] = {
            "_cls": cls,
            "_new": _new,
            "_Mapping": Mapping,
            "_Error": ModelDecodeError,
            "_Extra": Extra,
            "_Link": Link,
            "_LinkBuilder": _LinkBuilder,
            "_Builder": _filler(cls),
            "_iso_dt": _fromisoformat,
            "_iso_date": _fromisodate,
            "_UTC": _UTC,
        }
        self.lines: list[str] = []

    def ref(self, prefix: str, i: int, value: Any) -> str:
        name = f"_{prefix}{i}"
        self.names[name] = value
        return name

    def convert(self, i: int, inner: Any, v: str = "v") -> str:
        """An expression turning the local ``v`` (not None) into the field's value."""
        t = self.ref("t", i, inner)
        if (isinstance(inner, type) and issubclass(inner, Model)) or _is_tagged_union(inner):
            return f"{self.ref('m', i, _nested_hook(inner))}({v})"
        if _is_homogeneous_tuple(inner) and _is_model_type(typing.get_args(inner)[0]):
            item = self.ref("m", i, _nested_hook(typing.get_args(inner)[0]))
            slow = self.ref("h", i, converter.get_structure_hook(inner))
            # Cliniko's nested arrays are short: one or two items without map() and tuple().
            return (
                f"(({item}({v}[0]),) if (k := len({v})) == 1 else ({item}({v}[0]), {item}({v}[1])) "
                f"if k == 2 else tuple(map({item}, {v}))) if {v}.__class__ is list "
                f"else {slow}({v}, {t})"
            )
        hook = converter.get_structure_hook(inner)
        h = self.ref("h", i, hook)
        if inner is int and hook is _int:  # ids: int64 sent as strings, converted inline
            # (18 digits at most inline: a longer one is range-checked by the hook)
            return (
                f"{v} if {v}.__class__ is {t} and {-_INT64} <= {v} < {_INT64} else {t}({v}) "
                f"if {v}.__class__ is str and len({v}) < 19 and {v}.isdigit() else {h}({v}, {t})"
            )
        if inner in _PASS_THROUGH:
            return f"{v} if {v}.__class__ is {t} else {h}({v}, {t})"
        if inner is dt.datetime:  # "...Z": parsed inline; other forms and "" take the hook
            return (
                f"p if {v}.__class__ is str and {v} and (p := _iso_dt({v})).tzinfo is _UTC "
                f"else {h}({v}, {t})"
            )
        if inner is dt.date:
            return f"_iso_date({v}) if {v}.__class__ is str and len({v}) == 10 else {h}({v}, {t})"
        return f"{h}({v}, {t})"

    def value(
        self, i: int, name: str, inner: Any, emit: Callable[[str], None], pad: str, v: str = "v"
    ) -> None:
        """Lines setting ``obj.<name>`` from the local ``v`` (not None), indented by ``pad``."""
        if inner is Link:  # {"links": {"self": url}} (a record's own link: {"self": url})
            h = self.ref("h", i, converter.get_structure_hook(Link))
            emit(f"{pad}if {v}.__class__ is dict \\")
            emit(f"{pad}        and (u := {v}.get('links', {v})).__class__ is dict \\")
            emit(f"{pad}        and (u := u.get('self')).__class__ is str:")
            emit(f"{pad}    link = _LinkBuilder()")
            emit(f"{pad}    link.url = u")
            emit(f"{pad}    link.__class__ = _Link")
            emit(f"{pad}    obj.{name} = link")
            emit(f"{pad}else:")
            emit(f"{pad}    obj.{name} = {h}({v}, _Link)")
        else:
            emit(f"{pad}obj.{name} = {self.convert(i, inner, v)}")

    def field(self, i: int, name: str, wire: str, inner: Any) -> None:
        key = repr(wire)
        emit = self.lines.append
        emit(f"    v = get({key})")
        emit("    if v is not None:")
        self.value(i, name, inner, emit, "        ")
        emit(f"    elif {key} not in data:")
        emit("        missing += 1")

    def own_id(self, emit: Callable[[str], None], id_value: str) -> None:
        """Lines making sure the record has an id (``id_value``: the expression of its value)."""
        wires = self.wires
        required = "id" in wires and _id_required(self.cls)
        if "id" in wires and ("links" in wires or required):
            emit(f"    if {id_value} is None:")
            if "links" in wires:  # no id: take it from links.self
                emit("        own = getattr(obj, 'links', None)")
                emit("        if own.__class__ is _Link and own.id is not None:")
                emit("            obj.id = own.id")
            if required:  # neither: the record is not what the model guarantees
                self.names["_no_id"] = _NO_ID.format(self.cls.__name__)
                indent = "            " if "links" in wires else "        "
                if "links" in wires:
                    emit("        else:")
                emit(f"{indent}raise _Error(_no_id)")

    def build(self) -> Callable[..., Model]:
        cls = self.cls
        renames = cls.__renames__
        self.hints = hints = typing.get_type_hints(cls)
        self.fields = [
            (i, a.name, renames.get(a.name) or a.name)
            for i, a in enumerate(attrs.fields(cls))
            if a.name != "extra"
        ]
        self.wires = wires = [wire for _, _, wire in self.fields]
        #: each learned shape: the fields it carries, the keys the model does not know
        self.shapes: list[tuple[list[tuple[int, str, str]], list[Any]]] = []
        self.learned: set[frozenset[Any]] = set()
        self.names["_known"] = frozenset(wires)
        self.names["_shapes"] = self.shapes
        self.names["_lengths"] = set()  # lengths of the shapes learned
        self.names["_seen"] = set()  # lengths of records that took this path once
        self.names["_learn"] = self.learn
        emit = self.lines.append
        emit(f"    if n and len(_shapes) < {_SHAPES} and len(_seen) < {_SHAPES * 8}:")
        emit("        if n in _seen:  # the second time: a page, not a one-off (compiling costs)")
        emit("            _seen.discard(n)")
        emit("            _learn(data)  # records with these keys: the code above from now on")
        emit("            return _self(data)")
        emit("        _seen.add(n)")
        if len(wires) >= _SPARSE_FROM:  # few keys of a large model: loop over those
            self.names["_sparse"] = _sparse_hook(cls, hints)
            emit(f"    if n < {len(wires) // 3}:")
            emit("        return _sparse(data)")
        emit("    obj = _Builder()")
        emit("    get = data.get")
        emit("    missing = 0")
        for i, name, wire in self.fields:
            self.field(i, name, wire, without_none(hints[name]))
        emit(f"    if n + missing != {len(wires)}:  # keys this model does not know (yet)")
        emit("        extra = {k: x for k, x in data.items() if k not in _known}")
        emit("        if extra:")
        emit("            obj.extra = _Extra(extra)")
        self.own_id(emit, "get('id')")
        emit("    obj.__class__ = _cls  # done: the frozen model from here on")
        emit("    return obj")
        fn = self.names["_self"] = self.compile()
        fn.__qualname__ = f"structure_{cls.__name__}"
        return fn

    def compile(self) -> Callable[..., Any]:
        """The structure function: a path for each learned shape, then the general one.

        Before any shape is learned it is the general code itself; after, the shapes' code
        calls the general code (kept as ``_general``, never compiled again) for the rest.
        """
        cls = self.cls
        lines = [
            "def structure(data, _=None):",
            "    if data.__class__ is not dict:",
            "        if not isinstance(data, _Mapping):",
            "            raise _Error(",
            f"                f'expected an object for {cls.__name__}, '",
            "                f'got {type(data).__name__}'",
            "            )",
            "        data = dict(data)",
            "    n = len(data)",
        ]
        emit = lines.append
        for k, (present, unknown) in enumerate(self.shapes):
            total = len(present) + len(unknown)
            emit(f"    if n == {total}:")
            targets = [f"v{j}" for j in range(len(present))] + ["x_"] * len(unknown)
            emit("        try:")
            one = "," if total == 1 else ""
            emit(f"            {', '.join(targets)}, = _keys{k}(data){one}")
            emit("        except KeyError:  # other keys, as many: next shape or general path")
            emit("            pass")
            emit("        else:")
            emit("            obj = _Builder()")
            body: list[str] = []
            for j, (i, name, _wire) in enumerate(present):
                body.append(f"    if v{j} is not None:")
                inner = without_none(self.hints[name])
                self.value(i, name, inner, body.append, "        ", f"v{j}")
            if unknown:  # keys this model does not know (yet), in the record's order
                body.append(
                    "    obj.extra = _Extra({k: x for k, x in data.items() if k not in _known})"
                )
            index = {wire: j for j, (_, _, wire) in enumerate(present)}
            self.own_id(body.append, f"v{index['id']}" if "id" in index else "None")
            lines.extend("        " + line for line in body)
            emit("            obj.__class__ = _cls")
            emit("            return obj")
        if self.shapes:
            emit("    return _general(data)")
        else:
            lines.extend(self.lines)
        source = "\n".join(lines) + "\n"
        code = compile(source, f"<cliniko_async structure {cls.__qualname__}>", "exec")
        exec(code, self.names)  # noqa: S102 - our own generated source
        fn: Callable[..., Any] = self.names.pop("structure")
        return fn

    def learn(self, data: dict[Any, Any]) -> None:
        """Give the structure function a path for records with exactly ``data``'s keys.

        Records of one response (and of one endpoint) have the same keys, so from the second
        one on (a one-off record does not pay for the compiling) a record's values come out
        in one ``itemgetter`` call instead of one ``dict.get`` per field, and nothing is
        counted: same length and every key found means the same keys (a record of the same
        length with other keys tries the next shape, then takes the general path). Keys the
        model does not know are part of the shape (they go to ``extra``, as on the general
        path): a field Cliniko adds does not send every record down the general path. The
        function keeps its identity (callers hold it): its code is replaced. A model learns
        at most ``_SHAPES`` shapes (a server varying its keys for ever cannot make it
        compile for ever).
        """
        with _BUILD_LOCK:
            keys = frozenset(data)
            if keys in self.learned or len(self.shapes) >= _SHAPES:
                return
            known: frozenset[Any] = self.names["_known"]
            present = [(i, name, wire) for i, name, wire in self.fields if wire in keys]
            unknown = [key for key in data if key not in known]
            self.names[f"_keys{len(self.shapes)}"] = operator.itemgetter(
                *(wire for _, _, wire in present), *unknown
            )
            function = self.names["_self"]
            if not self.shapes:  # the general code, as a function of its own from now on
                self.names["_general"] = types.FunctionType(
                    function.__code__, self.names, "structure_general", function.__defaults__
                )
            self.shapes.append((present, unknown))
            self.learned.add(keys)
            function.__code__ = self.compile().__code__
            self.names["_lengths"].add(len(data))


#: A record whose model guarantees an ``id`` (``id: int``, no default) arrived without one.
_NO_ID = "{}: the record has no id (and no links.self to take it from)"


def _id_required(cls: type[Model]) -> bool:
    """Whether ``cls`` guarantees an ``id``: its field has no default (the generator's
    ``id: int`` for the records the spec always gives one)."""
    return attrs.fields_dict(cls)["id"].default is attrs.NOTHING


def _is_model_type(t: Any) -> bool:
    return (isinstance(t, type) and issubclass(t, Model)) or _is_tagged_union(t)


_BUILDING: set[type[Model]] = set()  # models whose structure function is being built
_BUILT: dict[type[Model], Callable[..., Model]] = {}
_BUILD_LOCK = threading.RLock()
#: Models with this many fields take the loop for records carrying under a third of them.
_SPARSE_FROM = 12
#: Record shapes (key sets) a model learns, at most: see ``_ModelCode.learn``.
_SHAPES = 8


def _nested_hook(t: Any) -> Callable[[Any], Any]:
    """The one-argument structure function of a nested model (or tagged union): ours as it
    is, a hook registered by hand (cattrs' two arguments) bound to its type."""
    hook: Any = converter.get_structure_hook(t)
    if hook is _BUILT.get(t) or hook in _UNION_HOOKS:
        return hook  # type: ignore[no-any-return]
    return _bind(hook, t)


converter.register_structure_hook_factory(
    lambda t: isinstance(t, type) and issubclass(t, Model), _model_hook
)


def _is_tagged_union(t: Any) -> bool:
    try:
        return t in TAGGED_UNIONS
    except TypeError:  # unhashable annotations
        return False


def _bind(handler: Callable[[Any, Any], Any], t: Any) -> Callable[[Any], Any]:
    """A hook registered by hand, called with cattrs' two arguments."""

    def structure_nested(data: Any) -> Any:
        return handler(data, t)

    return structure_nested


#: The tagged unions' hooks (one argument, like the generated model functions).
_UNION_HOOKS: set[Callable[..., Any]] = set()


def _tagged_union_hook(t: Any) -> Callable[..., Model]:
    """Pick the member by its tag (``type``); an unknown tag falls back to the first member.

    A member's structure function is built the first time its tag is seen (a program that
    never meets a checkbox field never builds the checkbox models' functions: start-up).
    """
    tag, variants = TAGGED_UNIONS[t]
    first = next(iter(variants))
    one_arg: dict[str, Callable[[Any], Model]] = {}  # tag -> the member's structure function

    def member(value: str) -> Callable[[Any], Model]:
        known = one_arg.get(value)
        if known is not None:
            return known
        if value not in variants:
            return member(first)
        found = one_arg[value] = _nested_hook(variants[value])
        return found

    def hook(data: Any, _: Any = None) -> Model:
        if data.__class__ is dict and (value := data.get(tag)).__class__ is str:
            structure_member = one_arg.get(value)
            if structure_member is not None:
                return structure_member(data)
            return member(value)(data)
        if not isinstance(data, Mapping):
            raise ModelDecodeError(f"expected an object, got {type(data).__name__}")
        return member(str(data.get(tag)))(data)

    _UNION_HOOKS.add(hook)
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


def structurer(cls: type[T]) -> Callable[[Any], T]:
    """``lambda data: structure(data, cls)`` with ``cls``'s hook looked up once, for hot paths."""
    hook = converter.get_structure_hook(cls)

    def structure_one(data: Any) -> T:
        try:
            return hook(data, cls)  # type: ignore[no-any-return]
        except ModelDecodeError:
            raise
        except Exception as exc:  # as _model_errors: anything else is a ModelDecodeError
            raise ModelDecodeError(f"{cls.__name__}: {type(exc).__name__}: {exc}"[:300]) from None

    return structure_one


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
                wire = cls.__renames__.get(field.name) or field.name
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
