"""The key appears nowhere an error tracker, a traceback or a pretty-printer looks (issue 18).

Not in frame locals (``traceback`` with ``capture_locals``, rich's ``show_locals``, a
Sentry-style walk of every frame's locals and the httpx requests they reach), not in an
exception's chain (``__context__``/``__cause__``) or its attributes, not in ``repr``,
``attrs.asdict``, rich's pretty output, ``vars()`` or a pickle of any public object, and not
in the ConfigurationError raised when the key was pasted into the wrong argument. Each error
path (401, 404, 429, 5xx, HTML, transport error, timeout, deadline, size cap) on each HTTP stack.
"""

from __future__ import annotations

import asyncio
import base64
import io
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
from rich.console import Console
from rich.pretty import pretty_repr
from rich.traceback import Traceback

from cliniko_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    Cliniko,
    ClinikoAccounts,
    ConfigurationError,
    DecodeError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SyncCliniko,
)
from cliniko_async._config import ClientConfig
from cliniko_async.errors import ResponseTooLargeError

from ._rawserver import Behaviour, bomb, closed_port, raw_server, silent, status, trickle
from .test_limits import STACKS, client

#: Longer than rich's 80-character string limit (rich shortens long strings by slicing them).
KEY = "MS0xLXNlY3JldHMtbG9jYWxzLXRlc3Qta2V5LWxvbmdlci10aGFuLTgwLWNoYXJhY3RlcnMtZm9yLXJpY2g-au1"
TOKEN = base64.b64encode(f"{KEY}:".encode()).decode()
SECRETS = (KEY, KEY[:-4], TOKEN, TOKEN[:40])
USER_AGENT = "Secrets Test (secrets@example.com)"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__context__, e.__cause__]


def _requests_reached(value: Any) -> Iterator[httpx.Request]:
    """httpx requests a Sentry-like serializer could reach from a local or an exception."""
    candidates = [value, getattr(value, "_request", None)]
    if isinstance(value, httpx.RequestError):
        candidates.append(value._request)
    for candidate in candidates:
        if isinstance(candidate, httpx.Response):
            candidate = candidate._request
        if isinstance(candidate, httpx.Request):
            yield candidate


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a half-built object (its constructor raised)
        return f"<repr failed: {type(exc).__name__}>"


def rendered(exc: BaseException) -> str:
    """Everything an error report could show about ``exc``."""
    parts = [str(exc), repr(exc), pretty_repr(exc), repr(vars(exc))]
    parts.append(
        "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    )
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True))
    parts.append(console.file.getvalue())  # type: ignore[attr-defined]
    for e in _chain(exc):
        parts += [repr(vars(e)), pretty_repr(vars(e), max_string=80)]
        for request in _requests_reached(e):
            parts.append(repr(request.headers.raw))
        tb = e.__traceback__
        while tb is not None:  # a Sentry-style walk of every frame's locals
            for value in tb.tb_frame.f_locals.values():
                parts += [_safe_repr(value), pretty_repr(value, max_string=80)]
                for request in _requests_reached(value):
                    parts.append(repr(request.headers.raw))
            tb = tb.tb_next
    return "\n".join(parts)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


PATHS: dict[str, tuple[Behaviour | None, type[APIError], dict[str, Any]]] = {
    "401": (status(401, b'{"message": "nope"}'), AuthenticationError, {}),
    "404": (status(404), NotFoundError, {}),
    "429": (status(429, b"{}", "Retry-After: 3600"), RateLimitError, {}),
    "500": (status(500), ServerError, {}),
    "html": (status(200, b"<html>oops</html>"), DecodeError, {}),
    "transport": (None, APIConnectionError, {}),
    "timeout": (silent(), APITimeoutError, {"timeout": 0.3}),
    "deadline": (trickle(None, 0.1), APITimeoutError, {"timeout": 0.5, "deadline": 0.5}),
    "too-large": (bomb(4 << 20), ResponseTooLargeError, {"max_response_size": 1 << 20}),
}


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("path", list(PATHS))
async def test_no_error_path_shows_the_key(stack: str, path: str) -> None:
    behaviour, error_type, options = PATHS[path]
    if behaviour is None:
        url = closed_port()
        server: Any = None
    else:
        server = raw_server(behaviour)
        url = server.__enter__()
    try:
        async with client(stack, url, api_key=KEY, max_retries=0, **options) as cliniko:
            with pytest.raises(error_type) as info:
                await asyncio.wait_for(cliniko.patients.get(1), 20)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    exc = info.value
    assert_no_secret(rendered(exc))
    # Nothing chains to the httpx exception (whose .request carried the key).
    assert not any(isinstance(e, httpx.HTTPError) for e in _chain(exc))
    if path in ("transport", "timeout", "deadline", "too-large"):
        assert exc.__context__ is None and exc.__cause__ is None


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("how", ["asyncio.timeout", "wait_for", "cancel"])
async def test_a_request_cancelled_mid_flight_shows_no_key(stack: str, how: str) -> None:
    """The user's own timeout or cancel: the CancelledError ran through the HTTP stack's frames,
    which hold the request's headers; none of them may be in what a tracker records."""
    with raw_server(silent()) as url:
        async with client(stack, url, api_key=KEY, max_retries=0) as cliniko:
            caught: BaseException | None = None
            try:
                if how == "asyncio.timeout":
                    async with asyncio.timeout(0.3):
                        await cliniko.patients.get(1)
                elif how == "wait_for":
                    await asyncio.wait_for(cliniko.patients.get(1), 0.3)
                else:
                    task = asyncio.ensure_future(cliniko.patients.get(1))
                    await asyncio.sleep(0.3)
                    task.cancel()
                    await task
            except (TimeoutError, asyncio.CancelledError) as exc:
                caught = exc
    assert caught is not None
    assert_no_secret(rendered(caught))


