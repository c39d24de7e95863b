"""How many simple GETs per second the fake Cliniko answers when served by uvicorn.

Baseline, measured in the same run: a bare Starlette app returning a fixed JSON body, served
and loaded the same way. Target: >= 2,000 requests/s for the fake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import subprocess
import sys
import time

import httpx

from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT

from ._common import result

DURATION = 4.0
CONCURRENCY = 32


async def load(url: str) -> float:
    """Keep CONCURRENCY keep-alive connections busy with a minimal raw HTTP/1.1 client.

    A full client such as httpx costs about as much CPU per request as the server on this
    2-core machine, so it would measure itself; raw sockets measure the server.
    """
    parsed = httpx.URL(url)
    token = base64.b64encode(f"{DEFAULT_API_KEY}:".encode()).decode()
    request = (
        f"GET {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.netloc.decode()}\r\n"
        f"Authorization: Basic {token}\r\nUser-Agent: {DEFAULT_USER_AGENT}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    done = 0
    deadline = time.perf_counter() + DURATION

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:40]
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - start)


def served(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BARE = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
import sys, uvicorn
BODY = b'{"id":"1","first_name":"Ada","last_name":"Lovelace"}'
async def one(request):
    return Response(BODY, media_type="application/json")
app = Starlette(routes=[Route("/v1/patients/{pid:int}", one)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def measure(args: list[str], port: int) -> float:
    proc = served(args)
    try:
        wait_for(port)
        return asyncio.run(load(f"http://127.0.0.1:{port}/v1/patients/1"))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    # The server runs in its own process (as users run it), the load from this one.
    port = free_port()
    fake_rps = measure(
        ["-m", "cliniko_async.testing", "--port", str(port), "--rate-limit", "100000000/1"], port
    )
    port = free_port()
    bare_rps = measure(["-c", BARE, str(port)], port)
    print(
        f"fake Cliniko  : {fake_rps:8.0f} GET/s (uvicorn, {CONCURRENCY} concurrent, {DURATION} s)"
    )
    print(f"bare Starlette: {bare_rps:8.0f} GET/s (baseline, same server and load)")
    result(
        "fake server",
        f"{fake_rps:.0f} GET/s served = {fake_rps / bare_rps:.2f} x a bare Starlette app "
        f"({bare_rps:.0f}/s); target >= 2,000/s",
        fake_rps >= 2000,
    )


if __name__ == "__main__":
    main()
