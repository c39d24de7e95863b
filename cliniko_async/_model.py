"""The base classes of every model, and the registry of tagged unions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

__all__ = ["EMPTY", "TAGGED_UNIONS", "Extra", "Input", "Model", "tagged_union"]


class Extra(Mapping[str, Any]):
    """A read-only mapping of the keys a response carried that the model does not know."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Extra({self._data!r})"

    def __reduce__(self) -> tuple[type[Extra], tuple[dict[str, Any]]]:
        return (Extra, (dict(self._data),))


EMPTY: Mapping[str, Any] = Extra({})


@attrs.frozen(kw_only=True)
class Model:
    """A record from the API. Fields are named as the API sends them (``from`` -> ``from_``).

    ``extra`` holds any keys the API sent that this version of the library does not know yet,
    so fields Cliniko adds later stay reachable.
    """

    #: python attribute name -> wire name, for names that are not Python identifiers.
    __renames__: ClassVar[dict[str, str]] = {}

    extra: Mapping[str, Any] = attrs.field(default=EMPTY, eq=False, repr=False)

    if not TYPE_CHECKING:  # invisible to type checkers: a typo stays a type error

        def __getattr__(self, name: str) -> Any:
            # The converter sets only the fields a response carried (Cliniko's records are
            # sparse); a field it left unset reads as its default, like one set by __init__.
            cls = type(self)
            defaults = _DEFAULTS.get(cls)
            if defaults is None:
                defaults = _DEFAULTS[cls] = {a.name: a.default for a in attrs.fields(cls)}
            # A field without a default (a record's id) is always set: the converter refuses
            # a record without it. Unset all the same, it is missing, not attrs.NOTHING.
            if name in defaults and defaults[name] is not attrs.NOTHING:
                return defaults[name]
            raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")


_DEFAULTS: dict[type, dict[str, Any]] = {}


@attrs.frozen(kw_only=True)
class Input:
    """A request body. Fields left ``UNSET`` are not sent; ``None`` is sent as ``null``.

    ``__required__`` names the fields Cliniko requires when creating a record (checked locally,
    before any request is sent).
    """

    __renames__: ClassVar[dict[str, str]] = {}
    __required__: ClassVar[frozenset[str]] = frozenset()


#: union type -> (tag field, tag value -> model); the first model is the fallback for new tags.
TAGGED_UNIONS: dict[Any, tuple[str, dict[str, type[Model]]]] = {}


def tagged_union(union: Any, tag: str, variants: dict[str, type[Model]]) -> None:
    """Declare that ``union``'s members are told apart by the value of their ``tag`` field."""
    TAGGED_UNIONS[union] = (tag, variants)
