# pyright: basic
# (internal, defensive at runtime: the strict checks cover the generated API surface over it)
"""Declarative resources: operation descriptors and the one generic implementation behind them.

A resource is a class of descriptors, one per API operation::

    class PatientsResource(Resource[ModeT]):
        list = ListOp("/patients", "patients", Patient, filters={...})
        get = GetOp("/patients/{id}", Patient)
        archive = ActionOp("POST", "/patients/{id}/archive")

``Resource[Async]`` (on :class:`~cliniko_async.Cliniko`) hands out coroutine methods and async
paginators; ``Resource[Sync]`` (on :class:`~cliniko_async.SyncCliniko`) the same operations,
blocking. Every descriptor exposes ``method``, ``path``, ``model``, ``deprecated`` and ``name``
(``ListOp`` adds ``key``, ``filters``, ``params``; write operations add ``body``), which the fake
server and the coverage tests read.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import types
import typing
import warnings
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, overload

from ._converter import ModelDecodeError as _ConverterDecodeError
from ._converter import structurer, unstructure_body
from ._filters import FilterType, QueryFilters, encode_filters
from ._json import jsonable
from ._links import resolve_link
from ._session import QueryParams, Session
from .errors import ClinikoError, ConfigurationError, DecodeError, ModelDecodeError

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from ._pagination import Paginator
    from ._sync_pagination import SyncPaginator

__all__ = [
    "ActionOp",
    "Async",
    "CreateOp",
    "GetOp",
    "ListOp",
    "ModeT",
    "Resource",
    "ResourceHost",
    "Sync",
    "UpdateOp",
]

M = TypeVar("M")
R = TypeVar("R")


class Async:
    """Type marker: operations are coroutines (``Cliniko``)."""


class Sync:
    """Type marker: operations block (``SyncCliniko``)."""


ModeT = TypeVar("ModeT", Async, Sync)
PathId = int | str
BodyType = type[Any] | types.UnionType
ParamValue = str | int | dt.date | bool


class ResourceHost(Protocol):
    """What a resource needs from its client: the async session and, for sync use, a portal."""

    @property
    def _session(self) -> Session: ...

    @property
    def _portal(self) -> BlockingPortal | None: ...


class Resource(Generic[ModeT]):
    """Base class of every resource.

    A generated resource declares its operations' metadata in ``OPERATIONS`` (name -> operation
    descriptor: ``method``, ``path``, ``model``, ``body``, ``filters``...) and one typed method
    per operation that hands its arguments to :meth:`_list`, :meth:`_get` or :meth:`_send`, the
    one implementation behind every resource. Hand-written operations may still be declared as
    descriptor class attributes.
    """

    __slots__ = ("_host",)

    #: Operation name -> its descriptor (the metadata the fake server, the CLI and tests read).
    OPERATIONS: typing.ClassVar[Mapping[str, _Op]] = {}

    def __init__(self, host: ResourceHost) -> None:
        self._host = host

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, op in vars(cls).get("OPERATIONS", {}).items():
            op.__set_name__(cls, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    @classmethod
    def operations(cls) -> dict[str, _Op]:
        """Every operation of this resource, by attribute name."""
        ops: dict[str, _Op] = {}
        for klass in reversed(cls.__mro__):
            ops.update(vars(klass).get("OPERATIONS", {}))
            for name, value in vars(klass).items():
                if isinstance(value, _Op):
                    ops[name] = value
        return ops

    # -- the one implementation the generated methods call ------------------------------------
    def _list(
        self,
        op: ListOp[Any],
        ids: tuple[PathId, ...],
        q: QueryFilters | None,
        sort: str | typing.Sequence[str] | None,
        order: str | None,
        per_page: int | None,
        params: Mapping[str, ParamValue] | None,
    ) -> Any:
        if sort is not None and not isinstance(sort, str):
            if not isinstance(sort, list | tuple) or not all(isinstance(f, str) for f in sort):
                raise ConfigurationError(
                    f"sort must be a field name or a list of field names (strings), got "
                    f"{type(sort).__name__}: e.g. sort='last_name' or sort=['last_name', 'id']"
                )
            sort = ",".join(sort)
        paginator = AsyncList[Any](op, self._host)(
            *ids, q=q, sort=sort, order=order, per_page=per_page, params=params
        )
        portal = self._host._portal
        if portal is None:
            return paginator
        from ._sync_pagination import SyncPaginator

        return SyncPaginator(paginator, portal)

    def _get(
        self,
        op: GetOp[Any],
        ids: tuple[PathId, ...],
        q: QueryFilters | None,
        params: Mapping[str, ParamValue] | None,
        *,
        raw: bool = False,
    ) -> Any:
        op.warn_if_deprecated()
        query = _encode_params(op, op.filters, op.params, q, None, None, params)
        return self._run(_single(op, self._host._session, ids, query, None, raw=raw))

    def _send(self, op: _Op, ids: tuple[PathId, ...], *body: object, raw: bool = False) -> Any:
        op.warn_if_deprecated()
        ids_, payload = _split_body(op, (*ids, *body))
        payload = _body(op, payload, for_create=isinstance(op, CreateOp))
        return self._run(_single(op, self._host._session, ids_, None, payload, raw=raw))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        portal = self._host._portal
        if portal is None:
            return coro
        return portal.call(_await, coro)


_PATH_FIELD = re.compile(r"{(\w+)}")
#: A path id: ASCII digits only (no Arabic-Indic or fullwidth digits, no "12\n"), no sign, not 0.
_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
_MAX_ID = 2**63 - 1  # Cliniko's ids are int64
#: Sort fields: snake_case names, digits allowed after the first letter (``address_1``).
_SORT = re.compile(r"[a-z_][a-z0-9_]*(:(asc|desc))?(,[a-z_][a-z0-9_]*(:(asc|desc))?)*", re.ASCII)
#: Lists Cliniko returns in a fixed order (``sort``/``order`` are refused, not silently ignored).
UNSORTABLE_LISTS = frozenset({"available_times"})


def check_id(value: object, *, name: str = "id", where: str = "") -> str:
    """A path id as sent: a positive int (or a string of ASCII digits); else ConfigurationError."""
    text: str | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value) if 0 < value <= _MAX_ID else None
    elif isinstance(value, str) and _ID.fullmatch(value) and 0 < int(value) <= _MAX_ID:
        text = str(int(value))
    if text is None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ConfigurationError(
            f"{where or 'this operation'}: {name} must be a positive integer id (an int, or a "
            f"string of ASCII digits 0-9, e.g. {name}=12 or '12'), got {shown}"
            f" of type {type(value).__name__}; nothing was sent"
        )
    return text


class _Op:
    """Common parts of every operation descriptor."""

    method: str
    model: type[Any] | None
    #: The request body's model, or its name in :mod:`cliniko_async.models` (imported on first
    #: use, so a program that only reads records never imports the request-body models).
    _body_ref: BodyType | str | None = None
    required_params: tuple[str, ...] = ()

    @property
    def body(self) -> BodyType | None:
        """The request body's model (None: a mapping or nothing)."""
        ref = self._body_ref
        if isinstance(ref, str):
            from . import models

            ref = self._body_ref = getattr(models, ref)
        return ref

    def __init__(self, path: str, *, deprecated: str | None = None) -> None:
        self.path = path
        parts = list(string.Formatter().parse(path))
        self.path_params: tuple[str, ...] = tuple(name for _, name, _, _ in parts if name)
        #: The literal text around the ids (``/patients/{id}`` -> ``("/patients/", "")``),
        #: joined with the checked ids by :meth:`render_path` (no ``str.format`` per call).
        text = [literal for literal, _, _, _ in parts]
        if len(text) == len(self.path_params):  # the path ends with an id
            text.append("")
        self._path_text: tuple[str, ...] = tuple(text)
        self.deprecated = deprecated
        self.name = "?"
        self.owner_name = "?"
        self._structure: Any = None  # the model's structure function, looked up on first use

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner_name = owner.__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.path}>"

    def qualname(self) -> str:
        return f"{self.owner_name}.{self.name}"

    def render_path(self, ids: tuple[PathId, ...]) -> str:
        """Fill the path's ``{params}`` with ``ids`` (validated: integers or digit strings)."""
        if len(ids) != len(self.path_params):
            wanted = ", ".join(self.path_params) or "no ids"
            raise ConfigurationError(
                f"{self.qualname()}() takes {len(self.path_params)} id argument(s) ({wanted}), "
                f"got {len(ids)}"
            )
        text = self._path_text
        if len(ids) == 1:  # the common case: one id
            value = ids[0]
            if type(value) is int and 0 < value <= _MAX_ID:  # not a bool
                return f"{text[0]}{value}{text[1]}"
            return f"{text[0]}{self._checked_id(0, value)}{text[1]}"
        out = [text[0]]
        for i, value in enumerate(ids):
            out += (self._checked_id(i, value), text[i + 1])
        return "".join(out)

    def _checked_id(self, i: int, value: object) -> str:
        # check_id() returns ASCII digits only: nothing to percent-encode.
        return check_id(value, name=self.path_params[i], where=f"{self.qualname()}()")

    def warn_if_deprecated(self) -> None:
        if self.deprecated:
            warnings.warn(
                f"{self.qualname()} ({self.method} {self.path}) is deprecated: {self.deprecated}",
                DeprecationWarning,
                stacklevel=4,
            )

    def structure_result(self, data: Any, session: Session, url: str) -> Any:
        if self.model is None:
            return None
        hook = self._structure
        if hook is None:
            hook = self._structure = structurer(self.model)
        try:
            return hook(data)
        except (_ConverterDecodeError, ModelDecodeError, RecursionError) as exc:
            try:
                public = str(resolve_link(session.config.base_url, url).copy_with(query=None))
            except ClinikoError:
                public = str(session.config.base_url)
            raise DecodeError(
                f"the response did not match the {self.model.__name__} model",
                method=self.method,
                url=public,
                status_code=200,
                snippet=str(exc)[:200] if not isinstance(exc, RecursionError) else "too deep",
            ) from None


