"""A total deadline per exchange and a response-size cap, on every HTTP stack (issue 18).

Hostile servers on loopback (raw sockets, tests/_rawserver.py): a body trickled a byte at a
time, a trickle that never ends, a 200 MB body (with and without Content-Length) and a gzip
bomb (about 0.2 MB on the wire, 200 MB unpacked). Memory is measured with tracemalloc (the
server thread's allocations included), with generous margins for a busy machine.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from cliniko_async import (
    APITimeoutError,
    Cliniko,
    ConfigurationError,
    RequestOptions,
)
from cliniko_async._transport import AiohttpTransport
from cliniko_async.errors import DecodeError, ResponseTooLargeError

from ._rawserver import bomb, head, huge, raw_server, status, trickle

KEY = "MS0xLWxpbWl0cy10ZXN0LWtleQ-au1"
USER_AGENT = "Limits Test (limits@example.com)"
MB = 1 << 20
DEFAULT_CAP = 64 * MB
#: The HTTP stacks under the client: the default (its first requests on a loop go through
#: httpcore), aiohttp from the first request, httpx's own transport, the user's client.
STACKS = ["default", "aiohttp", "httpx-transport", "http_client"]


@asynccontextmanager
async def client(
    stack: str, base_url: str, *, api_key: str = KEY, **kwargs: Any
) -> AsyncIterator[Cliniko]:
    extra: dict[str, Any] = {}
    user_client = None
    if stack == "aiohttp":
        extra["transport"] = AiohttpTransport(warm_up=0)
    elif stack == "httpx-transport":
        extra["transport"] = httpx.AsyncHTTPTransport()
    elif stack == "http_client":
        extra["http_client"] = user_client = httpx.AsyncClient()
    try:
        async with Cliniko(
            api_key=api_key, user_agent=USER_AGENT, base_url=base_url, **extra, **kwargs
        ) as cliniko:
            yield cliniko
    finally:
        if user_client is not None:
            await user_client.aclose()


# --- the deadline -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
async def test_a_trickled_body_ends_at_the_deadline(stack: str) -> None:
    """40 bytes at one every 0.3 s (12 s; each byte well within the 1 s read timeout)."""
    with raw_server(trickle(40, 0.3)) as base_url:
        async with client(stack, base_url, timeout=1.0, max_retries=0) as cliniko:
            started = time.monotonic()
            with pytest.raises(APITimeoutError, match="3 s deadline") as info:
                await asyncio.wait_for(cliniko.request("GET", "/patients"), 30)
            elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 6, elapsed  # the default deadline: 3 x timeout
    assert info.value.__context__ is None and info.value.__cause__ is None


@pytest.mark.parametrize("stack", STACKS)
async def test_an_endless_trickle_ends(stack: str) -> None:
    with raw_server(trickle(None, 0.2)) as base_url:
        async with client(stack, base_url, timeout=1.0, max_retries=0) as cliniko:
            started = time.monotonic()
            with pytest.raises(APITimeoutError):
                await asyncio.wait_for(cliniko.request("GET", "/patients"), 20)
            assert time.monotonic() - started < 6


async def test_a_passed_deadline_is_retried_like_a_timeout_and_the_total_is_bounded() -> None:
    with raw_server(trickle(None, 0.1)) as base_url:
        async with client("default", base_url, timeout=0.5, deadline=1.0) as cliniko:
            started = time.monotonic()
            with pytest.raises(APITimeoutError, match="1 s deadline"):
                await asyncio.wait_for(cliniko.request("GET", "/patients"), 20)
            # three attempts (max_retries=2) of 1 s each, plus backoff (at most 0.5 + 1 s)
            assert 3 <= time.monotonic() - started < 6.5
            # a POST is sent once: it may have reached Cliniko
            started = time.monotonic()
            with pytest.raises(APITimeoutError):
                await asyncio.wait_for(cliniko.request("POST", "/patients", json={}), 20)
            assert time.monotonic() - started < 2.5


async def test_the_deadline_leaves_fast_requests_and_the_task_alone() -> None:
    with raw_server(status(200, b'{"ok": true}')) as base_url:
        async with client("default", base_url, timeout=0.2, deadline=0.3) as cliniko:
            for _ in range(20):
                assert await cliniko.request("GET", "/patients") == {"ok": True}
            await asyncio.sleep(0.5)  # past every deadline armed above: nothing fires
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0


def test_deadline_and_cap_are_validated() -> None:
    assert RequestOptions(timeout=10).effective_deadline() == 30
    assert RequestOptions(timeout=httpx.Timeout(5, read=20)).effective_deadline() == 60
    assert RequestOptions(deadline=float("inf")).effective_deadline() is None
    for bad in ({"deadline": 0}, {"deadline": "5"}, {"max_response_size": 0}):
        with pytest.raises(ConfigurationError):
            RequestOptions(**bad)
    with pytest.raises(ConfigurationError, match="max_response_size"):
        Cliniko(api_key=KEY, user_agent=USER_AGENT, max_response_size=-1)


# --- the size cap -------------------------------------------------------------------------------


async def _peak_while(cliniko: Cliniko) -> tuple[ResponseTooLargeError, int]:
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError) as info:
            await asyncio.wait_for(cliniko.request("GET", "/patients"), 60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return info.value, peak


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_200_mb_body_stops_at_the_cap(stack: str, chunked: bool) -> None:
    with raw_server(huge(200 * MB, chunked=chunked)) as base_url:
        async with client(stack, base_url, max_retries=0) as cliniko:
            error, peak = await _peak_while(cliniko)
    assert error.limit == DEFAULT_CAP and "max_response_size" in str(error)
    # Content-Length over the cap: refused before reading; chunked: read up to the cap only.
    assert peak < (8 * MB if not chunked else DEFAULT_CAP + 48 * MB), peak // MB


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_gzip_bomb_stops_at_the_cap_on_decompressed_bytes(
    stack: str, chunked: bool
) -> None:
    with raw_server(bomb(200 * MB, chunked=chunked)) as base_url:
        async with client(stack, base_url, max_retries=0) as cliniko:
            error, peak = await _peak_while(cliniko)
    assert error.limit == DEFAULT_CAP
    assert peak < DEFAULT_CAP + 48 * MB, peak // MB


@pytest.mark.parametrize("stack", STACKS)
async def test_a_small_cap_holds_and_is_not_retried(stack: str) -> None:
    calls = 0

    async def counted(request: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        await bomb(8 * MB)(request, writer)

    with raw_server(counted) as base_url:
        async with client(stack, base_url, max_response_size=MB) as cliniko:
            error, peak = await _peak_while(cliniko)
    assert error.limit == MB and calls == 1
    assert peak < 12 * MB, peak // MB


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "identity-chunked"])
async def test_bodies_under_the_cap_decode_as_before(stack: str, coding: str) -> None:
    body = b'{"patients": [' + b",".join(b'{"id": %d}' % i for i in range(2000)) + b"]}"
    if coding == "gzip":
        wire, headers = gzip.compress(body), ["Content-Encoding: gzip"]
    elif coding == "deflate":
        wire, headers = zlib.compress(body), ["Content-Encoding: deflate"]
    elif coding == "raw-deflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire, headers = packer.compress(body) + packer.flush(), ["Content-Encoding: deflate"]
    else:
        wire, headers = body, []

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        framing = "Transfer-Encoding: chunked" if coding == "identity-chunked" else ""
        lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", *headers]
        if framing:
            payload = b"%x\r\n" % len(wire) + wire + b"\r\n0\r\n\r\n"
            lines.append(framing)
        else:
            payload = wire
            lines.append(f"Content-Length: {len(wire)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await writer.drain()

    with raw_server(behave) as base_url:
        async with client(stack, base_url, max_response_size=len(body)) as cliniko:
            for _ in range(3):
                data = await cliniko.request("GET", "/patients")
                assert len(data["patients"]) == 2000
        async with client(stack, base_url, max_response_size=len(body) - 1) as cliniko:
            with pytest.raises(ResponseTooLargeError):
                await cliniko.request("GET", "/patients")


async def test_the_callers_own_timeout_and_cancellation_are_left_as_they_are() -> None:
    from ._rawserver import silent

    with raw_server(silent()) as base_url:
        async with client("default", base_url, timeout=5.0, deadline=0.4) as cliniko:
            # the caller's timeout first: its TimeoutError, not ours
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await cliniko.request("GET", "/patients")
            # both at once (the deadline passes as the caller's timeout fires): the caller's
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.4):
                    await cliniko.request("GET", "/patients", params=[("x", "1")])
            task = asyncio.current_task()
            assert task is not None and task.cancelling() == 0
            inner = asyncio.create_task(cliniko.request("GET", "/patients"))
            await asyncio.sleep(0.1)
            inner.cancel()
            with pytest.raises(asyncio.CancelledError):
                await inner


@pytest.mark.parametrize("stack", STACKS)
async def test_a_body_that_does_not_decompress_is_a_decode_error_on_every_stack(stack: str) -> None:
    # Outside finding G1: the message said "status 0" (no status is read with such a body).
    with raw_server(status(200, b"notgzip", "Content-Encoding: gzip")) as base_url:
        async with client(stack, base_url, max_retries=0) as cliniko:
            with pytest.raises(DecodeError, match="could not be decompressed") as caught:
                await cliniko.request("GET", "/patients")
    assert "status 0" not in str(caught.value), str(caught.value)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_an_encoding_not_asked_for_is_refused_unread(stack: str, coding: str) -> None:
    # Outside finding G18: with brotli (or zstandard) installed, a br bomb of 1.6 KB was decoded
    # whole (2 GB of RSS) before the size check. Only gzip and deflate are asked for (and
    # decoded under the cap); anything else is refused before a byte is decoded.
    seen: list[bytes] = []

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        seen.append(request)
        body = b"\x1b" * 64
        writer.write(
            head("200 OK", "Content-Type: application/json", f"Content-Encoding: {coding}",
                 f"Content-Length: {len(body)}")
            + body
        )  # fmt: skip
        await writer.drain()

    with raw_server(behave) as base_url:
        async with client(stack, base_url, max_retries=0) as cliniko:
            with pytest.raises(DecodeError, match="could not be decompressed"):
                await cliniko.request("GET", "/patients")
    assert b"accept-encoding: gzip, deflate\r\n" in seen[0].lower()
