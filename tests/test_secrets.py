"""The API key never appears in reprs, errors, tracebacks or logs (httpx's loggers included)."""

from __future__ import annotations

import base64
import logging
import traceback

import httpx
import pytest

from cliniko_async import APIError, Cliniko

from ._mockserver import API_KEY, BASE_URL, USER_AGENT, CountingServer

pytestmark = pytest.mark.looptime
SECRETS = (API_KEY, base64.b64encode(f"{API_KEY}:".encode()).decode())


async def failing(request: httpx.Request, srv: CountingServer) -> httpx.Response:
    path = request.url.path
    if path.endswith("/401"):
        return srv.json(401, {"message": "Unauthorized", "echo": "nothing"})
    if path.endswith("/422"):
        return srv.json(422, {"message": "Validation Failed", "errors": {"email": "is invalid"}})
    if path.endswith("/500"):
        return srv.json(500, {"message": "boom"})
    if path.endswith("echo"):  # a proxy or server reflecting the request's credentials back
        auth = request.headers["authorization"]
        echoed = f"{auth} (key {API_KEY})"
        headers = {"x-echo": auth, "content-type": "application/json"}
        if path.endswith("/401echo"):
            return httpx.Response(401, json={"message": echoed}, headers=headers)
        if path.endswith("/500echo"):
            return httpx.Response(500, content=f"<pre>{echoed}</pre>".encode(), headers=headers)
        return httpx.Response(200, content=f"<html>{echoed}</html>".encode(), headers=headers)
    if path.endswith("/drop"):
        raise httpx.RemoteProtocolError("peer closed connection", request=request)
    return httpx.Response(200, content=b"<html>Error</html>")


@pytest.mark.parametrize(
    "path", ["/401", "/422", "/500", "/drop", "/html", "/401echo", "/500echo", "/htmlecho"]
)
async def test_key_not_in_errors_logs_or_tracebacks(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "cliniko_async"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    server = CountingServer(route=failing)
    cliniko = Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, max_retries=1,
        http_client=httpx.AsyncClient(transport=server.transport()),
    )  # fmt: skip
    async with cliniko:
        with pytest.raises(APIError) as info:
            await cliniko.request("GET", path)
    text = "\n".join(
        [
            str(info.value),
            repr(info.value),
            repr(cliniko),
            "".join(traceback.format_exception(info.value)),
        ]
        + [r.getMessage() for r in caplog.records]
        + [repr(vars(info.value))]
    )
    if path.endswith("echo"):
        assert "<redacted>" in text  # the echo arrived, and was masked
    assert caplog.records, "expected debug log records"
    for secret in SECRETS:
        assert secret not in text


async def test_authorization_only_sent_to_base_url() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        return httpx.Response(200, json={})

    cliniko = Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )  # fmt: skip
    from cliniko_async import UnsafeURLError

    async with cliniko:
        await cliniko.request("GET", "/patients")
        with pytest.raises(UnsafeURLError):
            await cliniko.request("GET", "https://evil.example/v1/patients")
    assert seen == [("127.0.0.1", seen[0][1])]
    assert seen[0][1] is not None and seen[0][1].startswith("Basic ")


@pytest.mark.parametrize("stack", ["default", "httpcore"])
def test_key_not_in_httpx_or_httpcore_debug_logs_over_real_http(
    caplog: pytest.LogCaptureFixture, stack: str
) -> None:
    """Over real sockets httpcore logs every step of the exchange: none shows the key."""
    from cliniko_async import NotFoundError, SyncCliniko
    from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, serve

    secrets = (DEFAULT_API_KEY, base64.b64encode(f"{DEFAULT_API_KEY}:".encode()).decode())
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "aiohttp", "cliniko_async"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    transport = httpx.AsyncHTTPTransport() if stack == "httpcore" else None
    with (
        serve(FakeCliniko()) as base_url,
        SyncCliniko(
            api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=base_url, transport=transport
        ) as c,
    ):
        c.patients.get(1)
        with pytest.raises(NotFoundError):
            c.patients.get(99_999)
    loggers = {r.name.split(".")[0] for r in caplog.records}
    # The exchange really was logged at DEBUG (step by step by httpcore when it carries it).
    assert ("httpcore" if stack == "httpcore" else "cliniko_async") in loggers
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in secrets:
        assert secret not in text