def _encode_params(
    op: _Op,
    filters: Mapping[str, FilterType],
    allowed: tuple[str, ...],
    q: QueryFilters | None,
    sort: str | None,
    order: str | None,
    params: Mapping[str, ParamValue] | None,
) -> list[tuple[str, str]]:
    if q is None and sort is None and order is None and params is None and not op.required_params:
        return []  # nothing to check or encode (a plain get)
    if params is not None and not isinstance(params, Mapping):
        raise ConfigurationError(
            f"{op.qualname()}(): params must be a mapping of name to value, got "
            f"{type(params).__name__}"
        )
    missing = [name for name in op.required_params if name not in (params or {})]
    if missing:
        raise ConfigurationError(
            f"{op.qualname()}() needs the query parameter(s) {', '.join(missing)}: pass "
            f"params={{{', '.join(repr(m) + ': ...' for m in missing)}}}"
        )
    out = [("q[]", f) for f in encode_filters(q, filters, operation=f"{op.qualname()}()")]
    if (sort is not None or order is not None) and getattr(op, "key", None) in UNSORTABLE_LISTS:
        raise ConfigurationError(
            f"{op.qualname()}(): Cliniko returns {getattr(op, 'key', '')} in a fixed order and "
            "cannot sort them: leave sort= and order= out (sort the results yourself)"
        )
    if sort is not None:
        if not isinstance(sort, str) or not _SORT.fullmatch(sort):
            raise ConfigurationError(
                f"sort={sort!r} is not valid: use comma-separated field names with an optional "
                "':asc' or ':desc', e.g. 'starts_at,created_at:desc' or 'address_1'"
            )
        out.append(("sort", sort))
    if order is not None:
        if not isinstance(order, str) or order not in ("asc", "desc"):
            raise ConfigurationError(f"order={order!r} must be 'asc' or 'desc'")
        out.append(("order", order))
    for name, value in (params or {}).items():
        if name not in allowed:
            raise ConfigurationError(
                f"{op.qualname()}() got unknown query parameter {name!r}; "
                f"it accepts {', '.join(allowed) or 'none'} (filters go in q=[...])"
            )
        if isinstance(value, dt.datetime):
            raise ConfigurationError(f"{name} takes a date (YYYY-MM-DD), not a datetime")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dt.date):
            text = value.isoformat()
        elif isinstance(value, str | int):
            text = str(value)
        else:
            raise ConfigurationError(
                f"{op.qualname()}(): query parameter {name}={value!r} must be a str, int, bool "
                f"or date, not {type(value).__name__}"
            )
        out.append((name, text))
    return out


