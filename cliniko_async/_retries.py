"""Retry timing as small functions: backoff with jitter, and how long a 429 pauses the key."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from typing import Final

import attrs
import httpx

__all__ = ["MAX_KEY_PAUSE", "RateLimitDelay", "backoff", "rate_limit_delay"]

#: The longest a 429 pauses a key: a reset further ahead is nonsense (Cliniko's windows last a
#: minute; a reset in milliseconds, a year 3000), treated as no usable reset (a short fallback
#: pause, then one probe), like every other header that makes no sense.
MAX_KEY_PAUSE: Final = 3600.0
#: Slack on a reset read against the local clock (no usable ``Date``): one period plus this.
LOCAL_CLOCK_SLACK: Final = 5.0
_PLAUSIBLE_EPOCH: Final = (1e9, 1e11)  # unix seconds between 2001 and 5138


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: ``base * 2**attempt``, capped, scaled by U(0.5, 1)."""
    return float(min(cap, base * 2 ** min(attempt, 32))) * random.uniform(0.5, 1)


@attrs.frozen
class RateLimitDelay:
    """How long a 429 pauses the key; ``reset_at`` is when (UTC), ``trusted`` whether the
    headers said so (``False``: a short jittered fallback pause)."""

    seconds: float
    reset_at: dt.datetime
    trusted: bool


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return float(parsed.timestamp())
    except (OverflowError, ValueError, OSError):
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _until(
    target: float, server_now: float | None, local_now: float, period: float
) -> float | None:
    """Seconds until the absolute time ``target``, or None when the headers make no sense.

    Against the response's ``Date`` (immune to local clock skew) when that gives at most a
    period (plus slack); else against the local clock when that does (the ``Date`` is skewed);
    else a longer wait that ``Date`` gives, up to an hour; a target in the past on both clocks,
    more than an hour ahead, or far ahead of the local clock without a ``Date``: None.
    """
    bound = period + LOCAL_CLOCK_SLACK
    by_server = target - server_now if server_now is not None else None
    if by_server is not None and 0 < by_server <= bound:
        return by_server
    by_local = target - local_now
    if 0 < by_local <= bound:
        return by_local
    if by_server is not None and bound < by_server <= MAX_KEY_PAUSE:
        return by_server
    return None


def rate_limit_delay(
    headers: httpx.Headers,
    *,
    period: float,
    attempt: int,
    fallback_cap: float,
) -> RateLimitDelay:
    """How long the key pauses after a 429 with these headers.

    ``X-RateLimit-Reset`` (unix seconds) is turned into a delay with the response's ``Date``
    (so the local clock's skew does not matter); without a usable ``Date`` the local clock is
    used, bounded by the period. ``Retry-After`` (seconds, or an HTTP date) is the second
    source. A reset in the past or more than :data:`MAX_KEY_PAUSE` ahead, a skewed ``Date`` or
    no usable header: a short, bounded, jittered pause for the whole key: backoff on
    ``attempt``, at most ``fallback_cap`` and never more than a period. The key's limiter owns
    what follows (``pause(probe=True)``): one probe after the pause, and a pause twice as long
    each time the probe gets a 429 too.
    """
    local_now = time.time()
    server_now = _parse_http_date(headers.get_list("date")[-1] if "date" in headers else None)
    # Each header may come more than once (a proxy adding its own): the latest usable reset
    # holds (the one that keeps every sender's pause).
    found = _from_resets(headers, server_now, local_now, period) or _from_retry_after(
        headers, server_now, local_now, period
    )
    wait, at = max(found, key=lambda pair: pair[0]) if found else (None, None)
    if wait is None:
        wait = backoff(attempt, 0.5, min(fallback_cap, period))
        return RateLimitDelay(wait, _utc(local_now + wait), trusted=False)
    return RateLimitDelay(wait, _utc(at if at is not None else local_now + wait), trusted=True)


def _from_resets(
    headers: httpx.Headers, server_now: float | None, local_now: float, period: float
) -> list[tuple[float, float | None]]:
    """The usable ``X-RateLimit-Reset`` values (unix seconds): (wait, when on Cliniko's clock)."""
    found: list[tuple[float, float | None]] = []
    for value in headers.get_list("x-ratelimit-reset", split_commas=True):
        reset = _number(value)
        if (
            reset is not None
            and _PLAUSIBLE_EPOCH[0] < reset < _PLAUSIBLE_EPOCH[1]
            and (wait := _until(reset, server_now, local_now, period)) is not None
        ):
            found.append((wait, reset))
    return found


def _from_retry_after(
    headers: httpx.Headers, server_now: float | None, local_now: float, period: float
) -> list[tuple[float, float | None]]:
    """The usable ``Retry-After`` values (seconds, or an HTTP date): (wait, when, if a date)."""
    found: list[tuple[float, float | None]] = []
    for value in headers.get_list("retry-after"):  # (a date has a comma: never split)
        seconds = _number(value)
        when = _parse_http_date(value) if seconds is None else None
        if seconds is not None and 0 < seconds <= MAX_KEY_PAUSE:
            found.append((seconds, None))
        elif when is not None and (wait := _until(when, server_now, local_now, period)) is not None:
            found.append((wait, when))
    return found


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)
