"""The base class of every response model."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

__all__ = ["EMPTY", "Model"]

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
