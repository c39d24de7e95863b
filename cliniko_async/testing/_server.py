"""Serve the fake Cliniko over real HTTP on 127.0.0.1 with uvicorn."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from ._app import FakeCliniko, RealClock

__all__ = ["serve"]


@contextlib.contextmanager
def serve(fake: FakeCliniko | Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``fake`` under uvicorn in a background thread; yield its base URL ``.../v1``.

    The fake switches to the real clock. ``fake`` may also be any ASGI app (a hostile server in
    a test, say), served as it is. The server stops and its thread is joined on exit.
    """
    if isinstance(fake, FakeCliniko):
        fake.clock = RealClock()
        fake.served = True
        app: Any = fake.app
    else:
        app = fake
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then (without it,
    # Nagle + delayed ACKs cost ~40 ms a response).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # The fake sets its own Date header (its clock, its skew faults): uvicorn must not add one.
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
        date_header=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Cliniko server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