# --------------------------------------------------------------------------------------------
# Bound operations: what ``cliniko.patients.list`` etc. evaluate to.


class _Bound(Generic[R]):
    __slots__ = ("_host", "_op")

    def __init__(self, op: Any, host: ResourceHost) -> None:
        self._op = op
        self._host = host

    def __repr__(self) -> str:
        return f"<bound {self._op!r}>"

    def _run_sync(self, coro_fn: Any, *args: Any) -> Any:
        portal = self._host._portal
        assert portal is not None
        return portal.call(coro_fn, *args)


class AsyncList(_Bound[M]):
    """``cliniko.<resource>.list...(*ids, q=..., sort=..., per_page=...)`` -> :class:`Paginator`."""

    __slots__ = ()

    def __call__(
        self,
        *ids: PathId,
        q: QueryFilters | None = None,
        sort: str | None = None,
        order: str | None = None,
        per_page: int | None = None,
        params: Mapping[str, ParamValue] | None = None,
    ) -> Paginator[M]:
        from ._pagination import Paginator, check_per_page  # (imported by the first list)

        op: ListOp[M] = self._op
        op.warn_if_deprecated()
        check_per_page(per_page)
        path = op.render_path(ids)
        query = _encode_params(op, op.filters, op.params, q, sort, order, params)
        return Paginator(self._host._session, path, op.key, op.model, query, per_page=per_page)


