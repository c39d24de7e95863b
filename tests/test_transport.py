"""The HTTP stack: the owned aiohttp pool (per loop and process), injection, no waste."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import select
import subprocess
import sys
import threading
import time
import tomllib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko_async import APIConnectionError, APITimeoutError, Cliniko, ClinikoAccounts
from cliniko_async import _transport as transport_module
from cliniko_async._config import ApiKey, ClientConfig
from cliniko_async._transport import AiohttpTransport
from cliniko_async.errors import ConfigurationError
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, serve

from ._mockserver import USER_AGENT

ROOT = Path(__file__).parent.parent


def key(i: int) -> str:
    return f"MS0xLWtleS1udW1iZXI{i:08d}-au1"


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve(FakeCliniko()) as url:
        yield url


def client(url: str, **kwargs: Any) -> Cliniko:
    return Cliniko(api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=url, **kwargs)


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": 1})


# -- the default stack ------------------------------------------------------------------------


STACKS = pytest.mark.parametrize("warm_up", [0, 16], ids=["aiohttp", "httpcore-first"])

SWITCH = """
import asyncio, sys
from cliniko_async import Cliniko

async def main():
    url, key = sys.argv[1], sys.argv[2]
    async with Cliniko(api_key=key, user_agent="T (t@example.com)", base_url=url) as c:
        await c.patients.get(1)
        print("aiohttp" in sys.modules)
        await asyncio.gather(*(c.patients.get(1 + i % 5) for i in range(8)))
        print("aiohttp" in sys.modules, c._session.transport._pool().session is not None)

asyncio.run(main())
"""


def test_the_first_requests_go_through_httpcore_then_aiohttp(served: str) -> None:
    """A short script never imports aiohttp; concurrency switches the loop to it."""
    out = subprocess.run(
        [sys.executable, "-c", SWITCH, served, DEFAULT_API_KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    assert out == ["False", "True", "True"]


@STACKS
def test_one_client_across_two_asyncio_runs(served: str, warm_up: int) -> None:
    """A client made outside any loop works in one asyncio.run, then in the next one."""
    cliniko = client(served, transport=AiohttpTransport(warm_up=warm_up))
    transport = cliniko._session.transport
    assert isinstance(transport, AiohttpTransport)
    gc.collect()  # earlier tests' garbage
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            assert asyncio.run(cliniko.patients.get(1)).id == 1
            # asyncio.run shut the loop's pool down (on that loop) before closing the loop.
            assert transport.pools == 0
        asyncio.run(cliniko.aclose())
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@STACKS
def test_no_resource_warning_when_closed_or_left_open(served: str, warm_up: int) -> None:
    async def used(close: bool) -> None:
        cliniko = client(served, transport=AiohttpTransport(warm_up=warm_up))
        await asyncio.gather(*(cliniko.patients.get(1 + i % 5) for i in range(20)))
        if close:
            await cliniko.aclose()

    gc.collect()  # earlier tests' garbage
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(used(close=True))
        asyncio.run(used(close=False))  # never closed: the loop's shutdown closes its pool
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {timeout} s")


def _fork(child: Callable[[], bool]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process" (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            code = 0 if child() else 1
        finally:
            os._exit(code)
    return _wait_child(pid, 60)


@STACKS
def test_a_client_made_before_fork_works_in_the_child(served: str, warm_up: int) -> None:
    cliniko = client(served, transport=AiohttpTransport(warm_up=warm_up))
    assert asyncio.run(cliniko.patients.get(1)).id == 1  # the parent used it first

    def child() -> bool:
        return asyncio.run(cliniko.patients.get(2)).id == 2

    assert _fork(child) == 0
    assert asyncio.run(cliniko.patients.get(3)).id == 3
    asyncio.run(cliniko.aclose())


def test_fork_while_the_parent_pool_is_open(served: str) -> None:
    """The child builds its own pool and never closes the parent's connections."""

    async def run() -> None:
        async with client(served) as cliniko:
            await asyncio.gather(*(cliniko.patients.get(1 + i % 5) for i in range(10)))
            transport = cliniko._session.transport
            assert isinstance(transport, AiohttpTransport) and transport.pools == 1

            def child() -> bool:
                # This thread is inside the parent's running loop: use a fresh thread's loop.
                result: list[bool] = []

                def in_thread() -> None:
                    async def go() -> bool:
                        got = await cliniko.patients.get(4)
                        await cliniko.aclose()  # closes the child's pool only
                        return got.id == 4

                    result.append(asyncio.run(go()))

                thread = threading.Thread(target=in_thread)
                thread.start()
                thread.join(30)
                return result == [True]

            assert _fork(child) == 0
            # The parent's pooled connections still work after the child closed its own.
            got = await asyncio.gather(*(cliniko.patients.get(1 + i % 5) for i in range(10)))
            assert {p.id for p in got} == {1, 2, 3, 4, 5}

    asyncio.run(run())


