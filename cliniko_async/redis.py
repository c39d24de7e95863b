"""A rate limiter shared by every process and machine that uses a key, kept in Redis.

``Cliniko(..., limiter=RedisLimiterBackend("redis://host:6379/0"))`` (extra ``[redis]``).

The rule is the in-memory limiter's: a request holds one of ``limit`` slots from admission
until ``period`` after its response came back. Slots are leases in a sorted set per key,
scored by their expiry on the Redis server's clock (``TIME``), so the hosts' clocks do not
matter. An admitted lease first expires ``period + max_in_flight`` later (so a process killed
mid-request frees its slots by itself) and is moved to ``response + period`` on release. The
leaky bucket is kept there too, as the time it next empties (GCRA): it leaks ``limit / period``
per second and holds ``burst`` (default ``limit``). A 429 seen by any process pauses the key for
all of them and marks the bucket full, so after the pause every process together is metered
back in at the sustainable rate instead of rushing the reset. Keys are named by a hash of the
API key, never the key, and expire, so nothing accumulates.

When Redis cannot be reached, ``on_unavailable="fail"`` (the default) raises
:class:`LimiterUnavailableError`; ``"local"`` falls back to an in-process limiter at
``local_fraction`` of the limit (so N processes together stay under it when
``local_fraction <= 1/N``) and logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
import weakref
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._limiter import KeyLimiter, LocalLimiter, Permit, RateLimit
from .errors import ClinikoError, ConfigurationError

__all__ = ["LimiterUnavailableError", "RedisLimiter", "RedisLimiterBackend"]

log = logging.getLogger("cliniko_async.redis")
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "
ACQUIRE = (
    _NOW
    + """
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return {0, pause - now, 1} end
local limit, hold = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval, burst = tonumber(ARGV[6]), tonumber(ARGV[7])
-- The bucket, kept as the time it will be empty: a request fits while it holds < burst.
local empty_at = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0'))
local early = empty_at - now - (burst - 1) * interval
if early > 0 then return {0, math.ceil(early), 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
  if redis.call('PTTL', KEYS[1]) < hold + 1000 then
    redis.call('PEXPIRE', KEYS[1], hold + 1000)
  end
  empty_at = empty_at + interval
  local ttl = math.ceil(empty_at - now) + 1000
  redis.call('SET', KEYS[3], string.format('%.3f', empty_at), 'PX', ttl)
  return {1, 0, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(first[2]) - now
-- The earliest lease is still in flight: its real expiry is not known yet, so poll.
if wait > tonumber(ARGV[4]) then wait = tonumber(ARGV[5]) end
return {0, math.max(1, wait), 0}
"""
)
RELEASE = (
    _NOW
    + """
local period = tonumber(ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', now + period, ARGV[2])
  if redis.call('PTTL', KEYS[1]) < period + 1000 then
    redis.call('PEXPIRE', KEYS[1], period + 1000)
  end
end
return 1
"""
)
PAUSE = (
    _NOW
    + """
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then redis.call('SET', KEYS[1], until_, 'PX', tonumber(ARGV[1]) + 1000) end
-- Someone else is spending this key: mark the bucket full as of now.
local full = now + tonumber(ARGV[2]) * tonumber(ARGV[3])
if full > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], string.format('%.3f', full), 'PX', math.ceil(full - now) + 1000)
end
return until_ - now
"""
)


class LimiterUnavailableError(ClinikoError):
    """The shared limiter's Redis could not be reached (``on_unavailable="fail"``)."""


class _Lease:
    __slots__ = ("_id", "_limiter", "_released")

    def __init__(self, limiter: RedisLimiter, lease_id: str) -> None:
        self._limiter = limiter
        self._id = lease_id
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._spawn(self._limiter._release(self._id))


class RedisLimiter:
    """One key's limiter, shared through Redis. Get it from :class:`RedisLimiterBackend`."""

    def __init__(self, backend: RedisLimiterBackend, fingerprint: str, rate_limit: RateLimit):
        self.rate_limit = rate_limit
        self._backend = backend
        self._slots_key = f"{backend.prefix}:{fingerprint}:slots"
        self._pause_key = f"{backend.prefix}:{fingerprint}:pause"
        self._bucket_key = f"{backend.prefix}:{fingerprint}:bucket"
        self._period_ms = int(rate_limit.period * 1000)
        self._hold_ms = self._period_ms + int(backend.max_in_flight * 1000)
        self._poll_ms = max(20, self._period_ms // 50)
        self._interval_ms = self._period_ms / rate_limit.requests  # the bucket leaks one each
        self._burst = rate_limit.burst or rate_limit.requests
        self._resume_at = 0.0  # loop time: the last pause this process saw (for paused_for)
        self._fallback: LocalLimiter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _local(self) -> LocalLimiter:
        if self._fallback is None:
            share = max(1, int(self.rate_limit.requests * self._backend.local_fraction))
            self._fallback = LocalLimiter(
                RateLimit(share, self.rate_limit.period), asyncio.get_running_loop()
            )
        return self._fallback

    def _unavailable(self, exc: BaseException) -> None:
        if self._backend.on_unavailable == "fail":
            raise LimiterUnavailableError(
                f"the shared rate limiter's Redis is unreachable ({type(exc).__name__}); "
                "check the Redis server, or pass on_unavailable='local' to fall back to a "
                "per-process limiter at a safe fraction of the limit"
            ) from None
        log.warning(
            "Redis unreachable (%s): using a local limiter at %.0f%% of the limit",
            type(exc).__name__,
            self._backend.local_fraction * 100,
        )

    async def acquire(self) -> Permit:
        scripts = self._backend._scripts()
        while True:
            lease_id = uuid.uuid4().hex
            try:
                admitted, wait_ms, paused = await scripts["acquire"](
                    keys=[self._slots_key, self._pause_key, self._bucket_key],
                    args=[
                        self.rate_limit.requests,
                        self._hold_ms,
                        lease_id,
                        self._period_ms,
                        self._poll_ms,
                        self._interval_ms,
                        self._burst,
                    ],
                )
            except _UNAVAILABLE as exc:
                self._unavailable(exc)
                return await self._local().acquire()
            if admitted:
                return _Lease(self, lease_id)
            if paused:  # another process's 429: remember it for paused_for()
                self._note_pause(int(wait_ms) / 1000)
            # Sleep until the earliest lease frees, plus a little jitter against lockstep.
            await asyncio.sleep(int(wait_ms) / 1000 + random.uniform(0, 0.01))

    async def _release(self, lease_id: str) -> None:
        try:
            await self._backend._scripts()["release"](
                keys=[self._slots_key], args=[self._period_ms, lease_id]
            )
        except _UNAVAILABLE:
            log.warning("Redis unreachable: lease expires by itself after period + max_in_flight")

    def pause(self, seconds: float) -> None:
        self._note_pause(seconds)
        self._spawn(self._pause(seconds))
        if self._fallback is not None:
            self._fallback.pause(seconds)

    async def _pause(self, seconds: float) -> None:
        try:
            await self._backend._scripts()["pause"](
                keys=[self._pause_key, self._bucket_key],
                args=[max(1, int(seconds * 1000)), self._burst, self._interval_ms],
            )
        except _UNAVAILABLE:
            self._local().pause(seconds)

    def _note_pause(self, seconds: float) -> None:
        now = asyncio.get_running_loop().time()
        self._resume_at = max(self._resume_at, now + seconds)

    def paused_for(self) -> float:
        """Seconds left in the pause this process last saw (its own 429s and other processes')."""
        return max(0.0, self._resume_at - asyncio.get_running_loop().time())


class RedisLimiterBackend:
    """Keeps every key's budget in Redis, shared by all processes that use this backend."""

    def __init__(
        self,
        redis: str | aioredis.Redis,
        *,
        prefix: str = "cliniko-async",
        on_unavailable: Literal["fail", "local"] = "fail",
        local_fraction: float = 0.25,
        max_in_flight: float = 60.0,
    ) -> None:
        if on_unavailable not in ("fail", "local"):
            raise ConfigurationError("on_unavailable must be 'fail' or 'local'")
        if not 0 < local_fraction <= 1:
            raise ConfigurationError("local_fraction must be in (0, 1]")
        self._client = (
            aioredis.Redis.from_url(redis, socket_timeout=5, socket_connect_timeout=2)
            if isinstance(redis, str)
            else redis
        )
        self.prefix = prefix
        self.on_unavailable = on_unavailable
        self.local_fraction = local_fraction
        self.max_in_flight = max_in_flight
        # Weak: a key's limiter lives as long as a session uses it (its state is in Redis).
        self._limiters: weakref.WeakValueDictionary[tuple[str, RateLimit], RedisLimiter] = (
            weakref.WeakValueDictionary()
        )
        self._registered: dict[str, Any] | None = None

    def _scripts(self) -> dict[str, Any]:
        if self._registered is None:
            self._registered = {
                "acquire": self._client.register_script(ACQUIRE),
                "release": self._client.register_script(RELEASE),
                "pause": self._client.register_script(PAUSE),
            }
        return self._registered

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        key = (fingerprint, rate_limit)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = RedisLimiter(self, fingerprint, rate_limit)
        return limiter

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisLimiterBackend(prefix={self.prefix!r})"
