"""FastAPI integration: one client for the app's lifetime, ``Depends``-ready.

::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from cliniko_async import Cliniko
    from cliniko_async.fastapi import cliniko_lifespan, get_cliniko

    app = FastAPI(lifespan=cliniko_lifespan(api_key=..., user_agent="Acme (dev@acme.example)"))

    @app.get("/patients/{pid}")
    async def patient(pid: int, cliniko: Annotated[Cliniko, Depends(get_cliniko)]) -> dict:
        return {"name": (await cliniko.patients.get(pid)).first_name}

Multi-tenant apps keep one :class:`~cliniko_async.ClinikoAccounts` (one pool per shard host)
and pick each request's key with :func:`cliniko_for_tenant`.

:func:`add_cliniko_exception_handlers` (opt-in) answers the library's errors with HTTP
responses instead of 500s: 404 for :class:`~cliniko_async.errors.NotFoundError`, 422 with the
field errors, 503 with ``Retry-After`` when the key's budget is spent, 502/504 when Cliniko
failed or refused your key.
"""

import datetime as dt
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Unpack

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ._accounts import ClinikoAccounts
from ._client import Cliniko
from ._options import ClientOptions
from .errors import (
    APITimeoutError,
    AuthenticationError,
    ClientClosedError,
    ClinikoError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)

__all__ = [
    "accounts_lifespan",
    "add_cliniko_exception_handlers",
    "cliniko_error_response",
    "cliniko_for_tenant",
    "cliniko_lifespan",
    "get_cliniko",
]

Lifespan = Callable[[FastAPI], Any]
logger = logging.getLogger("cliniko_async.fastapi")

#: ``Retry-After`` when Cliniko's 429 said nothing usable about its reset: one period.
DEFAULT_RETRY_AFTER = 60


def cliniko_lifespan(
    *, api_key: str, shard: str | None = None, **options: Unpack[ClientOptions]
) -> Lifespan:
    """A lifespan that opens one :class:`Cliniko` at startup (``app.state.cliniko``).

    Takes :class:`Cliniko`'s keywords (type-checked as on ``Cliniko`` itself).
    """
    Cliniko(api_key=api_key, shard=shard, **options)  # validate now, not on the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Cliniko(api_key=api_key, shard=shard, **options) as cliniko:
            app.state.cliniko = cliniko
            try:
                yield
            finally:
                del app.state.cliniko

    lifespan.cliniko_state = "cliniko"  # type: ignore[attr-defined]
    return lifespan


def _missing(request: Request, attribute: str, setup: str) -> ConfigurationError:
    """Why ``app.state`` has no client: the lifespan never ran, or the app has no such lifespan."""
    lifespan = getattr(request.app.router, "lifespan_context", None)
    if getattr(lifespan, "cliniko_state", None) == attribute:
        return ConfigurationError(
            f"no {attribute} on app.state: the app's lifespan has not run. With TestClient "
            "use `with TestClient(app) as client:` (without `with` the lifespan never starts); "
            "with httpx.ASGITransport enter `app.router.lifespan_context(app)` first; do not "
            "run uvicorn with --lifespan off"
        )
    return ConfigurationError(f"no {attribute} on app.state: create the app with {setup}")


def get_cliniko(request: Request) -> Cliniko:
    """Dependency: the app's client, opened by :func:`cliniko_lifespan`."""
    cliniko = getattr(request.app.state, "cliniko", None)
    if not isinstance(cliniko, Cliniko):
        raise _missing(request, "cliniko", "FastAPI(lifespan=cliniko_lifespan(...))")
    return cliniko


