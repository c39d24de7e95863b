"""The one request pipeline every operation goes through.

encode -> acquire the key's limiter -> send with httpx -> classify:
2xx decode JSON; 429 pause the key until the reset, retry; 5xx / connection errors / timeouts
retry with backoff and jitter (idempotent methods only); other 4xx raise typed errors.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Final

import anyio
import attrs
import httpx

from ._config import ClientConfig
from ._json import JSON_DECODE_ERRORS as _JSONDecodeError
from ._json import dumps as _dumps
from ._json import loads as _loads
from ._limiter import KeyLimiter, LimiterBackend, LocalLimiterBackend, RateLimit, RateLimitPaused
from ._links import resolve_link
from ._retries import backoff, rate_limit_delay
from .errors import (
    STATUS_ERRORS,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    DecodeError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)

__all__ = ["QueryParams", "RequestOptions", "Session"]

log = logging.getLogger("cliniko_async")

#: Request URLs built once per base URL and path (an id in a path makes a new entry: bounded).
_URL_CACHE_SIZE: Final = 4096
_URLS: dict[str, tuple[httpx.URL, str]] = {}
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

QueryParams = list[tuple[str, str]]
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Longest a 429 may pause a key before the request fails with RateLimitError instead.
MAX_RATE_LIMIT_WAIT: Final = 120.0
#: How many 429s one request rides out before RateLimitError.
MAX_RATE_LIMIT_RETRIES: Final = 8


@attrs.frozen
class RequestOptions:
    """Per-client (or per-call, via ``with_options``) request settings."""

    timeout: float | httpx.Timeout = 30.0
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_rate_limit_wait: float = MAX_RATE_LIMIT_WAIT

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, got {self.max_retries!r}"
            )
        if isinstance(self.timeout, int | float) and not self.timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.timeout!r}")


def backoff_delay(attempt: int, options: RequestOptions) -> float:
    """Exponential backoff with jitter: base * 2**attempt, capped, scaled by U(0.5, 1)."""
    return backoff(attempt, options.backoff_base, options.backoff_max)


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", "replace")
    return " ".join(text.split())


class Session:
    """Sends requests for one API key: auth, limiter, retries, error classification."""

    def __init__(
        self,
        config: ClientConfig,
        http: httpx.AsyncClient,
        *,
        rate_limit: RateLimit,
        options: RequestOptions,
        limiter_backend: LimiterBackend | None = None,
        limiter: KeyLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        # ``transport`` given: the pool is ours, requests go straight to it (``http`` wraps it
        # for uploads); otherwise ``http`` is the user's client and requests go through it.
        self.http = http
        self.transport = transport
        self.closed = False
        self.rate_limit = rate_limit
        self.options = options
        self.limiter_backend = limiter_backend or LocalLimiterBackend()
        self._limiter = limiter
        self._headers = {
            "Authorization": config.api_key.basic_auth_header(),
            "User-Agent": config.user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        }
        self._extensions: dict[str, Any] = {"timeout": httpx.Timeout(options.timeout).as_dict()}
        self._base = str(config.base_url).rstrip("/")
        self._host = config.base_url.netloc.decode("ascii")
        # Sent as they are when we own the pool: nothing is worked out again per request.
        self._direct_headers = httpx.Headers({"Host": self._host, **self._headers})

    @property
    def limiter(self) -> KeyLimiter:
        """This key's limiter (created on first use, on the running event loop)."""
        if self._limiter is None:
            self._limiter = self.limiter_backend.limiter_for(
                self.config.api_key.fingerprint, self.rate_limit
            )
        return self._limiter

    def with_options(self, options: RequestOptions) -> Session:
        """A session sharing this one's pool and limiter, with other request settings."""
        return Session(
            self.config,
            self.http,
            rate_limit=self.rate_limit,
            options=options,
            limiter_backend=self.limiter_backend,
            limiter=self._limiter,
            transport=self.transport,
        )

    def url_for(self, path_or_url: str) -> httpx.URL:
        """Resolve a path against the base URL; refuse absolute URLs on another origin."""
        return self._resolve(path_or_url)[0]

    def _resolve(self, path_or_url: str) -> tuple[httpx.URL, str]:
        """(URL, the URL without its query for messages); paths built once, then cached."""
        if path_or_url.startswith("/"):
            key = self._base + path_or_url
            found = _URLS.get(key)
            if found is None:
                url = resolve_link(self.config.base_url, path_or_url)
                found = (url, str(url.copy_with(query=None)))
                if len(_URLS) >= _URL_CACHE_SIZE:
                    _URLS.clear()
                _URLS[key] = found
            return found
        url = resolve_link(self.config.base_url, path_or_url)
        return url, str(url.copy_with(query=None))

    def close(self) -> None:
        """Refuse new requests (and retries of requests in flight) from now on."""
        self.closed = True

    def _check_open(self, method: str, url: str) -> None:
        if self.closed or self.http.is_closed:
            raise ClientClosedError(f"the client is closed ({method} {url} not sent)")

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: QueryParams | None = None,
        json_body: Any = None,
        raw: bool = False,
    ) -> Any:
        """Send one API request through the pipeline; return the decoded JSON (None for 204).

        ``raw=True``: return ``(response, decoded JSON)``, the final response's status and
        headers (body closed) with the JSON, for ``with_raw_response``."""
        url, public_url = self._resolve(path_or_url)
        options = self.options
        idempotent = method in IDEMPOTENT_METHODS
        content = None
        headers = self._headers
        if json_body is not None:
            content = _dumps(json_body)
            headers = {**headers, "Content-Type": "application/json"}
        attempt = 0
        rate_limited = 0
        while True:
            self._check_open(method, public_url)
            try:
                permit = await self.limiter.acquire(options.max_rate_limit_wait)
            except RateLimitPaused as paused:
                raise self._paused_error(method, public_url, paused.resume_in) from None
            self._check_open(method, public_url)
            try:
                response = await self._send(method, url, params, content, headers)
            except httpx.TransportError as exc:
                permit.release()
                # A connect failure never reached Cliniko: safe to retry for every method.
                not_sent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                error_cls = (
                    APITimeoutError
                    if isinstance(exc, httpx.TimeoutException)
                    else APIConnectionError
                )
                if (idempotent or not_sent) and attempt < options.max_retries:
                    delay = backoff_delay(attempt, options)
                    attempt += 1
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "%s %s failed (%s); retry %d in %.2fs",
                            method, public_url, type(exc).__name__, attempt, delay,
                        )  # fmt: skip
                    await anyio.sleep(delay)
                    continue
                reason = "timed out" if error_cls is APITimeoutError else "connection failed"
                raise error_cls(
                    f"request {reason}: {type(exc).__name__}", method=method, url=public_url
                ) from None
            except RuntimeError:
                permit.release()
                self._check_open(method, public_url)  # httpx: "the client has been closed"
                raise
            except BaseException:
                permit.release()
                raise
            permit.release()
            status = response.status_code
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %d", method, public_url, status)
            if status < 300:
                data = self._decode(response, method, public_url)
                return (response, data) if raw else data
            if status == 429:
                rate_limited += 1
                hold = rate_limit_delay(
                    response.headers,
                    period=self.rate_limit.period,
                    attempt=rate_limited,
                    fallback_cap=options.backoff_max,
                    key=self.limiter,
                    paused=self.limiter.paused_for() > 0,
                )
                # The whole key pauses for as long as Cliniko said, whether or not this request
                # waits: every other request on the key waits (or fails fast) too.
                self.limiter.pause(hold.seconds, probe=not hold.trusted)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s %s rate limited; key paused %.2fs%s", method, public_url,
                        hold.seconds, "" if hold.trusted else " (no usable reset header)",
                    )  # fmt: skip
                if hold.seconds > options.max_rate_limit_wait:
                    raise self._status_error(
                        response,
                        method,
                        public_url,
                        f"rate limited until {hold.reset_at:%Y-%m-%d %H:%M:%S} UTC, more than "
                        f"the {options.max_rate_limit_wait:.0f} s this client waits",
                        reset_at=hold.reset_at,
                    )
                if rate_limited <= MAX_RATE_LIMIT_RETRIES:
                    continue
                raise self._status_error(
                    response,
                    method,
                    public_url,
                    f"rate limited {rate_limited} times in a row",
                    reset_at=hold.reset_at,
                )
            if status >= 500 and idempotent and attempt < options.max_retries:
                delay = backoff_delay(attempt, options)
                attempt += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s %s -> %d; retry %d in %.2fs", method, public_url, status, attempt, delay
                    )
                await anyio.sleep(delay)
                continue
            raise self._status_error(response, method, public_url)

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        params: QueryParams | None,
        content: bytes | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        """One HTTP exchange, body read. Never follows a redirect (it could carry the key away)."""
        transport = self.transport
        if transport is None:  # the user's client: their defaults, hooks and mounts apply
            http = self.http
            request = http.build_request(
                method,
                url,
                params=tuple(params) if params else None,
                content=content,
                headers=headers,
                timeout=self.options.timeout,
            )
            return await http.send(request, follow_redirects=False)
        direct: httpx.Headers | dict[str, str] = self._direct_headers
        if headers is not self._headers or method in _BODY_METHODS:
            length = str(len(content)) if content is not None else "0"
            direct = {"Host": self._host, **headers, "Content-Length": length}
        # stream= rather than content=: httpx adds no headers, ours are complete.
        request = httpx.Request(
            method,
            url,
            params=tuple(params) if params else None,
            headers=direct,
            stream=httpx.ByteStream(content or b""),
            extensions=self._extensions,
        )
        request.read()
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _decode(self, response: httpx.Response, method: str, url: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return _loads(response.content)
        except _JSONDecodeError:
            kind = "an HTML page" if response.content.lstrip()[:1] == b"<" else "invalid JSON"
            raise DecodeError(
                f"expected JSON from Cliniko, got {kind}",
                method=method,
                url=url,
                status_code=response.status_code,
                snippet=_snippet(response.content),
            ) from None

    def _paused_error(self, method: str, url: str, resume_in: float) -> RateLimitError:
        reset_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=resume_in)
        return RateLimitError(
            f"the key is rate limited (a 429 paused it) until {reset_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"more than the {self.options.max_rate_limit_wait:.0f} s this client waits; "
            "nothing was sent",
            reset_at=reset_at,
            method=method,
            url=url,
            status_code=429,
            body=None,
            headers={},
        )

    def _status_error(
        self,
        response: httpx.Response,
        method: str,
        url: str,
        message: str | None = None,
        *,
        reset_at: dt.datetime | None = None,
    ) -> APIStatusError:
        status = response.status_code
        try:
            body: Any = _loads(response.content) if response.content else None
        except _JSONDecodeError:
            body = _snippet(response.content, 500)
        server_message = body.get("message") if isinstance(body, dict) else None
        cls = STATUS_ERRORS.get(status, ServerError if status >= 500 else APIStatusError)
        text = message or (str(server_message) if server_message else response.reason_phrase)
        common: dict[str, Any] = {
            "method": method,
            "url": url,
            "status_code": status,
            "body": body,
            "headers": _safe_headers(response.headers),
        }
        if status == 401 and message is None:
            text = (
                f"{text}: the API key was refused. Check the key, and that it is used on its own "
                f"shard ({self.config.api_key.shard}): a key sent to another shard also gets 401"
            )
        if cls is UnprocessableEntityError:
            return UnprocessableEntityError(text, errors=_field_errors(body), **common)
        if cls is RateLimitError:
            return RateLimitError(text, reset_at=reset_at, **common)
        return cls(text, **common)


def _safe_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("set-cookie", "authorization")}


def _field_errors(body: Any) -> dict[str, list[str]]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, Mapping):
        return {}
    out: dict[str, list[str]] = {}
    for field, messages in errors.items():
        if isinstance(messages, list):
            out[str(field)] = [str(m) for m in messages]
        else:
            out[str(field)] = [str(messages)]
    return out
