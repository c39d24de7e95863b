"""The three-step patient attachment upload, against the fake Cliniko and its fake file storage."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import httpx
import pytest

from cliniko_async import Cliniko, ConfigurationError, RateLimit, SyncCliniko
from cliniko_async.models import UploadedPatientAttachment
from cliniko_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_USER_AGENT,
    IN_PROCESS_BASE_URL,
    FakeCliniko,
    serve,
)


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
