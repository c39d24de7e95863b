"""``RawResponse``: what ``cliniko.<resource>.with_raw_response.<operation>(...)`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    import httpx

__all__ = ["RawResponse"]

T = TypeVar("T")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@attrs.frozen
class RawResponse(Generic[T]):
    """The final HTTP response of an operation together with its parsed result.

    ``status_code`` and ``headers`` are those of the response that was parsed (after any
    retries); ``parsed`` is what the operation returns without ``with_raw_response`` (the
    model, or None). Cliniko's rate-limit headers are in ``headers`` and, as integers, in
    :attr:`rate_limit_limit`, :attr:`rate_limit_remaining` and :attr:`rate_limit_reset`.
    """

    status_code: int
    """The HTTP status (200, 201, 204, ...)."""
    headers: httpx.Headers
    """The response headers (case-insensitive)."""
    parsed: T
    """The parsed result: the model, or None for operations that return nothing."""

    @property
    def rate_limit_limit(self) -> int | None:
        """``X-RateLimit-Limit``: requests allowed per window, if Cliniko sent it."""
        return _int(self.headers.get("x-ratelimit-limit"))

    @property
    def rate_limit_remaining(self) -> int | None:
        """``X-RateLimit-Remaining``: requests left in the window, if Cliniko sent it."""
        return _int(self.headers.get("x-ratelimit-remaining"))

    @property
    def rate_limit_reset(self) -> int | None:
        """``X-RateLimit-Reset``: when the window resets (unix seconds), if Cliniko sent it."""
        return _int(self.headers.get("x-ratelimit-reset"))
