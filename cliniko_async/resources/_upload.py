# pyright: basic
# (internal, defensive at runtime: the strict checks cover the generated API surface over it)
"""The three-step patient attachment upload.

1. ``GET /patients/{patient_id}/attachment_presigned_post`` (through the limiter, with the key);
2. a multipart ``POST`` of the file to the storage URL it returns: no Cliniko credentials, not
   counted by the Cliniko limiter, the file streamed from disk rather than read into memory;
3. ``POST /patient_attachments`` with the uploaded file's URL, which creates the record.
"""

from __future__ import annotations

import asyncio
import html
import io
import os
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import IO, Any, Self, overload
from urllib.parse import quote

import anyio.to_thread
import attrs
import httpx

from .._config import check_base_url
from .._converter import structure
from .._resource import Async, Resource, Sync, _await, _Bound, _Op
from .._session import Session
from .._transport import MAX_SIZE_EXTENSION, ResponseTooLarge, read_capped
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    ResponseTooLargeError,
)
from ..models import AttachmentPresignedPost, UploadedPatientAttachment

__all__ = ["UploadOp"]

FileSource = str | os.PathLike[str] | IO[bytes]
_KEY = re.compile(r"<Key>([^<]+)</Key>")


class UploadOp(_Op):
    """``upload(patient_id, file, *, filename=None, description=None, content_type=None)``."""

    method = "GET"
    model = UploadedPatientAttachment

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: Resource[Async], owner: type) -> AsyncUpload: ...
    @overload
    def __get__(self, obj: Resource[Sync], owner: type) -> SyncUpload: ...
    def __get__(self, obj: Resource[Any] | None, owner: type) -> Any:
        if obj is None:
            return self
        if obj._host._portal is None:
            return AsyncUpload(self, obj._host)
        return SyncUpload(self, obj._host)