class SyncList(_Bound[M]):
    """Blocking twin of :class:`AsyncList`: returns an iterator over records."""

    __slots__ = ()

    def __call__(
        self,
        *ids: PathId,
        q: QueryFilters | None = None,
        sort: str | None = None,
        order: str | None = None,
        per_page: int | None = None,
        params: Mapping[str, ParamValue] | None = None,
    ) -> SyncPaginator[M]:
        from ._sync_pagination import SyncPaginator

        paginator = AsyncList[M](self._op, self._host)(
            *ids, q=q, sort=sort, order=order, per_page=per_page, params=params
        )
        portal = self._host._portal
        assert portal is not None
        return SyncPaginator(paginator, portal)


async def _single(
    op: _Op,
    session: Session,
    ids: tuple[PathId, ...],
    query: QueryParams | None,
    body: Any,
    *,
    raw: bool = False,
) -> Any:
    path = op.render_path(ids)
    if raw:
        from ._raw import RawResponse  # (imported by the first with_raw_response call)

        response, data = await session.request(
            op.method, path, params=query, json_body=body, raw=True
        )
        return RawResponse(
            status_code=response.status_code,
            headers=response.headers,
            parsed=op.structure_result(data, session, path),
        )
    data = await session.request(op.method, path, params=query, json_body=body)
    return op.structure_result(data, session, path)


