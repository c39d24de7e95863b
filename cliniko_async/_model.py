"""The base classes of every model, and the registry of tagged unions."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

__all__ = ["EMPTY", "TAGGED_UNIONS", "Input", "Model", "tagged_union"]

EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class Model:
    """A record from the API. Fields are named as the API sends them (``from`` -> ``from_``).

    ``extra`` holds any keys the API sent that this version of the library does not know yet,
    so fields Cliniko adds later stay reachable.
    """

    #: python attribute name -> wire name, for names that are not Python identifiers.
    __renames__: ClassVar[dict[str, str]] = {}

    extra: Mapping[str, Any] = attrs.field(default=EMPTY, eq=False, repr=False)


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
