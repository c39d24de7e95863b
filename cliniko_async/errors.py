"""The exception hierarchy. Every exception the library raises is a :class:`ClinikoError`.

::

    ClinikoError
    ├── ConfigurationError          bad input, raised before any request is sent (also a ValueError)
    ├── ClientClosedError           the client was closed before or during the request
    ├── UnsafeURLError              a URL that would leave the configured Cliniko host
    ├── ModelDecodeError            data that does not fit a model (also a ValueError)
    └── APIError                    something went wrong with a request (method, url)
        ├── APIConnectionError      the request did not get a response
        │   └── APITimeoutError     a timeout, or the request's total deadline passed
        ├── ResponseTooLargeError   a response body over the size cap (compressed or not)
        ├── DecodeError             a response body that is not the JSON expected
        ├── PaginationError         pages that loop, repeat records or contradict total_entries
        └── APIStatusError          a 4xx/5xx response (status_code, body, headers)
            ├── BadRequestError              400
            ├── AuthenticationError          401
            ├── PermissionDeniedError        403
            ├── NotFoundError                404
            ├── UnprocessableEntityError     422 (field ``errors``)
            ├── RateLimitError               429 (``reset_at``)
            └── ServerError                  5xx

URLs in messages and attributes never carry credentials; the API key never appears anywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ClinikoError",
    "ConfigurationError",
    "DecodeError",
    "ModelDecodeError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
    "UnprocessableEntityError",
    "UnsafeURLError",
]


class ClinikoError(Exception):
    """Base class of every exception raised by cliniko_async."""


class ConfigurationError(ClinikoError, ValueError):
    """Invalid input (key, shard, User-Agent, filter, page size...); nothing was sent."""


class ClientClosedError(ClinikoError, RuntimeError):
    """The client was closed (``aclose()``/``close()``) before or while this request ran.

    Closing ends the client's requests at once, wherever they are: waiting for a rate-limit
    slot (nothing was sent), on the wire (it may or may not have reached Cliniko), or waiting
    before a retry.
    """


class UnsafeURLError(ClinikoError):
    """A URL (e.g. a pagination ``links.next``) points away from the configured Cliniko base URL.

    Nothing was sent to it: the API key is only ever sent to the configured base URL.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ModelDecodeError(ClinikoError, ValueError):
    """Data that cannot be turned into a model (the pipeline re-raises it as DecodeError).

    Raised as it is by ``structure()`` called directly on data that does not fit the model.
    """


class APIError(ClinikoError):
    """A request failed. ``method`` and ``url`` (without credentials) say which."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} ({self.method} {self.url})"


class APIConnectionError(APIError):
    """No response: the connection failed or was dropped."""


class APITimeoutError(APIConnectionError):
    """The request timed out: a connect/read/write/pool timeout, or its total deadline passed.

    A passed deadline (one exchange, connect to last byte, took longer than the client's
    ``deadline``) counts as a timeout: retried like one (idempotent methods, ``max_retries``).
    """


class ResponseTooLargeError(APIError):
    """A response body was larger than the client's ``max_response_size``.

    Counted on the bytes as they arrive and again as they are decompressed: reading stopped at
    the limit (nothing larger was held in memory) and the connection was dropped. ``limit`` is
    the cap in bytes. Not retried.
    """

    def __init__(self, message: str, *, method: str, url: str, limit: int) -> None:
        super().__init__(message, method=method, url=url)
        self.limit = limit


class DecodeError(APIError):
    """The response body was not the JSON expected (an HTML page, truncated JSON, wrong shape)."""

    def __init__(
        self, message: str, *, method: str, url: str, status_code: int, snippet: str
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.snippet = snippet

    def __str__(self) -> str:
        # status_code 0: the body could not be decompressed, so no status was read with it.
        status = f", status {self.status_code}" if self.status_code else ""
        return f"{self.message} ({self.method} {self.url}{status}): {self.snippet!r}"


class PaginationError(APIError):
    """A list's pages cannot be trusted: following them would never end or would lose records.

    Raised instead of looping or cutting silently when ``links.next`` points back at a page
    already fetched, the same record comes on two pages, a page holds more records than
    ``per_page``, ``total_entries`` contradicts the pages that arrived, or ``by_id()`` gets ids
    that do not increase. The records yielded before it are correct; ``url`` is the page that
    showed the problem (without its query).
    """


class APIStatusError(APIError):
    """Cliniko answered with an error status. ``body`` is the parsed JSON body (or text)."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        body: Any,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers)

    def __str__(self) -> str:
        return f"{self.status_code} {self.message} ({self.method} {self.url})"


class BadRequestError(APIStatusError):
    """400: the request was malformed (e.g. a filter on a non-filterable field)."""


class AuthenticationError(APIStatusError):
    """401: the API key was refused. A key used on the wrong shard also answers 401."""


class PermissionDeniedError(APIStatusError):
    """403: the key's user may not do this."""


class NotFoundError(APIStatusError):
    """404: no such record (or it is not visible to this key)."""


class UnprocessableEntityError(APIStatusError):
    """422: validation failed. ``errors`` maps each field to its messages."""

    def __init__(self, message: str, *, errors: Mapping[str, list[str]], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors: dict[str, list[str]] = dict(errors)

    def __str__(self) -> str:
        fields = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items())
        return f"{super().__str__()}: {fields}" if fields else super().__str__()


class RateLimitError(APIStatusError):
    """429 after the retries ran out. ``reset_at`` is when Cliniko said the limit resets."""

    def __init__(self, message: str, *, reset_at: dt.datetime | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reset_at = reset_at


class ServerError(APIStatusError):
    """5xx after the retries ran out (504 also when a query ran past Cliniko's 30 s limit)."""


STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}
