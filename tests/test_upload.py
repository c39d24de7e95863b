"""The three-step patient attachment upload, against the fake Cliniko and its fake file storage."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from cliniko_async import (
    APITimeoutError,
    Cliniko,
    ConfigurationError,
    RateLimit,
    ResponseTooLargeError,
    SyncCliniko,
)
from cliniko_async.models import UploadedPatientAttachment
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    IN_PROCESS_BASE_URL,
    FakeCliniko,
    serve,
)

from ._rawserver import huge, raw_server, trickle


class ChunkRecorder(io.RawIOBase):
    """A binary file that records how much each read asked for."""

    def __init__(self, size: int) -> None:
        self._data = io.BytesIO(bytes(range(256)) * (size // 256))
        self.reads: list[int] = []
        self.name = "scan.pdf"

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.reads.append(n)
        return self._data.read(n)


def _client(fake: FakeCliniko, rate_limit: RateLimit | None = None) -> Cliniko:
    return Cliniko(
        api_key=DEFAULT_API_KEY,
        user_agent=DEFAULT_USER_AGENT,
        base_url=IN_PROCESS_BASE_URL,
        http_client=httpx.AsyncClient(transport=fake.transport()),
        rate_limit=rate_limit or RateLimit(200, 60.0),
    )


async def test_upload_streams_the_file_to_storage_and_creates_the_record(tmp_path: Path) -> None:
    fake = FakeCliniko()
    path = tmp_path / "x-ray 1.png"
    path.write_bytes(b"\x89PNG" + bytes(300_000))
    async with _client(fake) as cliniko:
        record = await cliniko.patient_attachments.upload(3, path, description="knee")
    assert isinstance(record, UploadedPatientAttachment)
    assert record.description == "knee" and record.patient is not None and record.patient.id == 3
    ((key, content),) = fake.uploads.items()
    assert key.endswith("/x-ray 1.png") and content == path.read_bytes()
    assert record.id is not None
    stored = fake.data["patient_attachments"][record.id]  # what step 3 sent
    assert stored["upload_url"].endswith("/_storage/" + key.replace(" ", "%20"))
    # Two Cliniko requests (presign, create); the storage POST is not a Cliniko request.
    assert len(fake.stats().accepted) == 2


async def test_upload_reads_in_chunks_never_the_whole_file() -> None:
    fake = FakeCliniko()
    source = ChunkRecorder(4 * 1024 * 1024)
    async with _client(fake) as cliniko:
        await cliniko.patient_attachments.upload(1, source)  # type: ignore[arg-type]
    assert sum(1 for n in source.reads if n > 0) > 1
    assert max(source.reads) <= 1024 * 1024 and -1 not in source.reads
    assert len(next(iter(fake.uploads.values()))) == 4 * 1024 * 1024


async def test_the_storage_post_is_outside_the_limiter_and_carries_no_key() -> None:
    # A key allowed two requests an hour: presign and create fit, a third limited request
    # would wait an hour. The storage POST must not count (and the fake storage answers 400
    # to any request carrying an Authorization header).
    fake = FakeCliniko()
    async with _client(fake, RateLimit(2, 3600.0)) as cliniko:
        with anyio.fail_after(10):
            await cliniko.patient_attachments.upload(1, io.BytesIO(b"data"), filename="a.txt")
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        refused = await http.post(
            "http://127.0.0.1/v1/_storage", headers={"Authorization": "Basic eA=="}, content=b""
        )
    assert refused.status_code == 400


async def test_upload_rejects_bad_input_before_any_request() -> None:
    fake = FakeCliniko()
    async with _client(fake) as cliniko:
        with pytest.raises(ConfigurationError, match="filename="):
            await cliniko.patient_attachments.upload(1, io.BytesIO(b"x"))
        with pytest.raises(ConfigurationError, match="file path or a binary file"):
            await cliniko.patient_attachments.upload(1, 42)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="positive integer id"):
            await cliniko.patient_attachments.upload("1/../2", "a.txt")
    assert fake.requests == 0


def test_sync_upload_over_real_http(tmp_path: Path) -> None:
    fake = FakeCliniko()
    path = tmp_path / "letter.txt"
    path.write_text("Dear Dr Hopper")
    with (
        serve(fake) as base_url,
        SyncCliniko(
            api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=base_url
        ) as cliniko,
    ):
        record = cliniko.patient_attachments.upload(2, str(path))
    assert record.id is not None
    assert list(fake.uploads.values()) == [b"Dear Dr Hopper"]


class _PresignTo(httpx.AsyncBaseTransport):
    """The fake Cliniko, except that its presigned POST points at ``storage``."""

    def __init__(self, fake: FakeCliniko, storage: str) -> None:
        self._inner = fake.transport()
        self._storage = storage

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/attachment_presigned_post"):
            return httpx.Response(
                200, json={"url": self._storage, "fields": {"key": "uploads/${filename}"}}
            )
        return await self._inner.handle_async_request(request)


def _hostile_storage_client(fake: FakeCliniko, storage: str, **options: Any) -> Cliniko:
    http = httpx.AsyncClient(
        transport=_PresignTo(fake, storage),
        mounts={storage.rsplit("/v1", 1)[0]: httpx.AsyncHTTPTransport()},
    )
    return Cliniko(
        api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=IN_PROCESS_BASE_URL,
        http_client=http, **options,
    )  # fmt: skip


async def test_a_trickling_storage_server_ends_at_the_deadline() -> None:
    # Regression: the storage POST had only the per-read timeout, so a server sending a byte
    # every 100 ms held the upload for hours. The whole exchange now ends at `deadline`.
    fake = FakeCliniko()
    records = len(fake.data["patient_attachments"])
    with raw_server(trickle(100_000, 0.1)) as base:
        async with _hostile_storage_client(fake, base + "/bucket", timeout=2.0, deadline=1.0) as c:
            started = anyio.current_time()
            with pytest.raises(APITimeoutError, match="deadline of 1 s"):
                with anyio.fail_after(30):
                    await c.patient_attachments.upload(1, io.BytesIO(b"x" * 100), filename="a")
            assert anyio.current_time() - started < 20  # the deadline, not the 10,000 s trickle
    assert len(fake.data["patient_attachments"]) == records  # step 3 was never sent


async def test_a_huge_storage_answer_is_response_too_large_with_the_users_client() -> None:
    # Regression: the storage answer was read whole through a user's httpx client (and an
    # over-size one through ours came out as APIConnectionError).
    fake = FakeCliniko()
    with raw_server(huge(50 * 2**20, chunked=True)) as base:
        async with _hostile_storage_client(fake, base + "/bucket", max_response_size=100_000) as c:
            with pytest.raises(ResponseTooLargeError) as caught:
                with anyio.fail_after(30):
                    await c.patient_attachments.upload(1, io.BytesIO(b"x"), filename="a")
    assert caught.value.limit == 100_000


@contextlib.contextmanager
def _slow_reader(per_step: int, pause: float) -> Iterator[str]:
    """A storage server on loopback that reads the upload ``per_step`` bytes every ``pause``
    seconds (a slow uplink), then answers 201."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    url: list[str] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )  # fmt: skip
        got = 0
        while got < length:
            chunk = await reader.read(min(per_step, length - got))
            if not chunk:
                break
            got += len(chunk)
            await asyncio.sleep(pause)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        # A small receive buffer (inherited by the accepted connection), so that what the
        # client has written is soon what the server has read, as with a slow uplink.
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        listener.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(connection, sock=listener)
        url.append(f"http://127.0.0.1:{listener.getsockname()[1]}/v1/bucket")
        ready.set()
        async with server:
            with contextlib.suppress(asyncio.CancelledError):  # stopped by the fixture
                await server.serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield url[0]
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()