class AsyncUpload(_Bound[UploadedPatientAttachment]):
    """``await cliniko.patient_attachments.upload(patient_id, "scan.pdf", description=...)``."""

    __slots__ = ()

    def __call__(
        self,
        patient_id: int | str,
        file: FileSource,
        *,
        filename: str | None = None,
        description: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> Coroutine[Any, Any, UploadedPatientAttachment]:
        op: UploadOp = self._op
        path = op.render_path((patient_id,))
        _check_file(file)
        if filename is None:
            name = getattr(file, "name", None) if not isinstance(file, str | os.PathLike) else file
            if not isinstance(name, str | os.PathLike):
                raise ConfigurationError("upload() of a file object needs filename=...")
            filename = Path(name).name
        return _upload(
            self._host._session, path, int(patient_id), file, filename, description, content_type
        )


def _check_file(file: FileSource) -> None:
    """A file path or an open binary file, or ConfigurationError before anything is sent (what
    would otherwise fail only after the presign request)."""
    if isinstance(file, str | os.PathLike):
        if not os.path.isfile(file):
            raise ConfigurationError(f"upload(): {os.fspath(file)!r} is not a file")
        return
    if not hasattr(file, "read"):
        raise ConfigurationError(
            f"upload() takes a file path or a binary file object, got {type(file).__name__}"
        )
    if getattr(file, "closed", False):
        raise ConfigurationError("upload(): the file object is closed")
    text: object = file  # (typed IO[bytes]; at run time anything with read())
    if isinstance(text, io.TextIOBase) or "b" not in getattr(file, "mode", "b"):
        raise ConfigurationError("upload() needs a binary file object: open the file with 'rb'")


class _Progress:
    """A binary file whose every read calls ``sent_more``: the upload's deadline counts from
    the last chunk that went out, so a slow but steady upload is never cut (a server that
    stops reading, or trickles its answer, still meets the deadline)."""

    def __init__(self, file: IO[bytes], sent_more: Callable[[], None]) -> None:
        self._file = file
        self._sent_more = sent_more

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._sent_more()
        return data

    def __getattr__(self, name: str) -> Any:  # fileno, seek, tell, name: httpx sizes the file
        return getattr(self._file, name)


class SyncUpload(_Bound[UploadedPatientAttachment]):
    """Blocking twin of :class:`AsyncUpload`."""

    __slots__ = ()

    def __call__(
        self,
        patient_id: int | str,
        file: FileSource,
        *,
        filename: str | None = None,
        description: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> UploadedPatientAttachment:
        coro = AsyncUpload(self._op, self._host)(
            patient_id, file, filename=filename, description=description, content_type=content_type
        )
        return self._run_sync(_await, coro)


async def _upload(
    session: Session,
    presign_path: str,
    patient_id: int,
    file: FileSource,
    filename: str,
    description: str | None,
    content_type: str,
) -> UploadedPatientAttachment:
    presigned = structure(await session.request("GET", presign_path), AttachmentPresignedPost)
    if not presigned.url or presigned.fields is None:
        raise ConfigurationError("Cliniko returned no upload URL for this patient")
    storage = check_base_url(presigned.url)  # https only (plain http just for loopback tests)
    form = presigned.fields
    fields: dict[str, Any] = {
        str(form.__renames__.get(a.name, a.name)): value
        for a in attrs.fields(type(form))
        if a.name != "extra" and (value := getattr(form, a.name)) is not None
    }
    fields.update(presigned.fields.extra)  # any field Cliniko adds: sent exactly as given
    key = await _post_file(
        session.http, storage, fields, file, filename, content_type,
        session.options.effective_deadline(), session.options.max_response_size,
    )  # fmt: skip
    body: dict[str, Any] = {
        "patient_id": str(patient_id),
        "upload_url": f"{str(storage).rstrip('/')}/{quote(key, safe='/')}",
    }
    if description is not None:
        body["description"] = description
    data = await session.request("POST", "/patient_attachments", json_body=body)
    return structure(data, UploadedPatientAttachment)


async def _post_file(
    http: httpx.AsyncClient,
    url: httpx.URL,
    fields: dict[str, Any],
    file: FileSource,
    filename: str,
    content_type: str,
    deadline: float | None,
    max_response_size: int,
) -> str:
    """The storage POST: the form fields as given, then the file, streamed in chunks; the whole
    exchange within the client's ``deadline``, the answer's body read under ``max_response_size``
    (with the user's own httpx client too)."""
    where = str(url.copy_with(query=None))
    opened = None
    if isinstance(file, str | os.PathLike):
        opened = await anyio.to_thread.run_sync(open, file, "rb")
    try:
        stream = opened or file
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(deadline) as limit:

                def sent_more() -> None:
                    if deadline is not None:
                        limit.reschedule(loop.time() + deadline)

                request = http.build_request(
                    "POST",
                    url,
                    data={k: str(v) for k, v in fields.items()},
                    files={"file": (filename, _Progress(stream, sent_more), content_type)},  # type: ignore[dict-item, arg-type]
                    headers={"Accept-Encoding": "gzip, deflate"},  # what read_capped decodes
                    extensions={MAX_SIZE_EXTENSION: max_response_size},
                )
                response = await http.send(request, follow_redirects=False, stream=True)
                try:
                    await read_capped(response, max_response_size, request)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise APITimeoutError(
                f"file storage did not answer within the deadline of {deadline:g} s after the "
                "last chunk of the file was sent",
                method="POST",
                url=where,
            ) from None
        except ResponseTooLarge as exc:
            raise ResponseTooLargeError(
                f"file storage answered with a body larger than {exc.limit} bytes "
                "(max_response_size); reading stopped there",
                method="POST",
                url=where,
                limit=max_response_size,
            ) from None
        except httpx.HTTPError as exc:
            error = (
                APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
            )
            raise error(
                f"the upload to file storage failed: {type(exc).__name__}",
                method="POST",
                url=where,
            ) from None
    finally:
        if opened is not None:
            opened.close()
    if response.status_code not in (200, 201, 204):
        raise APIStatusError(
            f"file storage refused the upload with status {response.status_code}",
            method="POST",
            url=where,
            status_code=response.status_code,
            body=response.text[:500],
            headers={},
        )
    found = _KEY.search(response.text)
    key = html.unescape(found.group(1)) if found else str(fields.get("key", ""))
    return key.replace("${filename}", filename)
