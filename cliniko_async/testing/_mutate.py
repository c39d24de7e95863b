"""Records that change over time: a seeded mutation step for the fake Cliniko.

::

    fake = FakeCliniko(patients=1000)
    settle(fake)                      # no seeded timestamp lies in the fake's future
    ...                               # a first sync
    done = mutate(fake, fraction=0.01, seed=7)
    ...                               # the next sync sees exactly ``done``

Every change is one Cliniko could make and its lists could show: records are created, updated,
archived (where the list filters on ``archived_at``), cancelled (``cancelled_at``) and deleted
(where a ``deleted_at`` filter or a ``/deleted`` list shows deletions), each with ``updated_at``
set to the fake's now; deleted records stay in the table with ``deleted_at`` set, so the
deleted lists and ``deleted_at`` filters serve them.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._converter import without_none
from .._resource import ListOp
from ..resources import RESOURCES
from ._data import iso

if TYPE_CHECKING:
    from ._app import FakeCliniko

__all__ = ["Mutation", "mutate", "settle"]

Kind = Literal["created", "updated", "archived", "cancelled", "deleted"]
_STATE = {"archived": "archived_at", "cancelled": "cancelled_at"}
_TIMES = ("created_at", "updated_at", "archived_at", "deleted_at", "cancelled_at")


@attrs.frozen
class Mutation:
    """One change the fake made: to record ``id`` of ``resource``."""

    resource: str
    id: int
    kind: Kind


def _now(fake: FakeCliniko) -> dt.datetime:
    return dt.datetime.fromtimestamp(fake.clock.wall(), dt.UTC)


def settle(fake: FakeCliniko, *, before: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Move every seeded timestamp that lies after the fake's now to ``now - before``.

    The generated sample records are dated ``EPOCH + n days``, far in the future for large
    ``n``; a sync that asks for ``updated_at >= cursor`` would see them as changed on every
    run. Call this once, before the first sync. Returns how many values moved.
    """
    now = _now(fake)
    limit, moved_to = iso(now), iso(now - before)
    moved = 0
    for table in fake.data.values():
        for record in table.values():
            for name in _TIMES:
                value = record.get(name)
                if isinstance(value, str) and value and value > limit:
                    record[name] = moved_to
                    moved += 1
    return moved


def _kinds(resource: str) -> list[Kind]:
    """The changes the fake's API can show for ``resource``."""
    ops = RESOURCES[resource].operations()
    op = ops.get("list")
    filters = dict(op.filters or {}) if isinstance(op, ListOp) else {}
    kinds: list[Kind] = ["created", "updated"]
    if "archived_at" in filters:
        kinds.append("archived")
    if "cancelled_at" in filters:
        kinds.append("cancelled")
    if "deleted_at" in filters or isinstance(ops.get("list_deleted"), ListOp):
        kinds.append("deleted")
    return kinds


def _visible(record: dict[str, Any], kinds: list[Kind]) -> bool:
    if record.get("deleted_at"):
        return False
    return "archived" in kinds or not record.get("archived_at")


def _editable(resource: str) -> list[str]:
    """Free-text fields of the resource's model (plain ``str``: no enum, id, url, email)."""
    op = RESOURCES[resource].operations().get("list")
    if not isinstance(op, ListOp):
        return []
    model = op.model
    hints = typing.get_type_hints(model)
    out = []
    for field in attrs.fields(model):
        name = model.__renames__.get(field.name, field.name)
        if without_none(hints[field.name]) is not str or field.metadata.get("enum"):
            continue
        if name.endswith(("_id", "_at", "token", "uuid", "url", "email", "color", "colour")):
            continue
        out.append(name)
    return out


def _edit(record: dict[str, Any], fields: list[str], n: int) -> None:
    for key in fields:
        value = record.get(key)
        if isinstance(value, str):
            record[key] = f"{value.split(' (edit')[0]} (edit {n})"
            return


def mutate(
    fake: FakeCliniko,
    *,
    fraction: float = 0.01,
    seed: int = 0,
    resources: Iterable[str] | None = None,
) -> list[Mutation]:
    """Change ``fraction`` of the visible records (at least one), seeded; return what changed."""
    rng = random.Random(seed)
    now = iso(_now(fake))
    names = sorted(resources) if resources is not None else sorted(fake.data)
    pool: list[tuple[str, int]] = []
    kinds_of: dict[str, list[Kind]] = {}
    for name in names:
        listed = RESOURCES[name].operations().get("list") if name in RESOURCES else None
        if not isinstance(listed, ListOp) or "{" in listed.path or name not in fake.data:
            continue
        kinds_of[name] = _kinds(name)
        for rid, record in fake.data[name].items():
            if "id" in record and "updated_at" in record and _visible(record, kinds_of[name]):
                pool.append((name, rid))
    count = max(1, round(len(pool) * fraction)) if pool else 0
    done: list[Mutation] = []
    for n, (name, rid) in enumerate(sorted(rng.sample(pool, count))):
        table = fake.data[name]
        record = table[rid]
        # Archive what is not archived, cancel what is not cancelled.
        kind = rng.choice(
            [k for k in kinds_of[name] if k not in _STATE or not record.get(_STATE[k])]
        )
        if kind == "created":
            new_id = fake._next_id.get(name, len(table) + 1)
            fake._next_id[name] = new_id + 1
            clone = copy.deepcopy(record)
            clone.update(id=str(new_id), created_at=now, updated_at=now)
            for lifecycle in ("archived_at", "deleted_at", "cancelled_at"):
                if lifecycle in clone:
                    clone[lifecycle] = None
            if isinstance(clone.get("links"), dict):
                clone["links"] = {"self": f"/{name}/{new_id}"}
            table[new_id] = clone
            done.append(Mutation(name, new_id, "created"))
            continue
        if kind == "updated":
            _edit(record, _editable(name), n)
        elif kind == "archived":
            record["archived_at"] = now
        elif kind == "cancelled":
            record["cancelled_at"] = now
        else:
            record["deleted_at"] = now
        record["updated_at"] = now
        done.append(Mutation(name, rid, kind))
    return done
