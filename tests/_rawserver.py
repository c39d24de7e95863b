"""A tiny raw HTTP/1.1 server on loopback, in a thread with its own event loop.

Each connection reads one request's head and hands the writer to a scripted behaviour: answer
with a status, trickle a body, stream a huge one, send a gzip bomb, or never answer. Raw
sockets, so the bytes on the wire are exactly what the test says.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import cache

Behaviour = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


def head(status: str, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[str]:
    """Serve ``behaviour`` on 127.0.0.1; yield the base URL ``http://127.0.0.1:PORT/v1``."""
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    writers: set[asyncio.StreamWriter] = set()
    started = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                await behaviour(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        started.set()
        async with server:
            await asyncio.Event().wait()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(main())
        try:
            loop.run_forever()
        finally:
            task.cancel()
            for writer in list(writers):
                writer.close()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# --- behaviours ---------------------------------------------------------------------------------


def status(code: int, body: bytes = b"{}", *headers: str) -> Behaviour:
    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(
            head(
                f"{code} X",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                *headers,
            )
            + body
        )
        await writer.drain()

    return behave


def trickle(total: int | None, every: float) -> Behaviour:
    """A 200 whose body comes one byte every ``every`` seconds (``total`` None: forever)."""

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        if total is None:
            writer.write(
                head("200 OK", "Content-Type: application/json", "Transfer-Encoding: chunked")
            )
            while True:
                writer.write(b"1\r\n \r\n")
                await writer.drain()
                await asyncio.sleep(every)
        writer.write(head("200 OK", "Content-Type: application/json", f"Content-Length: {total}"))
        for _ in range(total - 2):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)
        writer.write(b"{}")
        await writer.drain()

    return behave


def huge(size: int, *, chunked: bool) -> Behaviour:
    """A 200 with ``size`` bytes of body, streamed as fast as the client reads."""
    block = b" " * (1 << 20)

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        writer.write(head("200 OK", "Content-Type: application/json", framing))
        sent = 0
        while sent < size:
            if chunked:
                writer.write(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                writer.write(block)
            sent += len(block)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    return behave


@cache
def gzip_bomb(unpacked: int) -> bytes:
    """``unpacked`` bytes of spaces, gzipped (about 1/1000 of that on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1 << 20)
    parts = [packer.compress(block) for _ in range(unpacked >> 20)]
    parts.append(packer.flush())
    return b"".join(parts)


def bomb(unpacked: int, *, chunked: bool = False) -> Behaviour:
    payload = gzip_bomb(unpacked)

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(payload)}"
        writer.write(
            head("200 OK", "Content-Type: application/json", "Content-Encoding: gzip", framing)
        )
        if chunked:
            writer.write(b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n")
        else:
            writer.write(payload)
        await writer.drain()

    return behave


def silent() -> Behaviour:
    """Reads the request and never answers."""

    async def behave(request: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    return behave


def closed_port() -> str:
    """A base URL on a loopback port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"
