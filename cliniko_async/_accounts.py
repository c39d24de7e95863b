"""Many accounts: per-key sessions sharing one connection pool per Cliniko host."""

from __future__ import annotations

from collections import OrderedDict
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from ._client import Cliniko, check_http_client
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
from ._session import Session, _Family
from ._transport import SharedTransport, owned_client
from .errors import ConfigurationError

__all__ = ["ClinikoAccounts"]


class _Hidden(str):
    """A cache key holding an API key: compares and hashes as the key, never prints it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<api key>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<api key>"

    def __getitem__(self, index: object) -> str:
        # A slice of the key is hidden too (rich shortens long strings by slicing them).
        return _Hidden(str.__getitem__(self, index))  # type: ignore[index]

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("an API key cannot be pickled")


class ClinikoAccounts:
    """Hands out a :class:`Cliniko` per API key for integrators serving many clinics.

    Sessions share one connection pool per base URL (shard host) and keep separate per-key
    rate limiters. At most ``max_sessions`` sessions are cached (least recently used first
    out); a key's limiter outlives its session while it still has slots in use, so evicting a
    session never resets a key's budget early. A cached key is found by the key itself, without
    parsing it again.

    ``http_client`` and ``transport`` work as on :class:`Cliniko`: ``transport`` is shared by
    every pool and closed by :meth:`aclose`; ``http_client`` (your ``httpx.AsyncClient``) sends
    every key's requests and is left open.

    ::

        async with ClinikoAccounts(user_agent="Acme Sync (dev@acme.example)") as accounts:
            patient = await accounts.for_key(clinic.api_key).patients.get(1)
    """

    @signature(after={"max_sessions": (int, 1024)})
    def __init__(self, *, max_sessions: int = 1024, **options: Unpack[ClientOptions]) -> None:
        given: dict[str, Any] = dict(options)
        del options
        problem = keyword_error("ClinikoAccounts", given)
        if problem is not None:
            del given  # not in the traceback's frame locals
            raise problem
        user_agent, base_url = given.pop("user_agent"), given.pop("base_url", None)
        # Validate the shared settings once, with a placeholder key, before any request. On
        # failure these arguments leave the frame first (an API key pasted into user_agent
        # must not show in a traceback that records frame locals).
        try:
            ClientConfig.build(api_key="placeholder0", user_agent=user_agent, base_url=base_url)
        except ConfigurationError as exc:
            error: ConfigurationError | None = exc
        else:
            error = None
        if error is not None:
            del user_agent, base_url
            raise error.with_traceback(None)
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be an integer >= 1, got {max_sessions!r}")
        values, request_options = client_settings("ClinikoAccounts", given)
        http_client, transport = values["http_client"], values["transport"]
        check_http_client(http_client, transport)
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigurationError(
                f"transport must be an httpx.AsyncBaseTransport, got {type(transport).__name__}"
            )
        rate_limit = values["rate_limit"]
        self._rate_limit = rate_limit if rate_limit is not None else RateLimit()
        if not isinstance(self._rate_limit, RateLimit):
            raise ConfigurationError(
                f"rate_limit must be a RateLimit(requests, period), got {rate_limit!r}"
            )
        self._user_agent = user_agent
        self._base_url = base_url
        self._options = request_options
        # Every key's session belongs to one family: aclose() ends all their requests at once.
        self._family = _Family()
        self._limiter = values["limiter"]
        self._http_client = http_client
        self._transport = transport
        self.max_sessions = max_sessions
        # Keyed by the key itself (as _Hidden) or (key, shard): a hit costs one dict lookup.
        self._sessions: OrderedDict[object, Cliniko] = OrderedDict()
        self._pools: dict[str, tuple[httpx.AsyncClient, httpx.AsyncBaseTransport | None]] = {}
        self._parent: ClinikoAccounts | None = None

    @signature()
    def with_options(self, **options: Unpack[RequestSettings]) -> ClinikoAccounts:
        """These accounts with other request settings: the keywords of
        :meth:`Cliniko.with_options <cliniko_async.Cliniko.with_options>`.

        The view shares the pools, the limiters and the family of these accounts (their
        ``aclose()`` ends the view's requests too); ``view.for_key(key)`` is
        ``accounts.for_key(key).with_options(...)``, cached in the view. The view's
        ``aclose()`` ends only the requests of the sessions it handed out.
        """
        changed = apply_settings("with_options", self._options, options, renew_deadline=True)
        view = ClinikoAccounts.__new__(ClinikoAccounts)
        view.__dict__.update(self.__dict__)
        view._options = changed
        view._sessions = OrderedDict()
        view._parent = self if self._parent is None else self._parent
        return view

    def for_key(self, api_key: str, *, shard: str | None = None) -> Cliniko:
        """The session for ``api_key`` (created on first use, then reused)."""
        sessions = self._sessions
        if type(api_key) is str:
            session = sessions.get(api_key if shard is None else (api_key, shard))
            if session is not None:
                sessions.move_to_end(api_key if shard is None else (api_key, shard))
                return session
        try:
            return self._new_session(api_key, shard)
        finally:
            del api_key, shard  # a traceback recording frame locals must not show them

    def _new_session(self, api_key: str, shard: str | None) -> Cliniko:
        hidden = _Hidden(api_key)
        if self._parent is not None:  # a with_options view: the parent's session, re-optioned
            try:
                base = self._parent.for_key(api_key, shard=shard)
            except ConfigurationError as exc:
                failed = exc
                del api_key, shard
                raise failed.with_traceback(None) from None
            del api_key
            client = Cliniko._from_session(base._session.with_options(self._options))
            self._remember(hidden, shard, client)
            return client
        try:
            config = ClientConfig.build(
                api_key=api_key, user_agent=self._user_agent, base_url=self._base_url, shard=shard
            )
        except ConfigurationError as exc:
            error = exc
            del api_key, shard  # (a key pasted as the shard must not show either)
            raise error.with_traceback(None) from None
        del api_key
        origin = str(config.base_url)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = self._new_pool()
        http, transport = pool
        session = Session(
            config,
            http,
            rate_limit=self._rate_limit,
            options=self._options,
            limiter_backend=self._limiter,
            transport=transport,
            family=self._family,
        )
        client = Cliniko._from_session(session)
        self._remember(hidden, shard, client)
        return client

    def _remember(self, hidden: _Hidden, shard: str | None, client: Cliniko) -> None:
        self._sessions[hidden if shard is None else (hidden, shard)] = client
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def _new_pool(self) -> tuple[httpx.AsyncClient, httpx.AsyncBaseTransport | None]:
        if self._http_client is not None:
            return self._http_client, None
        if self._transport is not None:
            return owned_client(self._options.timeout, SharedTransport(self._transport))
        return owned_client(self._options.timeout)

    @property
    def cached_sessions(self) -> int:
        """How many per-key sessions are cached now."""
        return len(self._sessions)

    @property
    def pools(self) -> dict[str, httpx.AsyncClient]:
        """The connection pools, by base URL."""
        return {origin: http for origin, (http, _) in self._pools.items()}

    async def aclose(self) -> None:
        """End every key's running requests, close the pools and the ``transport`` given.

        Running requests (cached sessions or evicted ones) end at once with
        :class:`ClientClosedError`, as with :meth:`Cliniko.aclose`.
        """
        if self._parent is not None:  # a view: end its own sessions' requests only
            for client in self._sessions.values():
                client._session.close()
            self._sessions.clear()
            return
        self._family.close()
        self._sessions.clear()
        await self._family.drained()
        pools, self._pools = self._pools, {}
        if self._http_client is None:
            for http, _ in pools.values():
                await http.aclose()
        if self._transport is not None:
            await self._transport.aclose()

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
        if not hasattr(self, "_pools"):  # a constructor that raised
            return "<ClinikoAccounts (not constructed)>"
        return f"<ClinikoAccounts sessions={len(self._sessions)} pools={list(self._pools)}>"