# -- error mapping over real sockets ----------------------------------------------------------


class _RawServer:
    """Accepts connections, reads a request, then does ``behaviour`` (close or stay silent)."""

    def __init__(self, behaviour: str) -> None:
        import socket

        self.behaviour = behaviour
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self._held: list[Any] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            conn, _ = self.sock.accept()
            self.connections += 1
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            if self.behaviour == "close":
                conn.close()
            else:
                self._held.append(conn)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(5)
        for conn in self._held:
            conn.close()
        self.sock.close()


@STACKS
@pytest.mark.parametrize(("method", "attempts"), [("GET", 3), ("POST", 1)])
def test_a_dropped_connection_is_retried_only_when_idempotent(
    method: str, attempts: int, warm_up: int
) -> None:
    server = _RawServer("close")

    async def run() -> None:
        transport = AiohttpTransport(warm_up=warm_up)
        async with client(server.url, max_retries=2, transport=transport) as cliniko:
            with pytest.raises(APIConnectionError):
                await cliniko.request(
                    method, "/patients", json={"a": 1} if method == "POST" else None
                )

    try:
        asyncio.run(run())
    finally:
        server.stop()
    assert server.connections == attempts


@STACKS
def test_a_silent_server_is_a_read_timeout_and_not_resent_for_post(warm_up: int) -> None:
    server = _RawServer("silent")

    async def run() -> None:
        transport = AiohttpTransport(warm_up=warm_up)
        async with client(server.url, max_retries=2, timeout=0.3, transport=transport) as cliniko:
            with pytest.raises(APITimeoutError):
                await cliniko.request("POST", "/patients", json={"a": 1})

    try:
        asyncio.run(run())
    finally:
        server.stop()
    assert server.connections == 1


@STACKS
def test_nothing_listening_is_a_connect_error_retried_for_post_too(warm_up: int) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def run() -> None:
        transport = AiohttpTransport(warm_up=warm_up)
        async with client(
            f"http://127.0.0.1:{port}/v1", max_retries=1, transport=transport
        ) as cliniko:
            cliniko._session.options = attrs_evolve(cliniko._session.options, backoff_base=0.01)
            with pytest.raises(APIConnectionError) as info:
                await cliniko.request("POST", "/patients", json={"a": 1})
            assert "ConnectError" in str(info.value)
            # What the failure was (outside finding G24: a refused port, an unknown host and a
            # certificate that does not verify all read "ConnectError"), with nothing secret.
            text = str(info.value)
            assert "ConnectError (" in text and ("refused" in text or "connect" in text), text
            assert DEFAULT_API_KEY not in text

    asyncio.run(run())


def attrs_evolve(obj: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(obj, **changes)


# -- injection --------------------------------------------------------------------------------


async def test_http_client_and_transport_are_alternatives() -> None:
    async with httpx.AsyncClient() as http:
        transport = httpx.MockTransport(ok)
        with pytest.raises(ConfigurationError, match="not both"):
            client("http://127.0.0.1/v1", http_client=http, transport=transport)
        with pytest.raises(ConfigurationError, match="not both"):
            ClinikoAccounts(user_agent=USER_AGENT, http_client=http, transport=transport)
        with pytest.raises(ConfigurationError, match="AsyncClient"):
            client("http://127.0.0.1/v1", http_client=object())


async def test_a_users_http_client_is_used_with_its_hooks_and_left_open() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.headers["x-tenant"])

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(ok),
        headers={"x-tenant": "t1"},
        event_hooks={"request": [hook]},
    )
    async with ClinikoAccounts(
        user_agent=USER_AGENT, base_url="http://127.0.0.1/v1", http_client=http
    ) as accounts:
        await accounts.for_key(key(1)).request("GET", "/user")
        await accounts.for_key(key(2)).request("GET", "/user")
    async with client("http://127.0.0.1/v1", http_client=http) as cliniko:
        await cliniko.request("GET", "/user")
    assert seen == ["t1", "t1", "t1"]
    assert not http.is_closed
    await http.aclose()


