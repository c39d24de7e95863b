"""Small value types shared by the models, the request pipeline and the fake server."""

from __future__ import annotations

import enum
from typing import Final, Literal
from urllib.parse import urlsplit

import attrs

__all__ = ["UNSET", "Link", "LinkOrLinks", "Unset", "parse_id"]


class Unset(enum.Enum):
    """The type of :data:`UNSET`: a field the caller did not set (distinct from ``None``)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False


#: Marks a request-model field the caller did not set. It is left out of the request body,
#: while ``None`` is sent as JSON ``null``.
UNSET: Final = Unset.UNSET


def parse_id(value: object) -> int:
    """Convert an id sent as a JSON number or a numeric string into an ``int``.

    Ids are 64-bit and exceed 2**53, so they never pass through ``float``.
    """
    if isinstance(value, bool):
        raise TypeError(f"expected an id (integer or numeric string), got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise TypeError(f"expected an id (integer or numeric string), got {value!r}")


@attrs.frozen(slots=True)
class Link:
    """A reference to another record, sent by Cliniko as ``{"links": {"self": url}}``.

    ``id`` is the referenced record's id, parsed from the URL's last numeric path segment
    (``None`` when the link points at a list or a singleton such as ``/settings``).
    """

    url: str

    @property
    def id(self) -> int | None:
        path = urlsplit(self.url).path.rstrip("/")
        last = path.rsplit("/", 1)[-1]
        return int(last) if last.isdigit() else None


#: A link where the docs' examples sometimes send a list of links (patient form signatures).
LinkOrLinks = Link | tuple[Link, ...]
