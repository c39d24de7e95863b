"""The per-key rate limiter: one budget per key per process, for every loop and thread.

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

One :class:`LocalLimiter` per key serves the whole process: every ``Cliniko``, ``SyncCliniko``
and ``ClinikoAccounts``, every thread and every event loop (including loops that come and go,
``asyncio.run`` per job). Its state sits behind a ``threading.Lock``; nothing in it belongs to
an event loop. Waiters queue first in, first out; only the head of the queue keeps a timer (on
its own loop), for the moment something can change (a slot frees, the bucket leaks, a pause
ends), so a request costs O(1) and nothing polls. Freed slots are a deque of the clock times at
which they become free (non-decreasing), not a timer per request.

A 429 pauses the whole key until the reset that Cliniko gave; every waiter waits, wherever it
waits. Waiters that would wait longer than they are willing to (``max_wait``) fail at once with
:class:`RateLimitPaused`. A 429 also means someone else is spending this key's budget (another
process, another app), so the bucket is marked full at that moment: after the pause, requests
are metered back in at the sustainable rate (``limit / period``, plus what leaked during the
pause) instead of rushing the server at the reset.

A 429 without a usable reset (none, in the past, skewed, garbage) gives only a guess: a short
jittered "fallback" pause. After it the key is *half-open*, like a circuit breaker: one request
(the probe) goes out, every other waits until it is back. A probe that comes back without a 429
opens the key, metered at the sustainable rate from that moment (the bucket is marked full); a
probe that gets a 429 pauses the key again for twice as long (at most 8 s, jittered). So
however many requests queue behind a fallback pause, and however slowly the server answers, only
one arrives while the server is still refusing. A probe that never comes back (its permit lost)
lets another go after a period.

After ``fork()`` the child keeps what its parent spent (conservatively: the parent's requests in
flight count as just answered) with a fresh lock and no waiters; from then on the processes'
budgets are separate (share a key's budget across processes with ``cliniko_async.redis``).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

import attrs
from aiolimiter import AsyncLimiter

from .errors import ConfigurationError

__all__ = [
    "Clock",
    "KeyLimiter",
    "LimiterBackend",
    "LocalLimiter",
    "LocalLimiterBackend",
    "Permit",
    "RateLimit",
    "RateLimitPaused",
    "local_limiter_for",
]

Clock = Callable[[], float]


@attrs.frozen
class RateLimit:
    """``requests`` per ``period`` seconds for one API key (Cliniko: 200 per 60 s).

    ``burst`` caps how many may go at once from idle (default: all of ``requests``).
    """

    requests: int = 200
    period: float = 60.0
    burst: int | None = None

    def __attrs_post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int):
            raise ConfigurationError(
                f"RateLimit requests must be a positive integer, got {self.requests!r}"
            )
        if self.requests < 1:
            raise ConfigurationError(
                f"RateLimit requests must be a positive integer, got {self.requests!r}"
            )
        if (
            isinstance(self.period, bool)
            or not isinstance(self.period, int | float)
            or not 0 < self.period < math.inf
        ):
            raise ConfigurationError(
                f"RateLimit period must be a number of seconds > 0, got {self.period!r}"
            )
        if self.burst is not None and (
            isinstance(self.burst, bool)
            or not isinstance(self.burst, int)
            or not 1 <= self.burst <= self.requests
        ):
            raise ConfigurationError(
                f"RateLimit burst must be an integer between 1 and requests ({self.requests}), "
                f"got {self.burst!r}"
            )


class RateLimitPaused(Exception):
    """The key is paused (a 429) for longer than the caller is willing to wait."""

    def __init__(self, resume_in: float) -> None:
        super().__init__(f"the key is paused for another {resume_in:.1f} s")
        self.resume_in = resume_in


class Permit(Protocol):
    """The right to send one request. Call ``release()`` exactly once when it came back."""

    def release(self) -> None: ...


class KeyLimiter(Protocol):
    """What the request pipeline needs from a limiter (in-memory or shared through Redis)."""

    rate_limit: RateLimit

    async def acquire(self, max_wait: float = math.inf) -> Permit:
        """Wait until a request may be sent on this key.

        Raises :class:`RateLimitPaused` at once (also while waiting) if the key is paused for
        longer than ``max_wait`` seconds.
        """
        ...

    def pause(self, seconds: float, *, probe: bool = False) -> None:
        """Hold every request on this key for ``seconds`` (after a 429).

        ``probe``: the pause's length is a guess (no usable reset header). After it, one request
        (the probe) goes; the others wait until it came back without a 429, then go at the
        sustainable rate. A 429 on the probe (``pause(..., probe=True)`` once the pause has run
        out) doubles the pause, up to 8 s (or a period), jittered. A permit's ``release()`` is
        followed in the same synchronous step by ``pause()`` when its response was a 429: that
        is how the limiter tells a refused probe from one that came back fine.
        """
        ...

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        ...


class LimiterBackend(Protocol):
    """Hands out the limiter of a key, identified by its fingerprint (a hash, never the key)."""

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        """The limiter every client of this key shares."""
        ...


# --- aiolimiter, driven from any thread and loop -----------------------------------------------


class _ClockLoop:
    """What an ``AsyncLimiter`` asks of its event loop when it never has to wait: the time.

    aiolimiter binds a limiter to the first running loop that touches it and reads that loop's
    clock. Our budget is shared by every loop of the process (and by loops that have closed), so
    the bucket is bound to this stand-in instead, which reads the budget's clock. There is no
    public way to give aiolimiter a clock: this writes its private ``_event_loop`` slot, and
    ``tests/test_limiter.py::test_aiolimiter_internals_we_rely_on`` fails if aiolimiter changes
    (the dependency is pinned below 2).
    """

    __slots__ = ("time",)

    def __init__(self, clock: Clock) -> None:
        self.time = clock

    def is_closed(self) -> bool:
        return False


def _bind_clock(bucket: AsyncLimiter, clock: Clock) -> None:
    bucket._event_loop = _ClockLoop(clock)  # type: ignore[assignment]


def _take(bucket: AsyncLimiter, amount: float) -> None:
    """``await bucket.acquire(amount)`` when the bucket has room: completes without suspending."""
    coro = bucket.acquire(amount)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("aiolimiter suspended although it reported capacity")  # pragma: no cover


def _take_one(bucket: AsyncLimiter) -> None:
    """``_take(bucket, 1)`` right after ``has_capacity(1)`` said yes (it leaked): the level
    goes up by one, without a coroutine per request. Any other aiolimiter: ``_take``."""
    try:
        bucket._level += 1
    except AttributeError:  # pragma: no cover - an aiolimiter without the slot
        _take(bucket, 1)


def _free_capacity(bucket: AsyncLimiter, below: float) -> float:
    """How much room the bucket has, found with its public ``has_capacity`` (to 1/4096)."""
    lo, hi = 0.0, below
    for _ in range(12):
        mid = (lo + hi) / 2
        if bucket.has_capacity(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _fill(bucket: AsyncLimiter) -> None:
    """Take what room the bucket has, so it is full as of now (public API only).

    Bounded: on a real clock the bucket leaks between two calls, and at a high rate (over about
    1,000 a second) it always has some room again, so "no room at all" may never come. After
    the bound, what is left is what leaked meanwhile (microseconds' worth).
    """
    amount = float(bucket.max_rate)
    for _ in range(96):
        if amount <= 1e-3:
            return
        if bucket.has_capacity(amount):
            _take(bucket, amount)
        else:
            amount /= 2


# --- the budget -------------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("armed", "cancelled", "error", "future", "granted", "loop", "max_wait", "probe")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_wait: float) -> None:
        self.loop = loop
        self.max_wait = max_wait
        self.future: asyncio.Future[None] = loop.create_future()
        self.granted = False
        self.probe = False  # granted as the probe of a half-open key
        self.cancelled = False
        self.error: RateLimitPaused | None = None
        self.armed = math.inf  # clock time of the wake-up this waiter's loop has scheduled


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _SlotPermit:
    __slots__ = ("_limiter", "_probe", "_released")

    def __init__(self, limiter: LocalLimiter, probe: bool = False) -> None:
        self._limiter = limiter
        self._probe = probe
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self._probe)


_LIMITERS: weakref.WeakSet[LocalLimiter] = weakref.WeakSet()
#: A refused probe doubles a fallback pause up to this (or a period if shorter), jittered: the
#: 429 said nothing about when, so the key keeps probing now and then instead of going quiet.
MAX_FALLBACK_PAUSE = 8.0
_MIN_DELAY = 1e-6


class LocalLimiter:
    """One key's budget in this process, shared by every thread and event loop.

    Get the process's limiter of a key with :func:`local_limiter_for`. ``clock`` (default
    ``time.monotonic``) is injectable for tests in virtual time.
    """

    def __init__(self, rate_limit: RateLimit, *, clock: Clock | None = None) -> None:
        self.rate_limit = rate_limit
        self._clock: Clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._limit = rate_limit.requests
        self._period = float(rate_limit.period)
        self._in_flight = 0
        self._frees: deque[float] = deque()  # clock times at which released slots are free
        self._resume_at = -math.inf
        # Half-open (after a fallback pause): one probe at a time until one comes back fine.
        self._half_open = False
        self._probe_until = -math.inf  # a probe is out until then (it counts as lost after)
        self._fallback = 0.0  # length of the current fallback pause (0: none in a row)
        self._pauses = 0  # counts pauses: a probe's "came back fine" is void after a new one
        self._waiters: deque[_Waiter] = deque()
        burst = rate_limit.burst or rate_limit.requests
        # Leaks requests/period per second; holds at most `burst`.
        self._bucket = AsyncLimiter(burst, burst * self._period / rate_limit.requests)
        self._rate = rate_limit.requests / self._period
        _bind_clock(self._bucket, self._clock)
        _LIMITERS.add(self)

    # -- queries

    @property
    def in_use(self) -> int:
        """Slots admitted and not yet free (in flight, or within a period of their response)."""
        with self._lock:
            self._purge(self._clock())
            return self._in_flight + len(self._frees)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        with self._lock:
            return sum(not w.cancelled and not w.granted for w in self._waiters)

    def paused_for(self) -> float:
        return max(0.0, self._resume_at - self._clock())

    def idle(self) -> bool:
        """Nothing in flight, waiting or paused, and every slot free: forgetting it is safe."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            return (
                not self._in_flight
                and not self._frees
                and not self._waiters
                and self._resume_at <= now
            )

    # -- acquiring

    async def acquire(self, max_wait: float = math.inf) -> _SlotPermit:
        with self._lock:
            now = self._clock()
            paused = self._resume_at - now
            if paused > max_wait:
                raise RateLimitPaused(paused)
            if not self._waiters and self._admissible(now):
                self._grant_slot()
                return _SlotPermit(self, self._half_open)
            loop = asyncio.get_running_loop()
            waiter = _Waiter(loop, max_wait)
            self._waiters.append(waiter)
            self._service(now)
        try:
            while True:
                await waiter.future
                with self._lock:
                    if not waiter.granted and waiter.error is None:
                        # Woken by our own timer as the head of the queue: let things move.
                        waiter.future = loop.create_future()
                        waiter.armed = math.inf
                        self._service(self._clock())
                    if waiter.granted:
                        return _SlotPermit(self, waiter.probe)
                    if waiter.error is not None:
                        raise waiter.error
        except BaseException:
            with self._lock:
                if waiter.granted:
                    self._in_flight -= 1  # admitted but never sent: the slot is free again
                    if waiter.probe:
                        self._probe_until = -math.inf  # another request probes instead
                waiter.cancelled = True
                self._service(self._clock())
            raise

    def _purge(self, now: float) -> None:
        frees = self._frees
        while frees and frees[0] <= now:
            frees.popleft()

    def _admissible(self, now: float) -> bool:
        if now < self._resume_at:
            return False
        if self._half_open and now < self._probe_until:
            return False  # the probe is out: everyone else waits for its answer
        self._purge(now)
        if self._in_flight + len(self._frees) >= self._limit:
            return False
        return self._bucket.has_capacity(1)

    def _grant_slot(self) -> None:  # only after _admissible() said yes
        _take_one(self._bucket)
        self._in_flight += 1
        if self._half_open:
            # The probe; should its permit be lost, another goes after a period.
            self._probe_until = self._clock() + self._period

    def _next_change(self, now: float) -> float:
        """When the head of the queue may next be admitted (inf: when a slot is released)."""
        if now < self._resume_at:
            return self._resume_at
        if self._half_open and now < self._probe_until:
            return self._probe_until
        if self._in_flight + len(self._frees) >= self._limit:
            return self._frees[0] if self._frees else math.inf
        return now + (1 - _free_capacity(self._bucket, 1)) / self._rate

    def _service(self, now: float) -> None:
        """Admit waiters in order while they fit; make sure the head has a wake-up. Locked."""
        waiters = self._waiters
        while waiters:
            head = waiters[0]
            if head.cancelled or head.granted or head.error is not None:
                waiters.popleft()
                continue
            if not self._admissible(now):
                break
            waiters.popleft()
            self._grant_slot()
            head.granted = True
            head.probe = self._half_open
            if not self._wake(head):
                self._in_flight -= 1
                if head.probe:
                    self._probe_until = -math.inf
        if waiters:
            head = waiters[0]
            when = self._next_change(now)
            if when < head.armed:
                head.armed = when
                self._arm(head, when - now)

    def _wake(self, waiter: _Waiter) -> bool:
        """Wake a waiter on its own loop; False when that loop is gone."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if waiter.loop is running:
            _set(waiter.future)
            return True
        try:
            waiter.loop.call_soon_threadsafe(_set, waiter.future)
        except RuntimeError:  # its loop is closed: nobody is waiting there any more
            waiter.cancelled = True
            return False
        return True

    def _arm(self, waiter: _Waiter, delay: float) -> None:
        # At least a microsecond: a clock that rounds (virtual time) must still move forward.
        delay = max(delay, _MIN_DELAY)
        future = waiter.future
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if waiter.loop is running:
            waiter.loop.call_later(delay, _set, future)
            return
        try:
            waiter.loop.call_soon_threadsafe(waiter.loop.call_later, delay, _set, future)
        except RuntimeError:
            waiter.cancelled = True

    # -- releasing and pausing

    def _release(self, probe: bool = False) -> None:
        with self._lock:
            self._in_flight -= 1
            self._frees.append(self._clock() + self._period)
            if probe and self._half_open:
                self._probe_back(self._pauses)
            elif self._waiters:
                self._service(self._clock())

    def _probe_back(self, pauses: int) -> None:
        """The probe is back. Locked. Its caller reports a 429 (``pause()``) in the same step,
        so the verdict waits for the loop's next turn; without a loop (released from plain
        code) it is given now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._probe_fine(pauses)
            return
        loop.call_soon(self._probe_verdict, pauses)

    def _probe_verdict(self, pauses: int) -> None:
        with self._lock:
            self._probe_fine(pauses)

    def _probe_fine(self, pauses: int) -> None:
        """Locked. No 429 since the probe went (else ``pause()`` counted one): open the key,
        metered at the sustainable rate from now (the bucket is marked full)."""
        if pauses != self._pauses or not self._half_open or self._clock() < self._resume_at:
            return  # refused, or the key paused again meanwhile: the next probe decides
        self._half_open = False
        self._probe_until = -math.inf
        self._fallback = 0.0
        _fill(self._bucket)
        if self._waiters:
            self._service(self._clock())

    def occupy(self, until: float) -> None:
        """Count one slot as used until clock time ``until`` (a request spent elsewhere)."""
        with self._lock:
            bisect.insort(self._frees, until)

    def pause(self, seconds: float, *, probe: bool = False) -> None:
        with self._lock:
            now = self._clock()
            self._pauses += 1
            if probe:
                if now < self._resume_at:
                    # The rest of one wave (sent before the key paused): nothing new.
                    self._fallback = max(self._fallback, seconds)
                else:
                    if self._half_open:
                        # After the guessed pause ran out, the probe (or a late one) got a
                        # 429 again: pause twice as long, at most MAX_FALLBACK_PAUSE (jittered).
                        cap = min(self._period, MAX_FALLBACK_PAUSE) * random.uniform(0.5, 1)
                        longer = min(2 * self._fallback, cap)
                        seconds = max(seconds, longer)
                    self._fallback = seconds
                self._half_open = True
                self._probe_until = -math.inf
            else:
                # Cliniko said when: no guessing, no probing.
                self._half_open = False
                self._probe_until = -math.inf
                self._fallback = 0.0
            self._resume_at = max(self._resume_at, now + seconds)
            _fill(self._bucket)
            remaining = self._resume_at - now
            for waiter in self._waiters:
                if not (waiter.granted or waiter.cancelled) and waiter.max_wait < remaining:
                    waiter.error = RateLimitPaused(remaining)
                    self._wake(waiter)
            self._service(now)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock, no waiters (their loops are the parent's)."""
        self._lock = threading.Lock()
        self._waiters = deque()
        try:
            now = self._clock()
        except RuntimeError:  # a test clock that reads a loop: none runs in the child yet
            now = time.monotonic()
        self._frees.extend([now + self._period] * self._in_flight)
        self._in_flight = 0
        self._probe_until = -math.inf  # a half-open key's probe was the parent's: probe anew

    def __repr__(self) -> str:
        return f"<LocalLimiter {self.rate_limit}>"


# --- the process's registry --------------------------------------------------------------------

#: The clock of the limiters the registry creates (tests in virtual time replace it).
default_clock: Clock = time.monotonic


class _Registry:
    """Fingerprint -> limiter for this process. Idle limiters are forgotten, a few at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.limiters: dict[str, LocalLimiter] = {}
        self._sweep_at = 64

    def get(self, fingerprint: str, rate_limit: RateLimit, clock: Clock | None) -> LocalLimiter:
        limiter = self.limiters.get(fingerprint)  # a dict read is atomic: no lock on the hot path
        if limiter is None:
            with self.lock:
                limiter = self.limiters.get(fingerprint)
                if limiter is None:
                    if len(self.limiters) >= self._sweep_at:
                        self._sweep()
                    limiter = LocalLimiter(rate_limit, clock=clock or default_clock)
                    self.limiters[fingerprint] = limiter
        if limiter.rate_limit != rate_limit:
            raise ConfigurationError(
                f"this API key already has a limiter with {limiter.rate_limit} in this process; "
                f"a second client for the same key asked for {rate_limit}. One key has one "
                "budget: give every client of a key the same rate_limit"
            )
        return limiter

    def _sweep(self) -> None:
        for fingerprint, limiter in list(self.limiters.items()):
            if limiter.idle():
                del self.limiters[fingerprint]
        self._sweep_at = max(64, 2 * len(self.limiters))

    def clear(self) -> None:
        with self.lock:
            self.limiters.clear()
            self._sweep_at = 64

    def _after_fork(self) -> None:
        self.lock = threading.Lock()


_REGISTRY = _Registry()


def local_limiter_for(fingerprint: str, rate_limit: RateLimit) -> LocalLimiter:
    """This process's limiter for the key with this fingerprint, created on first use."""
    return _REGISTRY.get(fingerprint, rate_limit, None)


def registered_keys() -> int:
    """How many keys the process's registry remembers now (idle ones are dropped over time)."""
    return len(_REGISTRY.limiters)


def forget_all_limiters() -> None:
    """Forget every key's budget in this process (for test isolation; never needed otherwise)."""
    _REGISTRY.clear()


def _after_fork_in_child() -> None:
    _REGISTRY._after_fork()
    for limiter in list(_LIMITERS):
        limiter._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LocalLimiterBackend:
    """The default backend: one in-memory limiter per key for the whole process.

    ``clock`` gives this backend limiters of its own on that clock (e.g. a virtual clock in
    tests); by default every backend shares the process's limiters.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock
        self._own: _Registry | None = _Registry() if clock is not None else None

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> KeyLimiter:
        if self._own is not None:
            return self._own.get(fingerprint, rate_limit, self._clock)
        return _REGISTRY.get(fingerprint, rate_limit, None)

    def __repr__(self) -> str:
        return "LocalLimiterBackend()"
