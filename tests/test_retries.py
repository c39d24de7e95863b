"""Retries: backoff on 5xx/connection errors/timeouts for idempotent methods; never a blind POST."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cliniko_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Cliniko,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    UnprocessableEntityError,
)

from ._mockserver import API_KEY, BASE_URL, USER_AGENT

pytestmark = pytest.mark.looptime


def scripted(*outcomes: int | type[httpx.TransportError]) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering each request with the next outcome (a status or an exception)."""
    calls: list[str] = []
    queue = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, int):
            body: dict[str, object] = {"message": f"status {outcome}"}
            if outcome == 422:
                body = {"message": "Validation Failed", "errors": {"first_name": "can't be blank"}}
            return httpx.Response(outcome, json=body)
        raise outcome("scripted failure", request=request)

    return httpx.MockTransport(handler), calls


def make(transport: httpx.MockTransport, **kwargs: object) -> Cliniko:
    return Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=transport), **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("failure", [500, 502, 503, 504, httpx.ReadError, httpx.ReadTimeout])
async def test_get_is_retried_then_succeeds(failure: int | type[httpx.TransportError]) -> None:
    transport, calls = scripted(failure, failure, 200)
    async with make(transport, max_retries=2) as cliniko:
        assert await cliniko.request("GET", "/patients") == {"message": "status 200"}
    assert calls == ["GET"] * 3


async def test_backoff_grows_with_jitter() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = scripted(500, 500, 500, 200)
    async with make(transport, max_retries=3) as cliniko:
        start = loop.time()
        await cliniko.request("GET", "/patients")
    # 0.5*[0.5,1] + 1*[0.5,1] + 2*[0.5,1] seconds
    assert 1.75 <= loop.time() - start <= 3.5


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (500, ServerError),
        (httpx.ReadError, APIConnectionError),
        (httpx.ReadTimeout, APITimeoutError),
    ],
)
async def test_post_is_never_blindly_retried(
    failure: int | type[httpx.TransportError], error: type[Exception]
) -> None:
    transport, calls = scripted(failure, 201)
    async with make(transport, max_retries=3) as cliniko:
        with pytest.raises(error):
            await cliniko.request("POST", "/patients", json={"first_name": "A"})
    assert calls == ["POST"]


async def test_post_retried_when_the_connection_was_never_made() -> None:
    transport, calls = scripted(httpx.ConnectError, 201)
    async with make(transport) as cliniko:
        await cliniko.request("POST", "/patients", json={})
    assert calls == ["POST", "POST"]


async def test_retries_run_out() -> None:
    transport, calls = scripted(503)
    async with make(transport, max_retries=2) as cliniko:
        with pytest.raises(ServerError) as info:
            await cliniko.request("GET", "/patients")
    assert calls == ["GET"] * 3
    assert info.value.status_code == 503
    assert info.value.url == "http://127.0.0.1/v1/patients"


async def test_per_call_override_with_options() -> None:
    transport, calls = scripted(500, 200)
    async with make(transport, max_retries=2) as cliniko:
        with pytest.raises(ServerError):
            await cliniko.with_options(max_retries=0).request("GET", "/x")
        assert calls == ["GET"]
        assert await cliniko.request("GET", "/x") == {"message": "status 200"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (418, APIStatusError),
        (301, APIStatusError),
    ],
)
async def test_status_errors_are_typed_and_not_retried(
    status: int, error: type[APIStatusError]
) -> None:
    transport, calls = scripted(status)
    async with make(transport) as cliniko:
        with pytest.raises(error) as info:
            await cliniko.request("GET", "/patients/1", params=[("q[]", "id:=1")])
    assert calls == ["GET"]
    exc = info.value
    assert (exc.method, exc.status_code) == ("GET", status)
    assert exc.url == "http://127.0.0.1/v1/patients/1"
    assert isinstance(exc.body, dict)
    if status == 422:
        assert isinstance(exc, UnprocessableEntityError)
        assert exc.errors == {"first_name": ["can't be blank"]}
        assert "first_name: can't be blank" in str(exc)
    if status == 401:
        assert "shard" in str(exc)


async def test_redirect_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(302, headers={"location": "https://evil.example/v1/patients"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    cliniko = Cliniko(api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http)
    async with cliniko:
        with pytest.raises(APIStatusError):
            await cliniko.request("GET", "/patients")
    await http.aclose()
    assert seen == ["127.0.0.1"]