async def test_a_given_transport_is_shared_by_pools_and_closed_once() -> None:
    closed: list[int] = []

    class Counting(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(1)

    async with ClinikoAccounts(user_agent=USER_AGENT, transport=Counting(ok)) as accounts:
        await accounts.for_key(key(1)).request("GET", "/user")
        await accounts.for_key(key(2)).request("GET", "/user")
        await accounts.for_key(key(3).replace("-au1", "-uk2")).request("GET", "/user")
        assert len(accounts.pools) == 2
    assert closed == [1]


# -- per-request waste ------------------------------------------------------------------------


def test_sniffio_is_a_dependency_and_importable() -> None:
    # Without it httpcore tries (and fails) to import it several times per request.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("sniffio") for d in deps)
    assert importlib.util.find_spec("sniffio") is not None


async def test_no_url_is_built_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client("http://127.0.0.1/v1", transport=httpx.MockTransport(ok)) as cliniko:
        await cliniko.request("GET", "/patients/1")  # the path's URL is built here, once
        calls: list[int] = []
        real = httpx.URL.copy_with

        def counting(self: httpx.URL, **kwargs: Any) -> httpx.URL:
            calls.append(1)
            return real(self, **kwargs)

        monkeypatch.setattr(httpx.URL, "copy_with", counting)
        for _ in range(20):
            await cliniko.request("GET", "/patients/1")
        assert calls == []


async def test_for_key_finds_a_cached_key_without_parsing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with ClinikoAccounts(user_agent=USER_AGENT, transport=httpx.MockTransport(ok)) as acc:
        first = [acc.for_key(key(i)) for i in range(10)]
        parses: list[int] = []
        real = ApiKey.parse.__func__  # type: ignore[attr-defined]

        def counting(cls: type[ApiKey], /, raw: object, **kwargs: Any) -> ApiKey:
            parses.append(1)
            result: ApiKey = real(cls, raw, **kwargs)
            return result

        monkeypatch.setattr(ApiKey, "parse", classmethod(counting))
        monkeypatch.setattr(ClientConfig, "build", _forbidden)
        again = [acc.for_key(key(i)) for i in range(10)]
        assert all(a is b for a, b in zip(first, again, strict=True))
        assert parses == []


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a cached key was parsed again")


async def test_the_key_is_in_no_repr_of_the_accounts_cache() -> None:
    secret = key(7)
    async with ClinikoAccounts(user_agent=USER_AGENT, transport=httpx.MockTransport(ok)) as acc:
        await acc.for_key(secret).request("GET", "/user")
        acc.for_key(secret, shard="au1")
        shown = [repr(acc), repr(acc._sessions), repr(vars(acc)), str(list(acc._sessions))]
        assert not any(secret in text for text in shown)
        assert acc.for_key(secret) is acc.for_key(secret)


async def test_nothing_is_logged_or_formatted_when_debug_is_off(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    log = logging.getLogger("cliniko_async")
    level = log.level
    log.setLevel(logging.WARNING)  # (setLevel also clears the logger's isEnabledFor cache)
    request.addfinalizer(lambda: log.setLevel(level))
    calls: list[str] = []
    monkeypatch.setattr(log, "debug", lambda *a, **k: calls.append(str(a[0])))
    monkeypatch.setattr(log, "_log", lambda *a, **k: calls.append(str(a[1])))
    async with client("http://127.0.0.1/v1", transport=httpx.MockTransport(ok)) as cliniko:
        for _ in range(5):
            await cliniko.request("GET", "/patients/1")
    assert calls == []


@STACKS
def test_an_upload_streams_through_the_default_pool(warm_up: int) -> None:
    """The storage POST (multipart, Content-Length known) is streamed, never read whole."""
    import io

    reads: list[int] = []

    class Recorder(io.RawIOBase):
        def __init__(self, size: int) -> None:
            self._data = io.BytesIO(b"%PDF" + bytes(size - 4))

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return self._data.read(n)

    fake = FakeCliniko()

    async def run() -> Any:
        async with client(url, transport=AiohttpTransport(warm_up=warm_up)) as cliniko:
            return await cliniko.patient_attachments.upload(
                1,
                Recorder(3 * 1024 * 1024),  # type: ignore[arg-type]
                filename="scan.pdf",
            )

    with serve(fake) as url:
        record = asyncio.run(run())
    assert record.id is not None
    assert sum(1 for n in reads if n > 0) > 1 and -1 not in reads
    assert len(next(iter(fake.uploads.values()))) == 3 * 1024 * 1024


def test_accounts_pools_across_two_asyncio_runs_and_closed_once(served: str) -> None:
    accounts = ClinikoAccounts(user_agent=USER_AGENT, base_url=served)

    async def burst() -> set[int | None]:
        cliniko = accounts.for_key(DEFAULT_API_KEY)  # the fake knows one key
        got = await asyncio.gather(*(cliniko.patients.get(1 + i % 5) for i in range(12)))
        return {p.id for p in got}

    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert asyncio.run(burst()) == {1, 2, 3, 4, 5}
        assert asyncio.run(burst()) == {1, 2, 3, 4, 5}
        assert len(accounts.pools) == 1  # one pool per base URL, rebuilt per loop inside
        asyncio.run(accounts.aclose())
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- the per-request path, cut down (issue 14): the same results and checks ---------------------


def test_paths_are_rendered_from_checked_ids() -> None:
    from cliniko_async._resource import ActionOp, GetOp
    from cliniko_async.models import Patient

    one = GetOp("/patients/{id}", Patient)
    action = ActionOp("POST", "/patients/{id}/archive")
    two = GetOp("/patients/{patient_id}/attachments/{id}", Patient)
    none = GetOp("/settings", Patient)
    for op in (one, action, two, none):
        op.__set_name__(type("Things", (), {}), "op")
    assert one.render_path((12,)) == "/patients/12"
    assert one.render_path(("0012",)) == "/patients/12"
    assert one.render_path((2**63 - 1,)) == f"/patients/{2**63 - 1}"
    assert action.render_path(("7",)) == "/patients/7/archive"
    assert two.render_path((1, "2")) == "/patients/1/attachments/2"
    assert none.render_path(()) == "/settings"
    fullwidth = "\uff11\uff12"  # "12" in fullwidth digits
    bad_ids: list[Any] = [0, -1, True, 2**63, "1/2", fullwidth, "12\n", 1.0, None]
    for bad in bad_ids:
        with pytest.raises(ConfigurationError, match="nothing was sent"):
            one.render_path((bad,))
    with pytest.raises(ConfigurationError, match="nothing was sent"):
        two.render_path((1, False))
    with pytest.raises(ConfigurationError, match=r"takes 2 id argument\(s\)"):
        two.render_path((1,))


def test_a_plain_get_still_checks_required_params() -> None:
    from cliniko_async._resource import GetOp, _encode_params
    from cliniko_async.models import Patient

    op = GetOp("/available", Patient, params=("from", "to"), required_params=("from",))
    op.__set_name__(type("Things", (), {}), "op")
    with pytest.raises(ConfigurationError, match="needs the query parameter"):
        _encode_params(op, op.filters, op.params, None, None, None, None)
    assert _encode_params(op, op.filters, op.params, None, None, None, {"from": "x"}) == [
        ("from", "x")
    ]
    plain = GetOp("/patients/{id}", Patient)
    assert _encode_params(plain, plain.filters, plain.params, None, None, None, None) == []


@pytest.mark.parametrize(
    "record",
    [
        {"id": "not a number", "first_name": "A"},  # the converter's own ModelDecodeError
        {"id": "1", "created_at": "not a datetime"},  # ValueError from fromisoformat
        ["not", "an", "object"],
    ],
)
async def test_a_record_that_does_not_fit_its_model_is_a_decode_error(record: object) -> None:
    from cliniko_async import DecodeError

    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=record))
    async with client("http://127.0.0.1/v1", transport=transport) as cliniko:
        for _ in range(2):  # the model's structure function is looked up once, then reused
            with pytest.raises(DecodeError, match="did not match the Patient model"):
                await cliniko.patients.get(1)


