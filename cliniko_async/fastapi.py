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
"""

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from ._accounts import ClinikoAccounts
from ._client import Cliniko
from .errors import ConfigurationError

__all__ = ["accounts_lifespan", "cliniko_for_tenant", "cliniko_lifespan", "get_cliniko"]

Lifespan = Callable[[FastAPI], Any]


def cliniko_lifespan(**client_kwargs: Any) -> Lifespan:
    """A lifespan that opens one :class:`Cliniko` at startup (``app.state.cliniko``)."""
    Cliniko(**client_kwargs)  # validate the settings now, at import time, not on first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Cliniko(**client_kwargs) as cliniko:
            app.state.cliniko = cliniko
            try:
                yield
            finally:
                del app.state.cliniko

    return lifespan


def get_cliniko(request: Request) -> Cliniko:
    """Dependency: the app's client, opened by :func:`cliniko_lifespan`."""
    cliniko = getattr(request.app.state, "cliniko", None)
    if not isinstance(cliniko, Cliniko):
        raise ConfigurationError(
            "no Cliniko client on app.state: create the app with "
            "FastAPI(lifespan=cliniko_lifespan(...))"
        )
    return cliniko


def accounts_lifespan(**accounts_kwargs: Any) -> Lifespan:
    """A lifespan that opens one :class:`ClinikoAccounts` (``app.state.cliniko_accounts``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ClinikoAccounts(**accounts_kwargs) as accounts:
            app.state.cliniko_accounts = accounts
            try:
                yield
            finally:
                del app.state.cliniko_accounts

    return lifespan


def cliniko_for_tenant(
    api_key: Callable[..., str | Awaitable[str]],
) -> Callable[..., Awaitable[Cliniko]]:
    """A dependency giving the client of the current tenant's key.

    ``api_key`` is your own dependency returning the tenant's Cliniko key (from your auth).
    Sessions come from the app's :class:`ClinikoAccounts`, so no request opens a new pool.
    """

    async def dependency(request: Request, key: Annotated[Any, Depends(api_key)]) -> Cliniko:
        if inspect.isawaitable(key):
            key = await key
        accounts = getattr(request.app.state, "cliniko_accounts", None)
        if not isinstance(accounts, ClinikoAccounts):
            raise ConfigurationError(
                "no ClinikoAccounts on app.state: create the app with "
                "FastAPI(lifespan=accounts_lifespan(user_agent=...))"
            )
        return accounts.for_key(key)

    return dependency
