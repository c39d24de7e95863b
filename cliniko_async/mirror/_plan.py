"""Which resources a mirror copies, and how each one is read: the plan.

A resource is mirrored when it has a plain ``list`` operation (no path parameters) whose records
carry ids. How its changes and deletions are seen follows from the filters Cliniko documents
for that list (the filter form first, the older ``/deleted`` list where there is no filter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import attrs

from .._filters import FilterType
from .._model import Model
from .._pagination import has_ids
from .._resource import ListOp
from ..errors import ConfigurationError
from ..resources import RESOURCES

__all__ = ["ResourcePlan", "plan"]

Deletions = Literal["filter", "list", "list_all", "none"]


@attrs.frozen
class ResourcePlan:
    """How one resource is mirrored.

    ``incremental``: the list filters on ``updated_at`` (otherwise every run reads it whole).
    ``lifecycle``: the ``archived_at`` / ``cancelled_at`` filters sent with ``*`` so hidden
    (archived, cancelled) records are listed too. ``deletions``: ``"filter"`` (the list's
    ``deleted_at`` filter), ``"list"`` (the ``/deleted`` list filtered on ``deleted_at``),
    ``"list_all"`` (the ``/deleted`` list read whole: it has no ``deleted_at`` filter) or
    ``"none"`` (Cliniko offers no way to see deletions of this resource).
    ``resume_by_id``: an interrupted first copy resumes after the last committed id.
    """

    name: str
    model: type[Model]
    incremental: bool
    lifecycle: tuple[str, ...]
    deletions: Deletions
    resume_by_id: bool

    @property
    def table(self) -> str:
        return self.name


def _filters(op: ListOp[Any]) -> dict[str, FilterType]:
    return dict(op.filters or {})


def plan_for(name: str) -> ResourcePlan | None:
    """The plan for ``name``, or None when it cannot be mirrored."""
    cls = RESOURCES.get(name)
    if cls is None:
        return None
    ops = cls.operations()
    op = ops.get("list")
    if not isinstance(op, ListOp) or "{" in op.path or not has_ids(op.model):
        return None
    filters = _filters(op)
    lifecycle = tuple(f for f in ("archived_at", "cancelled_at") if f in filters)
    deletions: Deletions = "none"
    deleted = ops.get("list_deleted")
    if "deleted_at" in filters:
        deletions = "filter"
    elif isinstance(deleted, ListOp):
        deletions = "list" if "deleted_at" in _filters(deleted) else "list_all"
    return ResourcePlan(
        name=name,
        model=op.model,
        incremental="updated_at" in filters,
        lifecycle=lifecycle,
        deletions=deletions,
        resume_by_id=filters.get("id") is FilterType.INTEGER,
    )


def plan(resources: Iterable[str] | None = None) -> list[ResourcePlan]:
    """Plans for ``resources`` (default: every resource that can be mirrored), in name order."""
    if resources is None:
        found = (plan_for(name) for name in sorted(RESOURCES))
        return [p for p in found if p is not None]
    out: list[ResourcePlan] = []
    for name in resources:
        one = plan_for(name)
        if one is None:
            known = ", ".join(p.name for p in plan())
            raise ConfigurationError(f"{name!r} cannot be mirrored; choose from: {known}")
        if one not in out:
            out.append(one)
    return out
