"""The one request pipeline every operation goes through.

encode -> acquire the key's limiter -> send with httpx -> classify:
2xx decode JSON; 429 pause the key until the reset, retry; 5xx / connection errors / timeouts
retry with backoff and jitter (idempotent methods only); other 4xx raise typed errors.

The API key lives in :class:`_Credentials` (hidden from repr, rich, ``vars()`` and pickle) and
goes into a request's headers inside the expression that builds the request; once the
exchange is over the request's headers are swapped for ones without it, so neither a frame
local of the pipeline nor an exception (nor its ``.request``) holds it. Transport errors are
turned into this package's errors outside the ``except`` block: nothing chains to the httpx
exception.

Every request registers its task while it runs (one dict entry): that is how ``close()`` ends
the client's requests at once (wherever they wait: for a rate-limit slot, on the wire, before
a retry) and how the per-exchange deadline is enforced on every transport (one timer per event
loop, for the earliest deadline in flight, rather than a timer per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import anyio
import attrs
import httpx

from ._config import ClientConfig, without_passwords
from ._json import JSON_DECODE_ERRORS as _JSONDecodeError
from ._json import dumps as _dumps
from ._json import loads as _loads
from ._limiter import KeyLimiter, LimiterBackend, LocalLimiterBackend, RateLimit, RateLimitPaused
from ._links import resolve_link
from ._retries import backoff, rate_limit_delay
from ._transport import (
    DEFAULT_MAX_RESPONSE_SIZE,
    MAX_SIZE_EXTENSION,
    AiohttpTransport,
    ResponseTooLarge,
    read_capped,
)
from .errors import (
    STATUS_ERRORS,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    DecodeError,
    RateLimitError,
    ResponseTooLargeError,
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
#: The default deadline of one exchange (connect to last byte) is this many times the timeout.
DEADLINE_FACTOR: Final = 3


@attrs.frozen
class RequestOptions:
    """Per-client (or per-call, via ``with_options``) request settings."""

    timeout: float | httpx.Timeout = 30.0
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_rate_limit_wait: float = MAX_RATE_LIMIT_WAIT
    #: Longest one exchange (connect, send, the whole response read) may take; None: three
    #: times the timeout (90 s by default); ``math.inf``: no deadline.
    deadline: float | None = None
    #: Largest response body accepted, counted compressed and decompressed (64 MiB).
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an integer >= 0, got {self.max_retries!r}"
            )
        timeout: object = self.timeout
        if (
            timeout is not None
            and not isinstance(timeout, httpx.Timeout)
            and not _seconds(timeout, inf=True)
        ):
            raise ConfigurationError(
                f"timeout must be a number of seconds > 0 (or an httpx.Timeout), got {timeout!r}"
            )
        if not _seconds(self.max_rate_limit_wait, zero=True, inf=True):
            raise ConfigurationError(
                "max_rate_limit_wait must be a number of seconds >= 0 (how long a request may "
                "wait out a 429; math.inf: as long as Cliniko says), got "
                f"{self.max_rate_limit_wait!r}"
            )
        for name in ("backoff_base", "backoff_max"):
            if not _seconds(getattr(self, name), zero=True):
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds >= 0, got {getattr(self, name)!r}"
                )
        if self.deadline is not None and not _seconds(self.deadline, inf=True):
            raise ConfigurationError(
                f"deadline must be a number of seconds > 0 (math.inf: none), got {self.deadline!r}"
            )
        if (
            isinstance(self.max_response_size, bool)
            or not isinstance(self.max_response_size, int)
            or self.max_response_size < 1
        ):
            raise ConfigurationError(
                "max_response_size must be a positive number of bytes, "
                f"got {self.max_response_size!r}"
            )

    def effective_deadline(self) -> float | None:
        """The deadline in seconds, or None for none."""
        if self.deadline is not None:
            return None if math.isinf(self.deadline) else float(self.deadline)
        timeout: object = self.timeout  # None (no timeout) gets past the type too
        if isinstance(timeout, httpx.Timeout):
            parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
            return DEADLINE_FACTOR * max(parts) if parts else None
        if isinstance(timeout, int | float) and not math.isinf(timeout):
            return DEADLINE_FACTOR * float(timeout)
        return None


def _seconds(value: object, *, zero: bool = False, inf: bool = False) -> bool:
    """``value`` is a real number of seconds: > 0 (>= 0 with ``zero``), finite unless ``inf``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return False
    if math.isinf(value):
        return inf and value > 0
    return value >= 0 if zero else value > 0


