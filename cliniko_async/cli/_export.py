"""``cliniko export``: every record of a resource to JSON lines or CSV, resumable.

Records are written to ``FILE.partial`` page by page, in id order (keyset pagination: each
request asks for ids above the last one written, ``sort=id``, so records created or deleted
meanwhile never shift what comes next). After each page a small checkpoint,
``FILE.partial.json``, records how many bytes and records are safely written and the last id.
The file is renamed to ``FILE`` only once the last page is written, so an interrupted export
never leaves a file that looks complete; ``--resume`` cuts the partial file back to its
checkpoint and asks Cliniko for the records after the last id.

An output that is not a regular file (``-`` for stdout, a FIFO, a device such as
``/dev/null``, anything reached through ``/proc`` such as ``/dev/stdout``) is written straight
to, page by page: no partial file, no rename, no ``--resume``. A symlink is followed: the
partial file goes next to its target and is renamed over the target, never over the link.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import attrs

from .._client import Cliniko
from .._converter import unstructure
from .._filters import Filter, encode_filters, q
from .._pagination import Paginator
from .._resource import ListOp
from ..errors import ConfigurationError
from ..resources import RESOURCES

__all__ = [
    "ExportJob",
    "ExportResult",
    "OutputError",
    "check_output",
    "export",
    "list_operation",
    "open_stream",
]

Format = Literal["jsonl", "csv"]
Progress = Callable[[int, int | None], None]
CHECKPOINT_VERSION = 1
STDOUT = Path("-")


class OutputError(Exception):
    """Writing the output failed (a full disk or device, a closed pipe): exit 1."""


@attrs.frozen
class ExportJob:
    resource: str
    output: Path
    format: Format = "jsonl"
    filters: tuple[Filter | str, ...] = ()
    resume: bool = False
    per_page: int = 100
    #: Written straight to (no partial file, no rename, no resume): set by :func:`check_output`
    #: for ``-`` and outputs that are not regular files.
    stream: bool = False

    @property
    def shown(self) -> str:
        """The output as messages name it."""
        return "stdout" if self.output == STDOUT else str(self.output)

    @property
    def partial(self) -> Path:
        """Where the records go until the export is complete."""
        return self.output.with_name(self.output.name + ".partial")

    @property
    def checkpoint(self) -> Path:
        """How much of :attr:`partial` is complete, and the last id in it."""
        return self.output.with_name(self.output.name + ".partial.json")


@attrs.frozen
class ExportResult:
    records: int  # in the finished file
    resumed: int  # of them, written by an earlier, interrupted run


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


def check_output(job: ExportJob) -> ExportJob:
    """The job writing where ``-o`` really points; bad output paths are bad input (exit 2),
    found before anything is fetched.

    ``-`` is stdout. A path that exists and is not a regular file (a FIFO, a device, a socket),
    or that is reached through ``/proc`` (``/dev/stdout``, ``/dev/fd/N``), is written straight
    to: renaming a finished file over it would replace the device or pipe with a file. A
    symlink to a regular file (or to nothing yet) is resolved: the export replaces its target.
    """
    output = job.output
    if output == STDOUT:
        stream, kind = True, "stdout"
    else:
        parent = output.parent
        if not parent.is_dir():
            raise ConfigurationError(f"-o {output}: the directory {parent} does not exist")
        mode = _mode(output)
        if mode is not None and stat.S_ISDIR(mode):
            raise ConfigurationError(f"-o {output}: is a directory")
        stream = (mode is not None and not stat.S_ISREG(mode)) or _through_proc(output)
        kind = _kind(mode)
        if not stream and output.is_symlink():
            output = Path(os.path.realpath(output))
            if not output.parent.is_dir():
                raise ConfigurationError(
                    f"-o {job.output}: the directory {output.parent} of its target does not exist"
                )
    if stream and job.resume:
        raise ConfigurationError(
            f"-o {job.output}: --resume needs a regular file to continue, and this is {kind}"
        )
    return attrs.evolve(job, output=output, stream=stream)


def _mode(path: Path) -> int | None:
    """What ``path`` is, symlinks followed (``st_mode``); None if nothing is there yet."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None  # a new file, or a symlink to one
    except OSError as exc:
        raise ConfigurationError(f"-o {path}: {exc.strerror or exc}") from None


def _through_proc(path: Path) -> bool:
    """Whether ``path`` (or a symlink on the way to it) is in ``/proc``: ``/dev/stdout``."""
    for _ in range(40):  # as many links as the kernel follows
        if Path(os.path.realpath(path.parent)).is_relative_to("/proc"):
            return True
        if not path.is_symlink():
            return False
        target = Path(os.readlink(path))
        path = target if target.is_absolute() else path.parent / target
    return False