class AsyncGet(_Bound[M]):
    """``await cliniko.<resource>.get(*ids, q=...)`` -> the record."""

    __slots__ = ()

    def __call__(
        self,
        *ids: PathId,
        q: QueryFilters | None = None,
        params: Mapping[str, ParamValue] | None = None,
    ) -> Coroutine[Any, Any, M]:
        op: GetOp[M] = self._op
        op.warn_if_deprecated()
        query = _encode_params(op, op.filters, op.params, q, None, None, params)
        return _single(op, self._host._session, ids, query, None)


class SyncGet(_Bound[M]):
    """Blocking twin of :class:`AsyncGet`."""

    __slots__ = ()

    def __call__(
        self,
        *ids: PathId,
        q: QueryFilters | None = None,
        params: Mapping[str, ParamValue] | None = None,
    ) -> M:
        coro = AsyncGet[M](self._op, self._host)(*ids, q=q, params=params)
        return self._run_sync(_await, coro)  # type: ignore[no-any-return]


async def _await(coro: Coroutine[Any, Any, R]) -> R:
    return await coro


def _check_required_keys(op: _Op, model: BodyType, body: Mapping[Any, Any]) -> None:
    """A mapping body for a create carries the fields Cliniko requires (by their wire names)."""
    required: frozenset[str] = getattr(model, "__required__", frozenset())
    if not required:
        return
    renames: Mapping[str, str] = getattr(model, "__renames__", {})
    missing = sorted(
        wire for wire in (renames.get(name, name) for name in required) if body.get(wire) is None
    )
    if missing:
        raise ConfigurationError(
            f"{op.qualname()}() body is missing required field(s) {', '.join(missing)}: "
            f"Cliniko refuses the create without them (or pass a {_type_name(model)})"
        )


def _body(op: _Op, body: object, *, for_create: bool) -> Any:
    if body is None:
        return None
    if isinstance(body, Mapping):
        if for_create and op.body is not None:
            _check_required_keys(op, op.body, body)
        # date / datetime / Decimal / enums / nested bodies become JSON values here; anything
        # that cannot be sent raises ConfigurationError before the request.
        return jsonable(body, where=f"{op.qualname()}() body")
    if op.body is not None and not isinstance(body, op.body):
        raise ConfigurationError(
            f"{op.qualname()}() takes a {_type_name(op.body)} (or a mapping), got "
            f"{type(body).__name__}"
        )
    return unstructure_body(body, for_create=for_create)


