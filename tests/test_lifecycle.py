"""SyncCliniko across the process's life: exit without close, fork after use (real processes).

Each case runs a script in a fresh interpreter with a hard timeout, against the fake Cliniko
served on loopback by this test process. The scripts print ``LAST <monotonic time>`` as their last
line; CLOCK_MONOTONIC is system-wide, so the exit delay is measured across processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from cliniko_async.testing import FakeCliniko, serve

ROOT = Path(__file__).resolve().parents[1]
#: A generous bound for a busy 2-core machine; the target (issue 13) is 2 s, the real numbers
#: are printed (``pytest -s``).
EXIT_BOUND = 5.0
SCRIPT_TIMEOUT = 30.0
#: Every warning shown (ResourceWarning included), except the one Python 3.12+ gives for any
#: fork() of a process with threads: not ours to report.
WARNINGS = ("-W", "always", "-W", "ignore:This process:DeprecationWarning")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]

PRELUDE = """
import os, sys, time, threading
from cliniko_async import SyncCliniko
from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT
URL = sys.argv[1]
def make(**kw):
    return SyncCliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT, base_url=URL, **kw)
def last():
    print("LAST", time.monotonic(), flush=True)
"""


class ClientPorts:
    """ASGI middleware: the client port of every request it passes on, in order."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[int] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(int(scope["client"][1]))
        await self.app(scope, receive, send)


@pytest.fixture
def served() -> Iterator[tuple[str, ClientPorts]]:
    fake = FakeCliniko(patients=20, appointments=0, rate_limit=None)
    ports = ClientPorts(fake.app)
    fake.app = ports  # type: ignore[assignment]  # serve() runs whatever fake.app is
    with serve(fake) as url:
        yield url, ports


def run_script(body: str, url: str) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds from the LAST line to the process's exit)."""
    script = PRELUDE + textwrap.dedent(body)
    proc = subprocess.Popen(
        [sys.executable, *WARNINGS, "-c", script, url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the script hung (killed after {SCRIPT_TIMEOUT:.0f} s): {out!r} {err!r}")
    ended = time.monotonic()
    marks = [line for line in out.splitlines() if line.startswith("LAST ")]
    assert marks, (proc.returncode, out, err)
    return proc.returncode, out, err, ended - float(marks[-1].split()[1])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("cliniko = make()\nlast()\n", id="zero-requests"),
        pytest.param(
            "cliniko = make()\nassert cliniko.patients.get(1).id == 1\nlast()\n",
            id="after-a-request",
        ),
        pytest.param(
            """
            from concurrent.futures import ThreadPoolExecutor
            cliniko = make()
            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(lambda i: cliniko.patients.get(1 + i % 20), range(40)))
            assert len(got) == 40
            view = cliniko.with_options(timeout=5)
            view.patients.get(2)
            last()
            """,
            id="threads-and-a-view",
        ),
        pytest.param(
            """
            def job():
                c = make()
                c.patients.get(1)  # dropped unclosed: collected, its loop thread stopped
            job()
            import gc; gc.collect()
            cliniko = make(); cliniko.patients.get(3)
            last()
            """,
            id="one-collected-one-alive",
        ),
    ],
)
def test_a_client_never_closed_lets_the_interpreter_exit(
    served: tuple[str, ClientPorts], body: str
) -> None:
    url, _ = served
    code, out, err, delay = run_script(body, url)
    print(f"exit {delay:.3f} s after the last line")
    assert code == 0, (out, err)
    assert err == "", err  # no warning (ResourceWarning shown: -W always), no traceback
    assert delay < EXIT_BOUND


FORK = """
import multiprocessing
cliniko = make()
assert cliniko.patients.get(1).id == 1  # the loop thread runs and the pool holds a connection

def in_child():
    return cliniko.patients.get(2).id

def wait_for(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"

HOW = sys.argv[2]
if HOW == "os.fork":
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if in_child() == 2 else 4
            cliniko.close()
        finally:
            os._exit(code)
    result = wait_for(pid, 10)
else:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=in_child)
    proc.start()
    proc.join(10)
    if proc.is_alive():
        proc.kill(); proc.join()
        result = "hung"
    else:
        result = proc.exitcode
print("CHILD", result, flush=True)
assert cliniko.patients.get(3).id == 3  # the parent goes on, unaffected
cliniko.close()
last()
"""


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_client_created_before_fork_works_in_the_child(
    served: tuple[str, ClientPorts], how: str
) -> None:
    url, ports = served
    script = PRELUDE + FORK
    proc = subprocess.Popen(
        [sys.executable, *WARNINGS, "-c", script, url, how],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the script hung: {out!r} {err!r}")
    assert "CHILD 0" in out, (out, err)
    assert proc.returncode == 0, (out, err)
    assert err == "", err
    # Three requests in order: parent, child, parent. The child's came on a connection of its
    # own (its pool was rebuilt), not on the one the parent opened before the fork.
    assert len(ports.seen) == 3, ports.seen
    parent_port, child_port, _ = ports.seen
    assert child_port != parent_port, ports.seen
