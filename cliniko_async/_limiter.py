"""The per-key rate limiter: a window guard composed with aiolimiter's leaky bucket.

Cliniko counts requests per user in a window of ``period`` seconds, where they *arrive*. A bare
``AsyncLimiter(200, 60)`` lets ~400 requests into the first minute (it starts empty and leaks
while it fills), and a limiter that frees a slot one period after it *sent* a request can put
``limit + 1`` requests into one server window, because requests can arrive closer together than
they left. So a request holds one of ``limit`` slots from the moment it is admitted until
``period`` seconds after its response (or failure) came back. Two uses of one slot then always
arrive more than ``period`` apart, so no window of ``period`` seconds, rolling or fixed, ever
holds more than ``limit`` requests, and a fresh key can still send ``limit`` at once.

aiolimiter's bucket (capacity ``burst``, leaking ``limit / period`` per second) shapes the
traffic inside that guarantee: with ``burst < limit`` a fresh key ramps up instead of bursting.

A 429 pauses the whole key until the reset that Cliniko gave; every waiter on that key waits.
A 429 also means someone else is spending this key's budget (another process, another app), so
the bucket is marked full at that moment: after the pause, requests are metered back in at the
sustainable rate (``limit / period``, plus what leaked during the pause) instead of rushing the
server all at once at the reset.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

import attrs
from aiolimiter import AsyncLimiter

from .errors import ConfigurationError

__all__ = [
    "KeyLimiter",
    "LimiterBackend",
    "LocalLimiter",
    "LocalLimiterBackend",
    "Permit",
    "RateLimit",
    "local_limiter_for",
]


@attrs.frozen
class RateLimit:
    """``requests`` per ``period`` seconds for one API key (Cliniko: 200 per 60 s).

    ``burst`` caps how many may go at once from idle (default: all of ``requests``).
    """

    requests: int = 200
    period: float = 60.0
    burst: int | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.requests, int) or self.requests < 1:
            raise ConfigurationError(
                f"RateLimit requests must be a positive integer, got {self.requests!r}"
            )
        if not self.period > 0:
            raise ConfigurationError(f"RateLimit period must be > 0 seconds, got {self.period!r}")
        if self.burst is not None and not 1 <= self.burst <= self.requests:
            raise ConfigurationError(
                f"RateLimit burst must be between 1 and requests ({self.requests}), "
                f"got {self.burst!r}"
            )


class Permit(Protocol):
    """The right to send one request. Call ``release()`` exactly once when it came back."""

    def release(self) -> None: ...


class KeyLimiter(Protocol):
    """What the request pipeline needs from a limiter (in-memory or shared through Redis)."""

    rate_limit: RateLimit

    async def acquire(self) -> Permit:
        """Wait until a request may be sent on this key."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every request on this key for ``seconds`` (after a 429)."""
        ...

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        ...


class LimiterBackend(Protocol):
    """Hands out the limiter of a key, identified by its fingerprint (a hash, never the key)."""

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        """The limiter every client of this key shares."""
        ...


class _SlotPermit:
    __slots__ = ("_limiter", "_released")

    def __init__(self, limiter: LocalLimiter) -> None:
        self._limiter = limiter
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._free_later()


class LocalLimiter:
    """In-process limiter for one key on one event loop. Get it with :func:`local_limiter_for`."""

    def __init__(self, rate_limit: RateLimit, loop: asyncio.AbstractEventLoop) -> None:
        self.rate_limit = rate_limit
        self._loop = loop
        self._slots = asyncio.Semaphore(rate_limit.requests)
        burst = rate_limit.burst or rate_limit.requests
        # Leaks requests/period per second; holds at most `burst`.
        self._bucket = AsyncLimiter(burst, burst * rate_limit.period / rate_limit.requests)
        self._resume_at = 0.0
        self._held = 0

    @property
    def in_use(self) -> int:
        """Slots admitted and not yet free (in flight, or within a period of their response)."""
        return self._held

    async def acquire(self) -> Permit:
        while True:
            await self._wait_pause()
            await self._slots.acquire()
            if self._resume_at > self._loop.time():
                self._slots.release()  # a 429 paused the key while we queued: never used
                continue
            try:
                await self._bucket.acquire()
            except BaseException:
                self._slots.release()
                raise
            self._held += 1
            return _SlotPermit(self)

    async def _wait_pause(self) -> None:
        # The pause can grow while we sleep (another 429), so re-check after each sleep.
        while (delay := self._resume_at - self._loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def _free_later(self) -> None:
        self._loop.call_at(self._loop.time() + self.rate_limit.period, self._free)

    def _free(self) -> None:
        self._held -= 1
        self._slots.release()

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, self._loop.time() + seconds)
        _fill(self._bucket, self._loop.time())

    def paused_for(self) -> float:
        return max(0.0, self._resume_at - self._loop.time())


def _fill(bucket: AsyncLimiter, now: float) -> None:
    """Mark the leaky bucket full as of ``now`` (aiolimiter has no public way to do this)."""
    bucket._level = float(bucket.max_rate)
    bucket._last_check = now


# One limiter per (event loop, key): an aiolimiter instance belongs to one loop. Values are weak:
# a limiter stays alive while a session or a pending slot release refers to it, and is dropped
# (with nothing left to remember: all its slots are free) once idle, so unused keys cost nothing.
_REGISTRY: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakValueDictionary[str, LocalLimiter]
] = weakref.WeakKeyDictionary()


def local_limiter_for(fingerprint: str, rate_limit: RateLimit) -> LocalLimiter:
    """The running loop's limiter for the key with this fingerprint, created on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _REGISTRY.get(loop)
    if per_loop is None:
        per_loop = _REGISTRY[loop] = weakref.WeakValueDictionary()
    limiter = per_loop.get(fingerprint)
    if limiter is None:
        limiter = per_loop[fingerprint] = LocalLimiter(rate_limit, loop)
    elif limiter.rate_limit != rate_limit:
        raise ConfigurationError(
            f"this API key already has a limiter with {limiter.rate_limit} in this process; "
            f"a second client for the same key asked for {rate_limit}. One key has one budget: "
            "give every client of a key the same rate_limit"
        )
    return limiter


class LocalLimiterBackend:
    """The default backend: one in-memory limiter per key, per event loop, in this process."""

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        return local_limiter_for(fingerprint, rate_limit)

    def __repr__(self) -> str:
        return "LocalLimiterBackend()"