async def test_a_slow_but_steady_upload_is_not_cut_by_the_deadline() -> None:
    # Outside finding G25: the deadline (there for a server that trickles its answer) also cut
    # a file still going out: with the defaults, no upload taking over 90 s could succeed. It
    # counts from the last chunk handed to the socket now. 24 MB read at ~3 MB/s: about 8 s,
    # with a 3 s deadline (the socket's send buffer, ~4 MB here, drains in ~1.4 s after the
    # last chunk).
    fake = FakeCliniko()
    with _slow_reader(64 << 10, 0.02) as storage:
        async with _hostile_storage_client(fake, storage, timeout=5.0, deadline=3.0) as c:
            started = anyio.current_time()
            with anyio.fail_after(120):
                record = await c.patient_attachments.upload(
                    1, io.BytesIO(b"x" * (24 << 20)), filename="scan.pdf"
                )
            took = anyio.current_time() - started
    assert record.id is not None
    assert took > 3.0, took  # longer than the deadline: it was not what ended it


@pytest.mark.parametrize("case", ["missing", "directory", "text", "closed"])
async def test_a_file_that_cannot_be_uploaded_is_refused_before_any_request(
    case: str, tmp_path: Path
) -> None:
    # Outside finding G28: these sent the presign request, then raised a raw OSError/TypeError.
    fake = FakeCliniko()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    file: Any = tmp_path / "nope.pdf" if case == "missing" else tmp_path
    if case in ("text", "closed"):
        file = text.open("r" if case == "text" else "rb")
        if case == "closed":
            file.close()
    try:
        async with _client(fake) as cliniko:
            with pytest.raises(ConfigurationError, match="upload"):
                await cliniko.patient_attachments.upload(1, file, filename="a")
    finally:
        if case == "text":
            file.close()
    assert fake.requests == 0