def backoff_delay(attempt: int, options: RequestOptions) -> float:
    """Exponential backoff with jitter: base * 2**attempt, capped, scaled by U(0.5, 1)."""
    return backoff(attempt, options.backoff_base, options.backoff_max)


def _snippet(content: bytes, limit: int = 120) -> str:
    text = content[:limit].decode("utf-8", "replace")
    return " ".join(text.split())


class _Credentials:
    """The request headers that carry the key. Nothing that prints objects shows them."""

    __slots__ = ("_aiohttp", "client", "direct", "public")

    def __init__(self, config: ClientConfig, host: str) -> None:
        common = {
            "User-Agent": config.user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        }
        # The header value is built inside the expressions: no local ever holds it.
        #: for the user's client (its own Host and defaults apply)
        self.client = httpx.Headers({"Authorization": config.api_key.basic_auth_header(), **common})
        #: sent as they are when we own the pool: nothing is worked out again per request
        self.direct = httpx.Headers(
            {"Host": host, "Authorization": config.api_key.basic_auth_header(), **common}
        )
        #: what a request's headers become once it is sent: the same without the key
        self.public = httpx.Headers({"Host": host, **common})
        #: ``direct`` as aiohttp takes them (our pool on aiohttp: no httpx.Request is built)
        self._aiohttp = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.direct.raw]

    def aiohttp(self, content: bytes | None, method: str) -> list[tuple[str, str]]:
        """:meth:`for_body`'s headers (or ``direct``'s) as aiohttp takes them."""
        if content is None:
            if method not in _BODY_METHODS:
                return self._aiohttp  # aiohttp copies them: the list is never changed
            return [*self._aiohttp, ("Content-Length", "0")]
        return [
            *self._aiohttp,
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
        ]

    def for_body(self, content: bytes | None) -> httpx.Headers:
        headers = self.direct.copy()
        if content is not None:
            headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(content)) if content is not None else "0"
        return headers

    def __repr__(self) -> str:
        return "<credentials>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("credentials cannot be pickled (they would write the key out)")


# --- requests in flight: close() and the deadline -----------------------------------------------

#: Each running request: [deadline (loop time; inf while not on the wire), session, reason
#: it was interrupted (None, "closed" or "deadline"), on the wire].
_DEADLINE, _SESSION, _REASON, _SENDING = 0, 1, 2, 3
_RUNNING: dict[asyncio.Task[Any], list[Any]] = {}
#: Per event loop: [loop time of the armed deadline check, its timer].
_WATCH: dict[asyncio.AbstractEventLoop, list[Any]] = {}
_INTERRUPTED = "cliniko_async: request interrupted (client closed or deadline passed)"


class _DeadlinePassed(httpx.ReadTimeout):
    """Marks an attempt whose deadline passed (never raised: a timeout, retried as one)."""