@STACKS
def test_responses_come_back_read_and_closed(served: str, warm_up: int) -> None:
    async def main() -> None:
        transport = AiohttpTransport(warm_up=warm_up)
        async with client(served, transport=transport) as cliniko:
            for _ in range(3):
                response, data = await cliniko._session.request("GET", "/patients/1", raw=True)
                assert response.is_closed and response.content and data["id"] == "1"
            raw = await cliniko.patients.with_raw_response.get(1)
            assert raw.status_code == 200 and raw.parsed.id == 1

    asyncio.run(main())


def test_url_text_is_cached_for_paths_only(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cliniko_async import _transport

    monkeypatch.setattr(_transport, "_URL_TEXTS", {})

    async def main() -> None:
        async with client(served, transport=AiohttpTransport(warm_up=0)) as cliniko:
            await cliniko.patients.get(1)
            before = len(_transport._URL_TEXTS)
            assert before == 1
            seen = [p async for p in cliniko.patients.list(per_page=5).pages()][:3]
            for _ in range(5):
                assert (await cliniko.patients.get(1)).id == 1
                assert (await cliniko.patients.get(2)).id == 2
            # /patients/2 added once; the list's pages (each with a query) added nothing.
            assert len(_transport._URL_TEXTS) == before + 1
            assert len(seen) == 3 and seen[1].items[0].id != seen[0].items[0].id

    asyncio.run(main())


def test_a_slot_taken_fast_still_fills_the_bucket() -> None:
    from cliniko_async._limiter import LocalLimiter, RateLimit

    now = [100.0]
    limiter = LocalLimiter(RateLimit(10, 10.0, burst=2), clock=lambda: now[0])

    async def main() -> None:
        for _ in range(2):  # the burst
            (await limiter.acquire()).release()
        waiting = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the bucket is full: the third waits for it to leak
        now[0] += 1.0  # one request leaks out per second
        limiter._service(now[0])  # (its timer runs on the real clock: wake it by hand)
        (await asyncio.wait_for(waiting, 5)).release()

    asyncio.run(main())


def test_response_headers_are_what_httpx_would_build() -> None:
    from cliniko_async._transport import _headers, _response_extensions

    raw = ((b"Content-Type", b"application/json"), (b"X-RateLimit-Remaining", b"199"),
           (b"set-cookie", b"a=1"), (b"Set-Cookie", b"b=2"))  # fmt: skip
    ours, theirs = _headers(raw), httpx.Headers(raw)
    assert ours.raw == theirs.raw and ours.multi_items() == theirs.multi_items()
    assert ours["x-ratelimit-remaining"] == "199" and ours.get_list("SET-COOKIE") == ["a=1", "b=2"]
    response = httpx.Response(429, headers=ours, extensions=_response_extensions("Too Many"))
    assert response.reason_phrase == "Too Many" and response.headers == theirs
    assert _response_extensions("Too Many") == {
        "http_version": b"HTTP/1.1",
        "reason_phrase": b"Too Many",
    }
    assert "reason_phrase" not in _response_extensions("")


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A loopback HTTP/1.1 server recording each request's method, headers and body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            host = headers.pop("host")  # the server's own address: the same on each stack
            assert host == f"127.0.0.1:{server.server_address[1]}"
            seen.append((f"{self.command} {self.path}", headers, body))
            reply = b'{"id": "1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def test_requests_straight_to_aiohttp_carry_the_same_headers_and_bodies() -> None:
    """Once on aiohttp no httpx.Request is built: what is sent is what the httpx path sends."""
    from urllib.parse import unquote

    calls: list[tuple[str, str, dict[str, Any] | None, list[tuple[str, str]] | None]] = [
        ("GET", "/patients/1", None, None),
        ("GET", "/patients", None, [("page", "2"), ("q[]", "first_name:=A b")]),
        ("GET", "/patients?page=3", None, None),
        ("POST", "/patients", {"first_name": "Zoë"}, None),
        ("POST", "/patients/1/archive", None, None),
        ("PATCH", "/patients/1", {"notes": None}, None),
        ("DELETE", "/patients/1", None, None),
    ]

    def run(warm_up: int) -> list[tuple[str, dict[str, str], bytes]]:
        async def main() -> list[tuple[str, dict[str, str], bytes]]:
            with recording_server() as (url, seen):
                transport = AiohttpTransport(warm_up=warm_up)
                async with client(url, transport=transport) as cliniko:
                    session = cliniko._session
                    for method, path, body, params in calls:
                        await session.request(method, path, json_body=body, params=params)
                    on_aiohttp = transport._pool().session is not None
                assert on_aiohttp == (warm_up == 0)
                return seen

        return asyncio.run(main())

    direct, through_httpx = run(warm_up=0), run(warm_up=16)
    assert len(direct) == len(calls)
    for (method, a, body_a), (method_b, b, body_b) in zip(direct, through_httpx, strict=True):
        # (aiohttp's yarl leaves ':' unescaped in a query, httpx escapes it: the same query)
        assert unquote(method) == unquote(method_b) and body_a == body_b
        for name in ("authorization", "user-agent", "accept", "accept-encoding", "content-type"):
            assert a.get(name) == b.get(name), (method, name)
        # (aiohttp says "Content-Length: 0" on a DELETE without a body, httpx says nothing)
        assert a.get("content-length", "0") == b.get("content-length", "0"), method
        assert a["authorization"].startswith("Basic ")
    assert [m for m, _, _ in direct] == [
        "GET /v1/patients/1",
        "GET /v1/patients?page=2&q%5B%5D=first_name:%3DA+b",
        "GET /v1/patients?page=3",
        "POST /v1/patients",
        "POST /v1/patients/1/archive",
        "PATCH /v1/patients/1",
        "DELETE /v1/patients/1",
    ]
    assert direct[3][2] == b'{"first_name":"Zo\\u00eb"}'
    assert direct[3][1]["content-type"] == "application/json"
    assert direct[4][1]["content-length"] == "0" and "content-type" not in direct[4][1]


def test_aiohttp_adds_no_user_agent_or_content_type_of_its_own() -> None:
    async def main() -> list[tuple[str, dict[str, str], bytes]]:
        with recording_server() as (url, seen):
            transport = AiohttpTransport(warm_up=0)
            try:
                for request in (
                    httpx.Request("POST", url + "/patients/1/archive"),  # no body, no UA
                    httpx.Request("GET", url + "/patients/1", headers={"User-Agent": "Mine"}),
                    httpx.Request(
                        "PUT", url + "/x", content=b"{}", headers={"Content-Type": "a/b"}
                    ),
                ):
                    await transport.handle_async_request(request)
            finally:
                await transport.aclose()
            return seen

    seen = asyncio.run(main())
    assert [method for method, _, _ in seen] == [
        "POST /v1/patients/1/archive",
        "GET /v1/patients/1",
        "PUT /v1/x",
    ]
    assert "user-agent" not in seen[0][1] and "content-type" not in seen[0][1]
    assert seen[1][1]["user-agent"] == "Mine"
    assert seen[2][1]["content-type"] == "a/b" and seen[2][2] == b"{}"


@STACKS
def test_a_client_per_job_loads_the_ca_bundle_once(
    served: str, warm_up: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside finding G8: every Cliniko built its own SSLContext (~16 ms of CPU, ~0.9 MB), even
    # for plain http, so a client made per job paid that each time. One per process now, made
    # again only for other SSL_CERT_FILE / SSL_CERT_DIR settings.
    made: list[object] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.setattr(transport_module, "_SSL_CONTEXTS", {})

    async def job() -> None:
        async with client(served, transport=AiohttpTransport(warm_up=warm_up)) as c:
            await asyncio.gather(*(c.patients.get(1) for _ in range(6)))

    for _ in range(5):
        asyncio.run(job())
    assert len(made) <= 1, made
    contexts = {id(AiohttpTransport()._ssl_context()) for _ in range(3)}
    assert len(contexts) == 1 and len(made) == 1
    monkeypatch.setenv("SSL_CERT_FILE", httpx_certifi_bundle())
    other = AiohttpTransport()._ssl_context()
    assert len(made) == 2 and id(other) not in contexts
    assert AiohttpTransport(verify=False)._ssl_context() is False


def httpx_certifi_bundle() -> str:
    import certifi

    return certifi.where()


async def test_ca_certificates_that_cannot_be_loaded_are_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Outside finding G22: an OSError loading the CA bundle (SSL_CERT_FILE pointing nowhere, no
    # file descriptor left) escaped every request raw.
    monkeypatch.setattr(transport_module, "_SSL_CONTEXTS", {})
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    async with client("https://127.0.0.1:9/v1", max_retries=0) as cliniko:
        with pytest.raises(APIConnectionError):
            await cliniko.patients.get(1)


async def test_a_transport_errors_text_never_carries_a_password_or_the_key() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError(
            f"cannot reach http://user:s3cretpw@proxy:3128 for {DEFAULT_API_KEY} "
            + request.headers["Authorization"]
        )

    async with client(
        "http://127.0.0.1/v1", max_retries=0, transport=httpx.MockTransport(fail)
    ) as cliniko:
        with pytest.raises(APIConnectionError) as info:
            await cliniko.patients.get(1)
    text = str(info.value)
    assert "ProxyError (cannot reach http://user:***@proxy:3128" in text, text
    assert "s3cretpw" not in text and DEFAULT_API_KEY not in text
    assert ApiKey.parse(DEFAULT_API_KEY).basic_auth_header()[6:] not in text
