"""``cliniko export``: every record of a resource to JSON lines or CSV, resumable.

Records are written to ``FILE.partial`` page by page, in id order (keyset pagination, so
records created or deleted meanwhile never shift what comes next). After each page a small
checkpoint, ``FILE.partial.json``, records how many bytes and records are safely written and
the last id. The file is renamed to ``FILE`` only once the last page is written, so an
interrupted export never leaves a file that looks complete; ``--resume`` cuts the partial file
back to its checkpoint and asks Cliniko for the records after the last id.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from .._client import Cliniko
from .._converter import unstructure
from .._filters import Filter, q
from .._resource import ListOp
from ..errors import ConfigurationError
from ..resources import RESOURCES

__all__ = ["ExportJob", "export", "list_operation"]

Format = Literal["jsonl", "csv"]
Progress = Callable[[int, int | None], None]


@attrs.frozen
class ExportJob:
    resource: str
    output: Path
    format: Format = "jsonl"
    filters: tuple[Filter, ...] = ()
    resume: bool = False
    per_page: int = 100

    @property
    def partial(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    @property
    def checkpoint(self) -> Path:
        return self.output.with_name(self.output.name + ".partial.json")


def list_operation(resource: str) -> ListOp[Any]:
    """The resource's top-level list, or a clear error naming the resources that have one."""
    cls = RESOURCES.get(resource)
    op = cls.operations().get("list") if cls is not None else None
    if not isinstance(op, ListOp) or op.path_params:
        names = sorted(
            name for name, c in RESOURCES.items()
            if isinstance(o := c.operations().get("list"), ListOp) and not o.path_params
        )  # fmt: skip
        raise ConfigurationError(
            f"{resource!r} is not a resource that can be exported; one of: {', '.join(names)}"
        )
    return op


async def export(cliniko: Cliniko, job: ExportJob, progress: Progress) -> int:
    """Run ``job``; return how many records the finished file holds."""
    op = list_operation(job.resource)
    columns = [op.model.__renames__.get(a.name, a.name) for a in attrs.fields(op.model)]
    columns.remove("extra")
    state = _load_checkpoint(job) if job.resume else None
    if state is None:
        state = {"bytes": 0, "records": 0, "last_id": None}
        job.partial.write_bytes(b"")
    filters = list(job.filters)
    if state["last_id"] is not None:
        filters.append(q("id") > state["last_id"])
    listing = getattr(cliniko, job.resource).list(q=filters, per_page=job.per_page).by_id()
    with job.partial.open("r+b") as out:
        out.truncate(state["bytes"])  # anything after the checkpoint is fetched again
        out.seek(state["bytes"])
        if job.format == "csv" and state["bytes"] == 0:
            out.write(_csv_line(columns))
        total: int | None = None
        async for page in listing.pages():
            if total is None and page.total_entries is not None:
                total = state["records"] + page.total_entries
            out.write(_encode(page.items, job.format, columns))
            out.flush()
            os.fsync(out.fileno())
            state = {
                "bytes": out.tell(),
                "records": state["records"] + len(page.items),
                "last_id": page.items[-1].id if page.items else state["last_id"],
            }
            _save_checkpoint(job, state)
            progress(state["records"], total)
    os.replace(job.partial, job.output)
    job.checkpoint.unlink(missing_ok=True)
    return int(state["records"])


def _encode(records: list[Any], fmt: Format, columns: list[str]) -> bytes:
    chunk = io.StringIO()
    for record in records:
        wire = unstructure(record)
        if fmt == "jsonl":
            chunk.write(json.dumps(wire, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            chunk.write(_csv_line([_cell(wire.get(c)) for c in columns]).decode("utf-8"))
    return chunk.getvalue().encode("utf-8")


def _csv_line(values: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"links"}:
        value = value["links"]  # a reference: its URL
    if isinstance(value, dict) and set(value) == {"self"}:
        return str(value["self"])
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _load_checkpoint(job: ExportJob) -> dict[str, Any] | None:
    if not job.partial.exists() or not job.checkpoint.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(job.checkpoint.read_text())
    except ValueError:
        return None
    if state.get("format") != job.format or state.get("resource") != job.resource:
        raise ConfigurationError(
            f"{job.partial} holds a {state.get('format')} export of {state.get('resource')}: "
            "resume it with the same resource and --format, or delete it to start over"
        )
    return state


def _save_checkpoint(job: ExportJob, state: dict[str, Any]) -> None:
    tmp = job.checkpoint.with_name(job.checkpoint.name + ".tmp")
    tmp.write_text(json.dumps({**state, "format": job.format, "resource": job.resource}))
    os.replace(tmp, job.checkpoint)