def accounts_lifespan(*, max_sessions: int = 1024, **options: Unpack[ClientOptions]) -> Lifespan:
    """A lifespan that opens one :class:`ClinikoAccounts` (``app.state.cliniko_accounts``).

    Takes :class:`ClinikoAccounts`'s keywords (type-checked as on ``ClinikoAccounts`` itself).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ClinikoAccounts(max_sessions=max_sessions, **options) as accounts:
            app.state.cliniko_accounts = accounts
            try:
                yield
            finally:
                del app.state.cliniko_accounts

    lifespan.cliniko_state = "cliniko_accounts"  # type: ignore[attr-defined]
    return lifespan


def cliniko_for_tenant(
    api_key: Callable[..., str | Awaitable[str]],
) -> Callable[..., Awaitable[Cliniko]]:
    """A dependency giving the client of the current tenant's key.

    ``api_key`` is your own dependency returning the tenant's Cliniko key (from your auth).
    Sessions come from the app's :class:`ClinikoAccounts`, so no request opens a new pool.
    """

    async def dependency(request: Request, key: Annotated[Any, Depends(api_key)]) -> Cliniko:
        # The key is dropped from this frame before anything can raise out of it: error
        # trackers that record frame locals never see it.
        try:
            if inspect.isawaitable(key):
                key = await key
            accounts = getattr(request.app.state, "cliniko_accounts", None)
            if not isinstance(accounts, ClinikoAccounts):
                raise _missing(
                    request,
                    "cliniko_accounts",
                    "FastAPI(lifespan=accounts_lifespan(user_agent=...))",
                )
            return accounts.for_key(key)
        finally:
            del key

    return dependency


def cliniko_error_response(exc: ClinikoError) -> JSONResponse | None:
    """The HTTP response for a library error, or None for the app's own bugs.

    - ``NotFoundError``: 404 ``{"detail": "not found"}``
    - ``UnprocessableEntityError``: 422 with ``errors``, Cliniko's field errors
    - ``RateLimitError``: 503 with ``Retry-After``, the seconds to Cliniko's reset
      (``DEFAULT_RETRY_AFTER`` when it gave none)
    - ``AuthenticationError``, ``PermissionDeniedError``: 502, Cliniko refused *your* key
    - ``APITimeoutError``: 504
    - any other ``APIError`` (5xx, connection, bad JSON), ``UnsafeURLError``: 502
    - ``ConfigurationError``, ``ClientClosedError``: None, a bug in the app (left a 500)

    Bodies are ``{"detail": ...}`` and never carry the key, Cliniko's URL or its body.
    """
    if isinstance(exc, ConfigurationError | ClientClosedError):
        return None
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": "not found"}, status_code=404)
    if isinstance(exc, UnprocessableEntityError):
        return JSONResponse(
            {"detail": "Cliniko refused the record", "errors": exc.errors}, status_code=422
        )
    if isinstance(exc, RateLimitError):
        return JSONResponse(
            {"detail": "Cliniko's rate limit for this account is spent: retry later"},
            status_code=503,
            headers={"Retry-After": str(_retry_after(exc.reset_at))},
        )
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return JSONResponse({"detail": "Cliniko refused the server's credentials"}, status_code=502)
    if isinstance(exc, APITimeoutError):
        return JSONResponse({"detail": "Cliniko did not answer in time"}, status_code=504)
    return JSONResponse({"detail": "Cliniko failed"}, status_code=502)


def _retry_after(reset_at: dt.datetime | None) -> int:
    if reset_at is None:
        return DEFAULT_RETRY_AFTER
    seconds = (reset_at - dt.datetime.now(dt.UTC)).total_seconds()
    return max(1, math.ceil(seconds))


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClinikoError)
    response = cliniko_error_response(exc)
    if response is None:
        raise exc  # the app's bug: a 500 with its traceback, as without the handler
    if response.status_code >= 500:
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return response


def add_cliniko_exception_handlers(app: FastAPI) -> None:
    """Answer every ``ClinikoError`` with an HTTP response (opt-in).

    See :func:`cliniko_error_response` for the mapping. Call it once, after creating the app::

        app = FastAPI(lifespan=cliniko_lifespan(...))
        add_cliniko_exception_handlers(app)
    """
    app.add_exception_handler(ClinikoError, _handle)