class AsyncSend(_Bound[R]):
    """``await cliniko.<resource>.create/update/archive/...(*ids, body)``."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Coroutine[Any, Any, R]:
        op: _Op = self._op
        op.warn_if_deprecated()
        ids, body = _split_body(op, args)
        payload = _body(op, body, for_create=isinstance(op, CreateOp))
        return _single(op, self._host._session, ids, None, payload)


class SyncSend(_Bound[R]):
    """Blocking twin of :class:`AsyncSend`."""

    __slots__ = ()

    def __call__(self, *args: Any) -> R:
        coro = AsyncSend[R](self._op, self._host)(*args)
        return self._run_sync(_await, coro)  # type: ignore[no-any-return]


def _type_name(t: BodyType) -> str:
    return " or ".join(a.__name__ for a in typing.get_args(t)) or getattr(t, "__name__", str(t))


def _split_body(op: _Op, args: tuple[Any, ...]) -> tuple[tuple[PathId, ...], object]:
    n = len(op.path_params)
    if len(args) == n:
        if isinstance(op, CreateOp | UpdateOp):
            raise ConfigurationError(
                f"{op.qualname()}() needs a request body after the id argument(s): "
                f"a {_type_name(op.body) if op.body else 'mapping'}"
            )
        return args, None
    if len(args) == n + 1:
        return args[:n], args[n]
    raise ConfigurationError(
        f"{op.qualname()}() takes {n} id argument(s) ({', '.join(op.path_params) or 'none'})"
        f"{' and a body' if op.body is not None or isinstance(op, CreateOp | UpdateOp) else ''}, "
        f"got {len(args)} argument(s)"
    )


# --------------------------------------------------------------------------------------------
# Descriptors


class _QueryOp(_Op, Generic[M]):
    """A ``GET`` that takes query parameters: filters (``q[]``) and named parameters."""

    method = "GET"

    def __init__(
        self,
        path: str,
        model: type[M],
        *,
        filters: Mapping[str, FilterType] | None = None,
        params: tuple[str, ...] = (),
        required_params: tuple[str, ...] = (),
        deprecated: str | None = None,
    ) -> None:
        super().__init__(path, deprecated=deprecated)
        self.model: type[M] = model
        self.filters: Mapping[str, FilterType] = dict(filters or {})
        self.params = params
        self.required_params = required_params


class ListOp(_QueryOp[M]):
    """A paginated ``GET`` list."""

    def __init__(
        self,
        path: str,
        key: str,
        model: type[M],
        *,
        filters: Mapping[str, FilterType] | None = None,
        params: tuple[str, ...] = (),
        required_params: tuple[str, ...] = (),
        deprecated: str | None = None,
    ) -> None:
        super().__init__(
            path,
            model,
            filters=filters,
            params=params,
            required_params=required_params,
            deprecated=deprecated,
        )
        self.key = key

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> AsyncList[M]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> SyncList[M]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type) -> Any:
        if obj is None:
            return self
        if obj._host._portal is None:
            return AsyncList[M](self, obj._host)
        return SyncList[M](self, obj._host)


class GetOp(_QueryOp[M]):
    """A ``GET`` of one object (a record, settings, conflicts, ...)."""

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> AsyncGet[M]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> SyncGet[M]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type) -> Any:
        if obj is None:
            return self
        if obj._host._portal is None:
            return AsyncGet[M](self, obj._host)
        return SyncGet[M](self, obj._host)


class _SendOp(_Op, Generic[R]):
    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> AsyncSend[R]: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> SyncSend[R]: ...
    def __get__(self, obj: Resource[Any] | None, owner: type) -> Any:
        if obj is None:
            return self
        if obj._host._portal is None:
            return AsyncSend[R](self, obj._host)
        return SyncSend[R](self, obj._host)


class _RecordSendOp(_SendOp[M]):
    """A request with a body that answers with the record."""

    def __init__(
        self,
        path: str,
        model: type[M],
        body: BodyType | str | None,
        *,
        deprecated: str | None = None,
    ) -> None:
        super().__init__(path, deprecated=deprecated)
        self.model: type[M] = model
        self._body_ref = body


class CreateOp(_RecordSendOp[M]):
    """``POST`` a new record: ``create(*parent_ids, body)`` -> the record."""

    method = "POST"


class UpdateOp(_RecordSendOp[M]):
    """``PATCH`` a record: ``update(id, body)`` -> the record. Only fields set are sent."""

    method = "PATCH"


class ActionOp(_SendOp[R]):
    """Any other call (archive, unarchive, cancel, delete, ...); returns the model or None."""

    @overload
    def __init__(
        self: ActionOp[None],
        method: str,
        path: str,
        model: None = None,
        body: BodyType | str | None = None,
        *,
        deprecated: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: ActionOp[M],
        method: str,
        path: str,
        model: type[M],
        body: BodyType | str | None = None,
        *,
        deprecated: str | None = None,
    ) -> None: ...
    def __init__(
        self,
        method: str,
        path: str,
        model: type[Any] | None = None,
        body: BodyType | str | None = None,
        *,
        deprecated: str | None = None,
    ) -> None:
        super().__init__(path, deprecated=deprecated)
        self.method = method
        self.model = model
        self._body_ref = body
