"""Shared fixtures: a real redis-server on a free loopback port, started and stopped here."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from cliniko_async import _limiter


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


@pytest.fixture(autouse=True)
def _fresh_key_budgets(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Each test starts with no key budgets in the process (they are process-wide and the tests
    reuse keys); tests in virtual time (looptime) give the budgets the loop's virtual clock."""
    _limiter.forget_all_limiters()
    if request.node.get_closest_marker("looptime") is not None:
        monkeypatch.setattr(_limiter, "default_clock", _running_loop_time)
    yield
    _limiter.forget_all_limiters()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A fresh redis-server for this test session (CI installs Debian's redis-server)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run `apt-get install redis-server` (.ci/run does)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not start within 10 s")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
