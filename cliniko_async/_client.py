"""The async client, :class:`Cliniko`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

import httpx

from ._config import ClientConfig
from ._limiter import RateLimit
from ._options import (
    ClientOptions,
    RequestSettings,
    apply_settings,
    client_settings,
    keyword_error,
    signature,
)
from ._session import Session
from ._transport import DEFAULT_LIMITS, owned_client
from .errors import ConfigurationError
from .resources import AsyncResources

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["DEFAULT_LIMITS", "Cliniko", "check_http_client"]


def check_http_client(
    http_client: httpx.AsyncClient | None, transport: httpx.AsyncBaseTransport | None
) -> None:
    """``http_client`` and ``transport`` are alternatives; each must be the httpx type."""
    if http_client is not None and transport is not None:
        raise ConfigurationError(
            "pass http_client (your own httpx.AsyncClient, which you close) or transport "
            "(an httpx.AsyncBaseTransport this client closes), not both"
        )
    if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
        raise ConfigurationError(
            f"http_client must be an httpx.AsyncClient, got {type(http_client).__name__}"
        )


class Cliniko(AsyncResources):
    """An async Cliniko session for one API key.

    ::

        async with Cliniko(api_key=key, user_agent="Acme Sync (dev@acme.example)") as cliniko:
            patient = await cliniko.patients.get(123)

    Requests on one key share one rate limiter (``rate_limit``, Cliniko's 200 per 60 s by
    default) with every other client of that key in the process. ``base_url`` defaults to the
    key's shard (``https://api.{shard}.cliniko.com/v1``). ``limiter`` picks where the key's
    budget is kept: in this process (the default) or shared through Redis
    (``cliniko_async.redis.RedisLimiterBackend``).

    HTTP: by default the client owns an aiohttp-backed connection pool (see README, "HTTP
    transport"), rebuilt for each event loop and after ``fork()``, closed by :meth:`aclose`.
    ``transport`` swaps in any ``httpx.AsyncBaseTransport`` (closed by :meth:`aclose`);
    ``http_client`` sends through your own ``httpx.AsyncClient`` instead: its defaults, hooks
    and mounts apply, and it is yours to close (and to keep to one event loop and process).

    Limits on every exchange: ``deadline`` (seconds from connecting to the last byte of the
    response; default three times ``timeout``, ``math.inf`` for none) raises
    :class:`APITimeoutError`; a body over ``max_response_size`` bytes (64 MiB; counted as it
    arrives and as it is decompressed) raises :class:`ResponseTooLargeError`. Neither is
    retried.
    """

    @signature(before={"api_key": str, "shard": (str | None, None)})
    def __init__(
        self, *, api_key: str, shard: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        given: dict[str, Any] = dict(options)
        del options
        problem = keyword_error("Cliniko", given)
        if problem is not None:
            del api_key, shard, given  # not in the traceback's frame locals
            raise problem
        user_agent, base_url = given.pop("user_agent"), given.pop("base_url", None)
        try:
            config = ClientConfig.build(
                api_key=api_key, user_agent=user_agent, base_url=base_url, shard=shard
            )
        finally:
            # Not kept in this frame: a traceback recording frame locals must not show them
            # (a key pasted into user_agent, base_url or shard included).
            del api_key, user_agent, base_url, shard
        values, request_options = client_settings("Cliniko", given)
        rate_limit = values["rate_limit"]
        rate_limit = rate_limit if rate_limit is not None else RateLimit()
        if not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(
                f"rate_limit must be a RateLimit(requests, period), got {rate_limit!r}"
            )
        http_client, transport = values["http_client"], values["transport"]
        check_http_client(http_client, transport)
        self._owns_http = http_client is None
        send_to: httpx.AsyncBaseTransport | None = None
        if http_client is None:
            http_client, send_to = owned_client(request_options.timeout, transport)
        self._session_obj = Session(
            config,
            http_client,
            rate_limit=rate_limit,
            options=request_options,
            limiter_backend=values["limiter"],
            transport=send_to,
        )
        self._resource_host = self

    @classmethod
    def _from_session(cls, session: Session) -> Cliniko:
        clone = cls.__new__(cls)
        clone._owns_http = False
        clone._session_obj = session
        clone._resource_host = clone
        return clone

    # ResourceHost protocol
    @property
    def _session(self) -> Session:
        return self._session_obj

    @property
    def _portal(self) -> BlockingPortal | None:
        return None

    @property
    def base_url(self) -> str:
        """The base URL every request goes to."""
        return str(self._session_obj.config.base_url)

    @property
    def rate_limit(self) -> RateLimit:
        """The key's rate limit."""
        return self._session_obj.rate_limit

    @signature()
    def with_options(self, **options: Unpack[RequestSettings]) -> Cliniko:
        """A client sharing this one's connection pool and limiter, with other settings.

        ``await cliniko.with_options(timeout=5, max_retries=0).patients.get(1)``. Takes the
        request settings of the constructor (``options=RequestOptions(...)`` too); those left
        out keep this client's values. A new ``timeout`` without a ``deadline`` gets the
        default deadline for that timeout.
        """
        changed = apply_settings(
            "with_options", self._session_obj.options, options, renew_deadline=True
        )
        return Cliniko._from_session(self._session_obj.with_options(changed))

    async def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """Send a raw request through the pipeline (auth, limiter, retries); return its JSON."""
        return await self._session_obj.request(method, path, params=params, json_body=json)

    async def aclose(self) -> None:
        """End the client's requests and close its pool (not an ``http_client``: that is yours).

        Every request of this client (and of its ``with_options`` copies) still running ends
        at once with :class:`ClientClosedError`: waiting for a rate-limit slot (nothing sent),
        waiting before a retry, or on the wire (its connection is dropped; it may or may not
        have reached Cliniko). Then the pool closes, its connections with it. A
        ``with_options`` copy's ``aclose()`` ends only its own requests.
        """
        session = self._session_obj
        session.close()
        if self._owns_http:
            await session.drained()
            await session.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        session = getattr(self, "_session_obj", None)
        if session is None:  # a constructor that raised (shown in a traceback's locals)
            return "<Cliniko (not constructed)>"
        return f"<Cliniko base_url={self.base_url!r} key={session.config.api_key.fingerprint}>"