def _arm(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Make sure ``loop`` checks deadlines at ``when`` (one timer per loop: the earliest)."""
    armed = _WATCH.get(loop)
    if armed is not None:
        if armed[0] <= when:
            return
        armed[1].cancel()
    elif len(_WATCH) > 8:
        for old in [other for other in _WATCH if other.is_closed()]:
            del _WATCH[old]
    _WATCH[loop] = [when, loop.call_at(when, _check_deadlines, loop)]


def _check_deadlines(loop: asyncio.AbstractEventLoop) -> None:
    _WATCH.pop(loop, None)
    now = loop.time()
    following = math.inf
    for task, running in list(_RUNNING.items()):
        if task.get_loop() is not loop:
            continue
        deadline = running[_DEADLINE]
        if deadline <= now:
            _interrupt(task, running, "deadline")
        elif deadline < following:
            following = deadline
    if following < math.inf:
        _arm(loop, following)


def _interrupt(task: asyncio.Task[Any], running: list[Any], reason: str) -> None:
    """Cancel a request's task (on its own loop); the request turns that into our error."""
    if _RUNNING.get(task) is running and running[_REASON] is None and not task.done():
        running[_REASON] = reason
        task.cancel(_INTERRUPTED)


def _interrupt_where(match: Callable[[Session], bool]) -> None:
    """Interrupt every running request whose session matches, from any thread."""
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        this_task = asyncio.current_task()
    except RuntimeError:
        current, this_task = None, None
    for task, running in list(_RUNNING.items()):
        if task is this_task or not match(running[_SESSION]):
            continue
        loop = task.get_loop()
        if loop is current:
            _interrupt(task, running, "closed")
        else:
            # A closed loop raises RuntimeError: nothing runs there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_interrupt, task, running, "closed")


class _Family:
    """What a client's session and its ``with_options`` copies share: being closed."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True
        _interrupt_where(lambda session: session._family is self)

    async def drained(self, at_most: float = 1.0) -> None:
        """Wait (bounded) until this family's requests on this loop have unwound."""
        loop = asyncio.get_running_loop()
        until = loop.time() + at_most
        rounds = 0
        while any(
            running[_SESSION]._family is self and task.get_loop() is loop
            for task, running in list(_RUNNING.items())
        ):
            if loop.time() >= until:
                return
            rounds += 1
            await asyncio.sleep(0 if rounds < 8 else 0.005)


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
        family: _Family | None = None,
    ) -> None:
        self.config = config
        # ``transport`` given: the pool is ours, requests go straight to it (``http`` wraps it
        # for uploads); otherwise ``http`` is the user's client and requests go through it.
        self.http = http
        self.transport = transport
        self._closed = False
        # The session a client made owns its family: closing it closes the with_options copies
        # (and, for ClinikoAccounts, every key's session) too.
        self._owns_family = family is None
        self._family = _Family() if family is None else family
        self.rate_limit = rate_limit
        self.options = options
        self.limiter_backend = limiter_backend or LocalLimiterBackend()
        self._limiter = limiter
        self._extensions: dict[str, Any] = {
            "timeout": httpx.Timeout(options.timeout).as_dict(),
            MAX_SIZE_EXTENSION: options.max_response_size,
        }
        self._deadline = options.effective_deadline()
        self._base = str(config.base_url).rstrip("/")
        self._host = config.base_url.netloc.decode("ascii")
        self._credentials = _Credentials(config, self._host)

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
            family=self._family,
        )

    @property
    def closed(self) -> bool:
        return self._closed or self._family.closed

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
        """Refuse new requests, and end the ones running now with ClientClosedError.

        Requests waiting for a rate-limit slot, on the wire or waiting before a retry are
        interrupted at once (their tasks are cancelled and the cancellation turned into
        ClientClosedError; from another thread, on their own loop). A client's own session
        closes its ``with_options`` copies too; a copy closes only itself. Thread-safe.
        """
        self._closed = True
        if self._owns_family:
            self._family.close()
        else:
            _interrupt_where(lambda session: session is self)

    async def drained(self) -> None:
        """After close(): wait (bounded) until the interrupted requests on this loop unwound."""
        await self._family.drained()

    def _check_open(self, method: str, url: str) -> None:
        if self._closed or self._family.closed or self.http.is_closed:
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
        content = None if json_body is None else _dumps(json_body)
        task = asyncio.current_task()
        running: list[Any] = [math.inf, self, None, False]
        if task is not None:
            _RUNNING[task] = running
        try:
            return await self._attempts(
                method, url, public_url, params, content, task, running, raw
            )
        except asyncio.CancelledError:
            reason = running[_REASON]
            if reason is None or task is None:
                raise
            running[_REASON] = "handled"  # "closed": the deadline is handled per attempt
            if task.uncancel() > 0:  # cancelled by someone else as well: that wins
                raise
        finally:
            if task is not None:
                del _RUNNING[task]
                if running[_REASON] in ("closed", "deadline"):
                    task.uncancel()  # interrupted, but the cancellation was swallowed below
        # Raised here, outside the except block: the error has no __context__.
        where = "on the wire (it may have reached Cliniko)" if running[_SENDING] else "not sent"
        raise ClientClosedError(f"the client was closed ({method} {public_url} {where})")

    async def _attempts(
        self,
        method: str,
        url: httpx.URL,
        public_url: str,
        params: QueryParams | None,
        content: bytes | None,
        task: asyncio.Task[Any] | None,
        running: list[Any],
        raw: bool = False,
    ) -> Any:
        options = self.options
        idempotent = method in IDEMPOTENT_METHODS
        deadline = self._deadline if task is not None else None
        attempt = 0
        rate_limited = 0
        while True:
            self._check_open(method, public_url)
            try:
                permit = await self.limiter.acquire(options.max_rate_limit_wait)
            except RateLimitPaused as paused:
                raise self._paused_error(method, public_url, paused.resume_in) from None
            try:
                self._check_open(method, public_url)
            except ClientClosedError:
                permit.release()  # closed while it waited: the slot (maybe a probe) goes back
                raise
            failed: type[Exception] | None = None
            detail = ""
            running[_SENDING] = True
            if deadline is not None:
                loop = task.get_loop()  # type: ignore[union-attr]
                running[_DEADLINE] = when = loop.time() + deadline
                _arm(loop, when)
            try:
                response = await self._send(method, url, params, content)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                # Only the class and its text are kept: the exception (and its request, with
                # the key in its headers) are dropped here.
                failed, detail = type(exc), self._detail(exc)
            except asyncio.CancelledError:
                if running[_REASON] != "deadline":
                    permit.release()
                    raise  # closed (request() turns it into ClientClosedError), or not ours
                running[_REASON] = None  # our cancellation is consumed here, once
                if task.uncancel() > 0:  # type: ignore[union-attr]
                    permit.release()
                    raise  # cancelled by someone else as well: that wins
                failed = _DeadlinePassed
            except RuntimeError:
                permit.release()
                self._check_open(method, public_url)  # httpx: "the client has been closed"
                raise
            except BaseException:
                permit.release()
                raise
            finally:
                running[_DEADLINE] = math.inf
            running[_SENDING] = False  # (left set when the exchange was interrupted)
            permit.release()
            if running[_REASON] is not None:
                # Interrupted, but the transport turned the cancellation into an error of its
                # own (or the response came back as the deadline passed).
                if running[_REASON] == "closed":
                    raise asyncio.CancelledError  # request() turns it into ClientClosedError
                running[_REASON] = None
                task.uncancel()  # type: ignore[union-attr]
                failed = _DeadlinePassed
            if failed is not None:
                if issubclass(failed, ResponseTooLarge):
                    raise ResponseTooLargeError(
                        f"the response body is larger than the {options.max_response_size} "
                        "bytes this client accepts (max_response_size); reading stopped there",
                        method=method,
                        url=public_url,
                        limit=options.max_response_size,
                    )
                if issubclass(failed, httpx.DecodingError):
                    raise DecodeError(
                        "the response body could not be decompressed",
                        method=method,
                        url=public_url,
                        status_code=0,
                        snippet="",
                    )
                # A connect failure never reached Cliniko: safe to retry for every method.
                not_sent = issubclass(
                    failed, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                error_cls = (
                    APITimeoutError
                    if issubclass(failed, httpx.TimeoutException)
                    else APIConnectionError
                )
                if (idempotent or not_sent) and attempt < options.max_retries:
                    delay = backoff_delay(attempt, options)
                    attempt += 1
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug(
                            "%s %s failed (%s); retry %d in %.2fs",
                            method, public_url, failed.__name__, attempt, delay,
                        )  # fmt: skip
                    await anyio.sleep(delay)
                    continue
                reason = "timed out" if error_cls is APITimeoutError else "connection failed"
                what = (
                    f"the exchange took longer than the {deadline:g} s deadline"
                    if failed is _DeadlinePassed
                    else f"{failed.__name__} ({detail})"
                    if detail and detail != failed.__name__
                    else failed.__name__
                )
                raise error_cls(f"request {reason}: {what}", method=method, url=public_url)
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
                        f"the {options.max_rate_limit_wait:g} s this client waits",
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
    ) -> httpx.Response:
        """One exchange; whatever it raises carries no frame of the HTTP stack below."""
        try:
            return await self._exchange(method, url, params, content)
        except BaseException as exc:
            # The frames of aiohttp / httpcore / the user's transport keep the request's headers
            # (Authorization among them) in their locals: a traceback recorded with its locals
            # (Sentry, rich, capture_locals) must not reach them, not even for a cancellation.
            _forget_frames(exc)
            raise

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        params: QueryParams | None,
        content: bytes | None,
    ) -> httpx.Response:
        """One HTTP exchange, body read under the size cap. Never follows a redirect.

        The key goes into the request's headers as the request is built, and out of them once
        the exchange is over (also when it failed: an httpx exception's ``.request`` is this
        request), so nothing that outlives the exchange carries it.
        """
        credentials = self._credentials
        limit = self.options.max_response_size
        transport = self.transport
        if transport is None:  # the user's client: their defaults, hooks and mounts apply
            http = self.http
            request = http.build_request(
                method,
                url,
                params=tuple(params) if params else None,
                content=content,
                headers=credentials.client,
                timeout=self.options.timeout,
                extensions={MAX_SIZE_EXTENSION: limit},
            )
            try:
                if content is not None:
                    request.headers["Content-Type"] = "application/json"
                response = await http.send(request, follow_redirects=False, stream=True)
                try:
                    await read_capped(response, limit, request)
                finally:
                    await response.aclose()
            finally:
                request.headers.pop("Authorization", None)
            return response
        if transport.__class__ is AiohttpTransport:  # ours, on aiohttp: no httpx.Request
            direct = await transport.send_direct(
                method,
                url,
                tuple(params) if params else None,
                content,
                credentials,
                self._extensions,
            )
            if direct is not None:
                return direct
        # stream= rather than content=: httpx adds no headers, ours are complete.
        request = httpx.Request(
            method,
            url,
            params=tuple(params) if params else None,
            headers=(
                credentials.direct
                if content is None and method not in _BODY_METHODS
                else credentials.for_body(content)
            ),
            stream=httpx.ByteStream(content or b""),
            extensions=self._extensions,
        )
        # What request.read() does for a ByteStream, without its typing.Iterable check.
        request._content = content or b""
        try:
            response = await transport.handle_async_request(request)
            try:
                if not hasattr(response, "_content"):  # ours (aiohttp) read it under the cap
                    await read_capped(response, limit, request)
                elif len(response._content) > limit:
                    raise ResponseTooLarge(limit, request)
            finally:
                if response.stream.__class__ is httpx.ByteStream:
                    response.is_closed = True  # what aclose() does: a ByteStream holds nothing
                else:
                    await response.aclose()
        finally:
            request.headers = credentials.public
        return response

    def _decode(self, response: httpx.Response, method: str, url: str) -> Any:
        content = response.content
        if not content or response.status_code == 204:
            return None
        try:
            return _loads(content)
        except _JSONDecodeError:
            kind = "an HTML page" if content.lstrip()[:1] == b"<" else "invalid JSON"
            raise DecodeError(
                f"expected JSON from Cliniko, got {kind}",
                method=method,
                url=url,
                status_code=response.status_code,
                snippet=_snippet(self.config.api_key.redact(content)),
            ) from None

    def _detail(self, exc: BaseException) -> str:
        """What a transport error says (a refused port, an unknown host, a certificate that
        does not verify), on one short line, the key redacted should it ever appear."""
        text = without_passwords(" ".join(str(exc).split()))[:200]  # a proxy's URL, say
        return self.config.api_key.redact(text.encode()).decode() if text else ""

    def _paused_error(self, method: str, url: str, resume_in: float) -> RateLimitError:
        reset_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=resume_in)
        return RateLimitError(
            f"the key is rate limited (a 429 paused it) until {reset_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"more than the {self.options.max_rate_limit_wait:g} s this client waits; "
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
        # Nothing a response echoes of the key (a proxy reflecting the request's headers)
        # reaches the error's message, body or headers.
        content = self.config.api_key.redact(response.content)
        try:
            body: Any = _loads(content) if content else None
        except _JSONDecodeError:
            body = _snippet(content, 500)
        server_message = body.get("message") if isinstance(body, dict) else None
        cls = STATUS_ERRORS.get(status, ServerError if status >= 500 else APIStatusError)
        text = message or (str(server_message) if server_message else response.reason_phrase)
        common: dict[str, Any] = {
            "method": method,
            "url": url,
            "status_code": status,
            "body": body,
            "headers": {
                k: self.config.api_key.redact(v.encode()).decode()
                for k, v in _safe_headers(response.headers).items()
            },
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


def _forget_frames(exc: BaseException) -> None:
    """Drop ``exc``'s traceback, and that of each exception it chains."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


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
