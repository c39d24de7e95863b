"""The fake's settings, checked where they are given (``FakeCliniko(...)``, the command line).

Nonsense fails there with a message naming the setting, not later as a traceback in data
generation, a 500 from the rate limiter or a limit that is never enforced. No third-party
imports: the command line checks its options before it needs starlette.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard

__all__ = [
    "MAX_RECORDS",
    "check_count",
    "check_fake_settings",
    "check_rate_limit",
]

#: Most records of one kind the fake generates (patients, appointments, ...). A million
#: patients and a million appointments took 67 s and 4.2 GB on a 2-core machine: more is a
#: typo, not a test.
MAX_RECORDS = 1_000_000
#: The windows the fake's rate limit knows.
WINDOWS = ("rolling", "fixed")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(name: str, value: object, low: int = 0, high: int = MAX_RECORDS) -> int:
    """``value`` as a count of records, or ValueError."""
    if _is_int(value) and low <= value <= high:
        return value
    raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, not {value!r}")


def check_rate_limit(value: object) -> tuple[int, float] | None:
    """``(requests, seconds)``: at least one request per a positive, finite number of seconds;
    None for no limit. Anything else is a ValueError."""
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"rate_limit must be (requests, seconds) or None, not {value!r}")
    requests, seconds = value
    if not _is_int(requests) or requests < 1:
        raise ValueError(f"rate_limit: requests must be a whole number >= 1, not {requests!r}")
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not (math.isfinite(seconds) and seconds > 0)
    ):
        raise ValueError(f"rate_limit: seconds must be a number > 0, not {seconds!r}")
    return requests, float(seconds)


def check_fake_settings(
    *,
    seed: Any,
    counts: dict[str, Any],
    records_per_resource: Any,
    api_keys: Any,
    rate_limit: Any,
    window: Any,
) -> None:
    """Every ``FakeCliniko(...)`` argument that could be nonsense; ValueError for the first."""
    if not _is_int(seed):
        raise ValueError(f"seed must be an int, not {seed!r}")
    for name, value in counts.items():
        check_count(name, value)
    check_count("records_per_resource", records_per_resource, 1)
    if (
        isinstance(api_keys, str)
        or not isinstance(api_keys, Sequence)
        or not api_keys
        or not all(isinstance(k, str) and k for k in api_keys)
    ):
        raise ValueError(f"api_keys must be a tuple of one or more keys, not {api_keys!r}")
    check_rate_limit(rate_limit)
    if window not in WINDOWS:
        raise ValueError(f"window must be 'rolling' or 'fixed', not {window!r}")
