"""Many accounts: per-key sessions sharing one connection pool per Cliniko host."""

from __future__ import annotations

from collections import OrderedDict
from types import TracebackType
from typing import Self

import httpx

from ._client import DEFAULT_LIMITS, Cliniko
from ._config import ClientConfig
from ._limiter import LimiterBackend, RateLimit
from .errors import ConfigurationError

__all__ = ["ClinikoAccounts"]


class ClinikoAccounts:
    """Hands out a :class:`Cliniko` per API key for integrators serving many clinics.

    Sessions share one ``httpx.AsyncClient`` (connection pool) per base URL (shard host) and keep
    separate per-key rate limiters. At most ``max_sessions`` sessions are cached (least recently
    used first out); a key's limiter outlives its session while it still has slots in use, so
    evicting a session never resets a key's budget early.

    ::

        async with ClinikoAccounts(user_agent="Acme Sync (dev@acme.example)") as accounts:
            patient = await accounts.for_key(clinic.api_key).patients.get(1)
    """

    def __init__(
        self,
        *,
        user_agent: str,
        base_url: str | None = None,
        rate_limit: RateLimit | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 2,
        limiter: LimiterBackend | None = None,
        max_sessions: int = 1024,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be >= 1, got {max_sessions!r}")
        self._user_agent = user_agent
        self._base_url = base_url
        self._rate_limit = rate_limit
        self._timeout = timeout
        self._max_retries = max_retries
        self._limiter = limiter
        self._transport = transport
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Cliniko] = OrderedDict()
        self._pools: dict[str, httpx.AsyncClient] = {}

    def for_key(self, api_key: str, *, shard: str | None = None) -> Cliniko:
        """The session for ``api_key`` (created on first use, then reused)."""
        config = ClientConfig.build(
            api_key=api_key, user_agent=self._user_agent, base_url=self._base_url, shard=shard
        )
        fingerprint = config.api_key.fingerprint
        session = self._sessions.get(fingerprint)
        if session is not None:
            self._sessions.move_to_end(fingerprint)
            return session
        origin = str(config.base_url)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = httpx.AsyncClient(
                limits=DEFAULT_LIMITS, timeout=self._timeout, transport=self._transport
            )
        session = Cliniko(
            api_key=api_key,
            user_agent=self._user_agent,
            base_url=origin,
            rate_limit=self._rate_limit,
            timeout=self._timeout,
            max_retries=self._max_retries,
            http_client=pool,
            limiter=self._limiter,
        )
        self._sessions[fingerprint] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    @property
    def cached_sessions(self) -> int:
        """How many per-key sessions are cached now."""
        return len(self._sessions)

    @property
    def pools(self) -> dict[str, httpx.AsyncClient]:
        """The shared connection pools, by base URL."""
        return dict(self._pools)

    async def aclose(self) -> None:
        """Close every pool."""
        self._sessions.clear()
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