def _views(obj: object) -> list[str]:
    texts = [repr(obj), str(obj), pretty_repr(obj), pretty_repr(obj, max_string=80)]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(obj)
    texts.append(console.file.getvalue())  # type: ignore[attr-defined]
    if hasattr(obj, "__dict__"):
        texts += [str(vars(obj)), pretty_repr(vars(obj), max_string=80)]
        for value in vars(obj).values():
            texts += [repr(value), pretty_repr(value, max_string=80)]
    if attrs.has(type(obj)):
        texts += [str(attrs.asdict(obj)), pretty_repr(attrs.asdict(obj))]  # type: ignore[arg-type]
    try:
        texts.append(repr(pickle.dumps(obj)))
    except (TypeError, AttributeError, pickle.PicklingError):
        texts.append("(not picklable)")
    return texts


async def test_no_public_object_shows_the_key(redis_url: str) -> None:
    from cliniko_async.redis import RedisLimiterBackend

    backend = RedisLimiterBackend(redis_url)
    cliniko = Cliniko(api_key=KEY, user_agent=USER_AGENT, limiter=backend)
    accounts = ClinikoAccounts(user_agent=USER_AGENT)
    from_accounts = accounts.for_key(KEY)
    sync = SyncCliniko(api_key=KEY, user_agent=USER_AGENT)
    config = ClientConfig.build(api_key=KEY, user_agent=USER_AGENT)
    session = cliniko._session
    objects: list[object] = [
        cliniko, from_accounts, accounts, sync, backend, config, config.api_key, session,
        session._credentials, cliniko.with_options(timeout=5), sync.with_options(timeout=5),
    ]  # fmt: skip
    try:
        for obj in objects:
            for text in _views(obj):
                assert_no_secret(text)
        with pytest.raises(TypeError):
            pickle.dumps(config)
        with pytest.raises(TypeError):
            pickle.dumps(cliniko)
    finally:
        sync.close()
        await cliniko.aclose()
        await accounts.aclose()
        await backend.aclose()


HOST = "https://api.au1.cliniko.com"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": KEY + "\n"},
        {"api_key": " " + KEY},
        {"base_url": KEY},
        {"base_url": f"http://example.com/v1/{KEY}"},
        {"base_url": f"{HOST}/v1?key={KEY}"},
        {"base_url": f"{HOST}/v1#{KEY}"},
        {"base_url": f"https://{KEY}@api.au1.cliniko.com/v1"},
        {"base_url": f"https://user:{KEY}@api.au1.cliniko.com/v1"},
        {"base_url": f"ftp://api.au1.cliniko.com/{KEY}"},
        {"user_agent": KEY},
        {"user_agent": f"{KEY} (not-an-email)"},
        {"shard": KEY},
        {"api_key": "MS0xLWtleQ-au1", "shard": KEY},
    ],
    ids=lambda kw: next(iter(kw)) + ":" + str(sorted(kw.values())[0])[:12],
)
@pytest.mark.parametrize("entry", ["Cliniko", "SyncCliniko", "ClinikoAccounts"])
def test_a_key_in_the_wrong_argument_is_never_echoed(kwargs: dict[str, str], entry: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _construct(entry, {"api_key": KEY, "user_agent": USER_AGENT, **kwargs})
    del kwargs  # this test's own frame: not the library's
    assert_no_secret(rendered(info.value).replace(_construct.__name__, ""))


def _construct(entry: str, arguments: dict[str, Any]) -> None:
    # This helper's frame (the user's code, in real life) holds the key: it is dropped from
    # what is checked by leaving the frame before the traceback is rendered.
    try:
        if entry == "ClinikoAccounts":
            key, shard = arguments.pop("api_key"), arguments.pop("shard", None)
            ClinikoAccounts(**arguments).for_key(key, shard=shard)
        elif entry == "SyncCliniko":
            SyncCliniko(**arguments)
        else:
            Cliniko(**arguments)
    finally:
        arguments.clear()
        key = shard = ""