def _kind(mode: int | None) -> str:
    if mode is None or stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_stream(job: ExportJob) -> BinaryIO:
    """The output of a :attr:`ExportJob.stream` job, opened for writing (for a FIFO this waits
    for a reader, as ``cat > FIFO`` does). Nothing is created, truncated or renamed."""
    try:
        fd = os.dup(1) if job.output == STDOUT else os.open(job.output, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        raise OutputError(f"cannot write to {job.shown}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "wb")


def keyed(op: ListOp[Any]) -> bool:
    """Whether the list can be paged by id (and so resumed): it filters on ``id``."""
    return "id" in op.filters and "id" in attrs.fields_dict(op.model)


async def export(
    cliniko: Cliniko, job: ExportJob, progress: Progress, out: BinaryIO | None = None
) -> ExportResult:
    """Run ``job``; return how many records the finished file holds.

    ``out``: for a :attr:`ExportJob.stream` job, its output already opened (:func:`open_stream`,
    closed here); opened with the first page otherwise.
    """
    op = list_operation(job.resource)
    job = check_output(job)
    by_id = keyed(op) and not job.stream
    columns = [op.model.__renames__.get(a.name, a.name) for a in attrs.fields(op.model)]
    columns.remove("extra")
    identity = {
        "version": CHECKPOINT_VERSION,
        "resource": job.resource,
        "format": job.format,
        "filters": encode_filters(job.filters, op.filters),
    }
    state = _load_checkpoint(job, identity) if job.resume and by_id else None
    filters = list(job.filters)
    if state is not None and state["last_id"] is not None:
        filters.append(q("id") > int(state["last_id"]))
    # Built before any file is touched: the library checks the filters here.
    listing: Paginator[Any] = getattr(cliniko, job.resource).list(q=filters, per_page=job.per_page)
    if keyed(op):
        listing = listing.by_id()
    fresh = state is None
    if state is None:
        state = {"bytes": 0, "records": 0, "last_id": None}
    resumed = int(state["records"])
    total: int | None = None
    opened = out is not None
    started = not job.stream  # a stream's CSV header is written with its first page
    try:
        async with listing.pages() as pages:  # a failure mid-way leaves no request running
            async for page in pages:
                if not opened:  # opened with the first page: a failed start leaves no file
                    out, opened = _open(job, state, columns, fresh), True
                assert out is not None
                if total is None and page.total_entries is not None:
                    total = resumed + page.total_entries
                if not started:
                    _write(job, out, _header(job, columns))
                    started = True
                _write(job, out, _encode(page.items, job.format, columns))
                state = {
                    "bytes": 0 if job.stream else out.tell(),
                    "records": state["records"] + len(page.items),
                    "last_id": page.items[-1].id if by_id and page.items else state["last_id"],
                }
                if by_id:
                    _save_checkpoint(job, {**identity, **state})
                progress(state["records"], total)
        if not opened:
            out = _open(job, state, columns, fresh)
        if not started:
            assert out is not None
            _write(job, out, _header(job, columns))
    except BaseException:
        if out is not None:
            with contextlib.suppress(OSError):  # what failed is already on its way up
                out.close()
        raise
    assert out is not None
    try:
        out.close()
    except OSError as exc:
        raise _output_error(job, exc) from None
    if not job.stream:
        os.replace(job.partial, job.output)
        job.checkpoint.unlink(missing_ok=True)
    return ExportResult(records=int(state["records"]), resumed=resumed)


def _write(job: ExportJob, out: BinaryIO, data: bytes) -> None:
    """``data`` written out and flushed (to the disk, for a file); a failure is an OutputError."""
    try:
        out.write(data)
        out.flush()
        if not job.stream:
            os.fsync(out.fileno())
    except OSError as exc:
        raise _output_error(job, exc) from None


def _output_error(job: ExportJob, exc: OSError) -> OutputError:
    where = job.shown if job.stream else job.partial
    return OutputError(f"cannot write to {where}: {exc.strerror or exc}")


def _header(job: ExportJob, columns: list[str]) -> bytes:
    return _csv_line(columns) if job.format == "csv" else b""


def _open(job: ExportJob, state: dict[str, Any], columns: list[str], fresh: bool) -> BinaryIO:
    """The partial file, cut back to the checkpoint (or new, with the CSV header); for a
    stream job, its output."""
    if job.stream:
        return open_stream(job)
    if fresh:
        job.checkpoint.unlink(missing_ok=True)  # a stale checkpoint must never meet a new file
        job.partial.write_bytes(b"")
    out = job.partial.open("r+b")
    out.truncate(state["bytes"])  # anything after the checkpoint is fetched again
    out.seek(state["bytes"])
    if state["bytes"] == 0:
        out.write(_header(job, columns))
    return out


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
    # With "\n" line ends the csv module leaves a lone "\r" unquoted, which readers take for a
    # line break (one record split in two rows): such a row is quoted whole.
    if any("\r" in v for v in values):
        csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(values)
    else:
        csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as in Cliniko's JSON, not Python's True/False
    if isinstance(value, dict) and set(value) == {"links"}:
        value = value["links"]  # a reference: its URL
    if isinstance(value, dict) and set(value) == {"self"}:
        return str(value["self"])
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _load_checkpoint(job: ExportJob, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The state to resume from, or None to start over (no usable checkpoint)."""
    if not job.partial.exists() or not job.checkpoint.exists():
        return None
    try:
        state = json.loads(job.checkpoint.read_text())
        if not isinstance(state, dict):
            return None
        size, records, last_id = state["bytes"], state["records"], state["last_id"]
    except (ValueError, KeyError):
        return None
    if not (isinstance(size, int) and isinstance(records, int) and size >= 0):
        return None
    if job.partial.stat().st_size < size:
        return None  # not the file this checkpoint describes
    if {k: state.get(k) for k in identity} != identity:
        raise ConfigurationError(
            f"{job.partial} is a partial {state.get('format')} export of "
            f"{state.get('resource')} with filters {state.get('filters')}: resume it with the "
            "same resource, --format and filters, or delete it to start over"
        )
    return {"bytes": size, "records": records, "last_id": last_id}


def _save_checkpoint(job: ExportJob, state: dict[str, Any]) -> None:
    tmp = job.checkpoint.with_name(job.checkpoint.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, job.checkpoint)
