"""The three-step patient attachment upload, against the fake Cliniko and its fake file storage."""

from __future__ import annotations

import io
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
