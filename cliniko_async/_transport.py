"""The HTTP stack under the client: an httpx transport on aiohttp, one pool per loop and process.

httpx stays the interface (``httpx.Request`` in, ``httpx.Response`` out, an
``httpx.AsyncBaseTransport``); aiohttp keeps the connections. httpcore's pool costs CPU per
request in proportion to the requests in flight (1,000 in flight: ~17 ms each), aiohttp's
stays near 0.1 ms, which is what lets one process serve hundreds of Cliniko keys.

- ``aiohttp`` is imported on the first request, not on ``import cliniko_async``.
- Its connections belong to one event loop and one process: the transport keeps a pool per
  running loop, closes a loop's pool when that loop shuts down (``asyncio.run`` cancels the
  pool's guard task, which closes it before the loop closes), and after ``os.fork()`` the child
  builds its own pool and never touches (or closes) the parent's connections.
- The whole body is read before the response is returned (every Cliniko response is read
  whole anyway), never more than ``max_response_size`` bytes (the request's
  ``cliniko_async.max_response_size`` extension, 64 MiB by default): counted as the bytes
  arrive, and again as gzip/deflate is decoded (here, chunk by chunk, with zlib's
  ``max_length``), so neither a huge body nor a decompression bomb is ever held in memory.
  Over the cap: :class:`ResponseTooLarge` (an ``httpx.TransportError``) and the connection is
  dropped. Other encodings (``br``, ``zstd``, a list of codings) are never asked for (every
  request says ``Accept-Encoding: gzip, deflate``) and are refused unread (``httpx.DecodingError``):
  their decoders cannot be bounded, so a 16 KB brotli body could expand to gigabytes.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import urllib.request
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx

from .errors import ConfigurationError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "MAX_SIZE_EXTENSION",
    "AiohttpTransport",
    "DirectHeaders",
    "ResponseTooLarge",
    "SharedTransport",
    "env_proxies",
    "owned_client",
    "read_capped",
]

#: Connection limits of the client's own pool (per base URL).
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
)

#: The most a response body may hold, compressed and decompressed (each counted).
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024
#: The request extension carrying the cap (the pipeline sets it from the client's setting).
MAX_SIZE_EXTENSION: Final = "cliniko_async.max_response_size"

_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

#: Pools inherited across fork(): kept referenced (never finalized, never closed) in the child,
#: since closing them would act on the parent's sockets and event-loop selector.
_ORPHANS: list[object] = []


def env_proxies() -> dict[str, str]:
    """Proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``)."""
    return urllib.request.getproxies_environment()


class _LoopPool:
    """The connection pools bound to one running event loop: httpcore's, then aiohttp's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.httpcore: httpx.AsyncHTTPTransport | None = None
        self.session: aiohttp.ClientSession | None = None
        self.errors: tuple[type[BaseException], ...] = ()
        self.in_flight = 0  # on httpcore, before the switch
        self.sent = 0
        self.timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
        self.last_timeout: tuple[dict[str, float | None], aiohttp.ClientTimeout] | None = None
        self.closing = asyncio.Event()
        self.guard = loop.create_task(self._guard(), name="cliniko_async pool guard")

    def start_aiohttp(self, limits: httpx.Limits) -> aiohttp.ClientSession:
        import aiohttp  # lazily: 40-150 ms of import (its SSL context) off the first requests

        self.errors = (aiohttp.ClientError, asyncio.TimeoutError)
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # keys share pools: never carry cookies over
            auto_decompress=False,  # httpx.Response decodes Content-Encoding
            trust_env=False,  # proxies are read once below (trust_env reads .netrc per request)
            # No skip_auto_headers here: aiohttp then costs more on every request. A request
            # that needs it (see _skipped) names it.
        )
        # aiohttp resends an idempotent request once when the connection drops, inside one
        # limiter permit: one permit must be one request, and the pipeline retries itself.
        if hasattr(self.session, "_retry_connection"):
            self.session._retry_connection = False
        return self.session

    async def _guard(self) -> None:
        # Runs until aclose() or until the loop shuts down (asyncio.run / Runner cancel every
        # task before closing the loop): either way the pools close on their own loop.
        try:
            await self.closing.wait()
        finally:
            try:
                if self.session is not None:
                    await self.session.close()
            finally:
                try:
                    if self.httpcore is not None:
                        await self.httpcore.aclose()
                finally:
                    # asyncio closes a socket one loop iteration after its transport's close():
                    # let that happen before aclose() returns (no descriptor left for the GC).
                    for _ in range(2):
                        await asyncio.sleep(0)

    def timeout(self, spec: dict[str, float | None]) -> aiohttp.ClientTimeout:
        # The pipeline sends the same timeout dict with every request: found by identity.
        last = self.last_timeout
        if last is not None and last[0] is spec:
            return last[1]
        found = self._timeout(spec)
        self.last_timeout = (spec, found)
        return found

    def _timeout(self, spec: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"))
        found = self.timeouts.get(key)
        if found is None:
            import aiohttp

            connect, read, pool = key
            # aiohttp's `connect` covers waiting for a pooled connection and connecting.
            total_connect = None if connect is None or pool is None else connect + pool
            found = aiohttp.ClientTimeout(
                total=None, connect=total_connect, sock_connect=connect, sock_read=read
            )
            if len(self.timeouts) < 64:
                self.timeouts[key] = found
        return found

    async def aclose(self) -> None:
        self.closing.set()
        await asyncio.shield(self.guard)


_SSL_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def default_ssl_context() -> ssl.SSLContext:
    """The context ``verify=True`` means (certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``, as httpx builds it), made once per process and shared by every transport:
    loading the CA bundle costs ~16 ms of CPU and ~0.9 MB, which a client made per job (or per
    key) paid each time. An ``SSLContext`` may be shared by connections, loops and threads."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(key)
        if context is None:
            try:
                context = httpx.create_ssl_context(verify=True)
            except OSError as exc:  # (ssl.SSLError too) no CA file, or no file descriptor left
                # A transport error: the pipeline reports it as APIConnectionError, not sent.
                raise httpx.ConnectError(f"no CA certificates loaded: {exc}") from None
            _SSL_CONTEXTS[key] = context
    return context


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending with aiohttp (asyncio only).

    The first ``warm_up`` requests on an event loop go through httpcore (already imported with
    httpx) while fewer than 4 are in flight: a short script never pays for importing aiohttp.
    The first request beyond that switches the loop to aiohttp for good. ``warm_up=0``: aiohttp
    from the first request.

    ``verify`` is ``True`` (certifi's CA bundle, as httpx, or ``SSL_CERT_FILE``), ``False``,
    or an ``ssl.SSLContext``. Proxies come from the environment (``HTTPS_PROXY`` ...) as with
    httpx. Usable on its own: ``httpx.AsyncClient(transport=AiohttpTransport())``.
    """

    #: Requests in flight at which the switch to aiohttp happens even during the warm-up.
    WARM_UP_IN_FLIGHT: Final = 4

    def __init__(
        self,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: ssl.SSLContext | bool = True,
        warm_up: int = 16,
    ) -> None:
        self.limits = limits
        self.warm_up = warm_up
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._generation = _fork_generation
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._env_proxies: dict[str, str] | None = None
        self.is_closed = False

    def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        if self._generation == _fork_generation:
            pool = self._pools.get(loop)
            if pool is not None and not pool.guard.done():
                return pool
        else:  # a fork()ed child: the parent's pools are not ours to use or close
            _ORPHANS.append(self._pools)
            self._pools = {}
            self._generation = _fork_generation
        if self.is_closed:
            raise RuntimeError("the transport is closed")
        for old_loop in [other for other in self._pools if other.is_closed()]:
            # Closed without cancelling its tasks (no asyncio.run): nothing can be sent
            # through that pool any more; keep it from being finalized under a closed loop.
            _ORPHANS.append(self._pools.pop(old_loop))
        pool = self._pools[loop] = _LoopPool(loop)
        return pool

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self._verify is False:
            return False
        if self._ssl is None:
            self._ssl = (
                self._verify if isinstance(self._verify, ssl.SSLContext) else default_ssl_context()
            )
        return self._ssl

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        key = (scheme, host)
        try:
            return self._proxies[key]
        except KeyError:
            pass
        self._has_env_proxies()
        assert self._env_proxies is not None
        proxy: str | None = None
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if self._env_proxies and not bypass(host):
            proxy = self._env_proxies.get(scheme) or self._env_proxies.get("all")
        if len(self._proxies) < 256:
            self._proxies[key] = proxy
        return proxy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool()
        session = pool.session
        if session is None:
            if (
                pool.sent < self.warm_up
                and pool.in_flight < self.WARM_UP_IN_FLIGHT
                and not self._has_env_proxies()
            ):
                return await self._send_httpcore(pool, request)
            session = pool.start_aiohttp(self.limits)
        data: bytes | httpx.AsyncByteStream | None
        streamed = False
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body (an upload): sent as it is read
            data = request.stream  # type: ignore[assignment]
            streamed = True
        response = await self._exchange(
            pool,
            session,
            request.method,
            request.url,
            lambda: _aiohttp_headers(request, streamed=streamed),
            _skipped(request.method, {h[1] for h in request.headers._list}),
            data,
            request.extensions,
            lambda: request,
        )
        response.request = request
        return response

    async def send_direct(
        self,
        method: str,
        url: httpx.URL,
        params: tuple[tuple[str, str], ...] | None,
        content: bytes | None,
        credentials: DirectHeaders,
        extensions: dict[str, Any],
    ) -> httpx.Response | None:
        """The pipeline's request without an ``httpx.Request`` (None: send one instead).

        Once the loop's pool is on aiohttp, the request goes straight to it: ``credentials``
        hands over the headers as aiohttp takes them (built once), inside the call. An
        ``httpx.Request`` without the key is built only for an error or a compressed body;
        the response has none. Before the switch (httpcore): None.
        """
        pool = self._pool()
        session = pool.session
        if session is None:
            return None
        if params:
            url = httpx.URL(url, params=params)  # as httpx.Request(url, params=...) does

        def public() -> httpx.Request:  # for errors: the request as sent, without the key
            return httpx.Request(method, url, headers=credentials.public)

        response = await self._exchange(
            pool,
            session,
            method,
            url,
            lambda: credentials.aiohttp(content, method),
            # ours carry User-Agent, and Content-Type when there is a body
            ("Content-Type",) if content is None and method in _POST_METHODS else None,
            content or None,
            extensions,
            public,
        )
        response.is_closed = True  # read whole: nothing left to close
        return response

    async def _exchange(
        self,
        pool: _LoopPool,
        session: aiohttp.ClientSession,
        method: str,
        url: httpx.URL,
        headers: Callable[[], list[tuple[str, str]]],
        skip: tuple[str, ...] | None,
        data: bytes | httpx.AsyncByteStream | None,
        extensions: dict[str, Any],
        request: Callable[[], httpx.Request],
    ) -> httpx.Response:
        """One exchange on aiohttp, the body read under the cap (``request()``: for errors)."""
        scheme = url.scheme
        limit: int = extensions.get(MAX_SIZE_EXTENSION, DEFAULT_MAX_RESPONSE_SIZE)
        timeout = pool.timeout(extensions.get("timeout") or {})
        try:
            # The headers (the Authorization one included) are built inside the call: no local
            # of this frame holds them for a traceback that records frame locals.
            response = await session.request(
                method,
                _url_text(url),
                headers=headers(),
                skip_auto_headers=skip,
                data=data,
                allow_redirects=False,
                timeout=timeout,
                ssl=self._ssl_context() if scheme == "https" else True,
                proxy=self._proxy_for(scheme, url.host),
            )
            try:
                length = response.content_length
                if (
                    length is not None
                    and length <= limit
                    and "Content-Encoding" not in response.headers
                ):
                    # aiohttp reads exactly Content-Length bytes: already under the cap.
                    body = await response.read()
                else:
                    body = await _read_aiohttp(response, limit, request())
            except BaseException:
                response.close()  # the rest of the body is never read: drop the connection
                raise
            finally:
                response.release()
        except Exception as exc:
            if isinstance(exc, pool.errors):
                # Not chained: aiohttp's exception and its frames hold the request's headers.
                raise _map_error(exc, request()) from None
            raise
        result = httpx.Response(
            response.status,
            headers=_headers(response.raw_headers),
            stream=httpx.ByteStream(body),
            extensions=_response_extensions(response.reason),
        )
        # Identity, or gzip/deflate decoded here under the cap: the body is the content.
        # (Were httpx to rename the attribute, aread() would read the same bytes from the
        # stream: slower, not wrong; a compressed body would then be decoded twice.)
        result._content = body
        return result

    async def _send_httpcore(self, pool: _LoopPool, request: httpx.Request) -> httpx.Response:
        if pool.httpcore is None:
            pool.httpcore = httpx.AsyncHTTPTransport(limits=self.limits, verify=self._ssl_context())
        pool.sent += 1
        pool.in_flight += 1
        try:
            response = await pool.httpcore.handle_async_request(request)
            try:
                limit = request.extensions.get(MAX_SIZE_EXTENSION, DEFAULT_MAX_RESPONSE_SIZE)
                await read_capped(response, limit, request)
            finally:
                await response.aclose()
        finally:
            pool.in_flight -= 1
        return response

    def _has_env_proxies(self) -> bool:
        if self._env_proxies is None:
            self._env_proxies = env_proxies()
        return bool(self._env_proxies)

    async def aclose(self) -> None:
        """Close every pool this process opened (each on its own loop)."""
        self.is_closed = True
        if self._generation != _fork_generation:
            _ORPHANS.append(self._pools)
            self._pools = {}
            return
        pools, self._pools = self._pools, {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, pool in pools.items():
            if loop is current:
                await pool.aclose()
            elif not loop.is_closed() and not pool.guard.done():
                loop.call_soon_threadsafe(pool.closing.set)  # its own loop closes it
            elif not pool.guard.done():
                _ORPHANS.append(pool)

    @property
    def pools(self) -> int:
        """How many event loops have a pool open in this process."""
        return sum(1 for pool in self._pools.values() if not pool.guard.done())


class DirectHeaders(Protocol):
    """What :meth:`AiohttpTransport.send_direct` needs from the pipeline's credentials."""

    @property
    def public(self) -> httpx.Headers:
        """The request's headers without the key (for an error's request)."""
        ...

    def aiohttp(self, content: bytes | None, method: str) -> list[tuple[str, str]]:
        """The headers of a ``method`` request with ``content``, key included, as aiohttp
        takes them."""
        ...


class ResponseTooLarge(httpx.TransportError):
    """A response body over the cap, compressed or decompressed (reading stopped there)."""

    def __init__(self, limit: int, request: httpx.Request) -> None:
        super().__init__(f"the response body is larger than {limit} bytes", request=request)
        self.limit = limit


#: str() of the URLs without a query the pipeline sends (it builds each once and reuses it),
#: by the identity of the parsed URL httpx shares between a URL and its copies (the entry
#: holds it: its id is not reused while it is cached).
_URL_TEXTS: dict[int, tuple[object, str]] = {}


def _url_text(url: httpx.URL) -> str:
    parsed = url._uri_reference
    found = _URL_TEXTS.get(id(parsed))
    if found is not None and found[0] is parsed:
        return found[1]
    text = str(url)
    if parsed.query is None:  # with a query (pages, filters): seldom the same twice
        if len(_URL_TEXTS) >= 4096:
            _URL_TEXTS.clear()
        _URL_TEXTS[id(parsed)] = (parsed, text)
    return text


#: The methods aiohttp gives a ``Content-Type: application/octet-stream`` when they have none.
_POST_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def _skipped(method: str, present: set[bytes]) -> tuple[str, ...] | None:
    """The headers aiohttp must not add to a request with these (lower-case) header names:
    no User-Agent of its own, no Content-Type on a request without a body (``POST
    .../archive``): what httpx sends. None (aiohttp's fast path) when there are none."""
    skip: tuple[str, ...] = ()
    if b"user-agent" not in present:
        skip += ("User-Agent",)
    if b"content-type" not in present and method in _POST_METHODS:
        skip += ("Content-Type",)
    return skip or None


def _headers(raw: tuple[tuple[bytes, bytes], ...]) -> httpx.Headers:
    """aiohttp's raw response headers as ``httpx.Headers`` (what ``Headers(raw)`` builds, from
    byte pairs, without checking each name and value for str)."""
    headers = httpx.Headers()
    headers._list = [(name, name.lower(), value) for name, value in raw]
    return headers


#: reason phrase -> the response extensions httpx would hold for it (a handful of phrases).
_EXTENSIONS: dict[str | None, dict[str, Any]] = {}


def _response_extensions(reason: str | None) -> dict[str, Any]:
    found = _EXTENSIONS.get(reason)
    if found is None:
        found = {"http_version": b"HTTP/1.1"}
        if reason:
            found["reason_phrase"] = reason.encode("ascii", "replace")
        if len(_EXTENSIONS) < 64:
            _EXTENSIONS[reason] = found
    return found  # httpx.Response copies it


def _aiohttp_headers(request: httpx.Request, *, streamed: bool) -> list[tuple[str, str]]:
    raw = request.headers._list  # (name, lower-case name, value), as httpx keeps them
    if streamed:  # aiohttp keeps Content-Length when there is one, and chunks the body otherwise
        raw = [h for h in raw if h[1] != b"transfer-encoding"]
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, _, v in raw]


#: The most one zlib call may produce (the output buffer it builds).
_STEP: Final = 1 << 20


class _Body:
    """A response body collected under a cap, gzip/deflate decoded as it arrives.

    Both the bytes received and the bytes decoded count against ``limit``; zlib is asked for
    at most what still fits (``max_length``), so a decompression bomb stops at the cap.
    Any other encoding (``br``, ``zstd``, a list of codings) was not asked for: refused unread.
    """

    __slots__ = ("_inflate", "_raw", "_wbits", "chunks", "limit", "request", "size")

    def __init__(self, encoding: str | None, limit: int, request: httpx.Request) -> None:
        self.limit = limit
        self.request = request
        self.chunks: list[bytes] = []
        self.size = 0  # bytes kept (decoded when decoding)
        self._raw = 0  # bytes received
        self._inflate: Any = None
        self._wbits = 0
        coding = (encoding or "").strip().lower()
        if coding in ("gzip", "x-gzip"):
            self._wbits = zlib.MAX_WBITS | 16
        elif coding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped; raw deflate tried if that fails
        elif coding not in ("", "identity"):
            raise httpx.DecodingError(
                f"Content-Encoding {coding[:40]!r} was not asked for (this client accepts gzip "
                "and deflate only): not decoded"
            )
        if self._wbits:
            self._inflate = zlib.decompressobj(self._wbits)

    def _too_large(self) -> ResponseTooLarge:
        return ResponseTooLarge(self.limit, self.request)

    def feed(self, data: bytes) -> None:
        self._raw += len(data)
        if self._raw > self.limit:
            raise self._too_large()
        if self._inflate is not None:
            data = self._decompress(data)
            self.size += len(data)
            if self.size > self.limit:
                raise self._too_large()
        else:
            self.size = self._raw
        if data:
            self.chunks.append(data)

    def _decompress(self, data: bytes) -> bytes:
        # At most _STEP bytes per zlib call (a bomb's 64 KB chunk can expand to gigabytes, and
        # one call asked for the whole room would build a buffer that size), never past the cap.
        inflate = self._inflate
        room = self.limit - self.size
        pieces: list[bytes] = []
        produced = 0
        received = data
        try:
            while True:
                piece = inflate.decompress(data, min(room - produced + 1, _STEP))
                produced += len(piece)
                if produced > room:
                    raise self._too_large()
                pieces.append(piece)
                data = inflate.unconsumed_tail
                if not data and len(piece) < _STEP:
                    break
        except zlib.error as exc:
            if self._wbits == zlib.MAX_WBITS and not (self.size or self.chunks or produced):
                # "deflate" sent as raw deflate (without the zlib wrapper): as httpx does.
                self._wbits = -zlib.MAX_WBITS
                self._inflate = zlib.decompressobj(self._wbits)
                return self._decompress(received)
            raise httpx.DecodingError(f"bad {self._coding()} body: {exc}") from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _coding(self) -> str:
        return "gzip" if self._wbits & 16 else "deflate"

    def finish(self) -> bytes:
        if self._inflate is not None:
            try:
                rest = self._inflate.flush()
            except zlib.error as exc:
                raise httpx.DecodingError(f"bad {self._coding()} body: {exc}") from None
            self.size += len(rest)
            if self.size > self.limit:
                raise self._too_large()
            if rest:
                self.chunks.append(rest)
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_aiohttp(
    response: aiohttp.ClientResponse, limit: int, request: httpx.Request
) -> bytes:
    """The body read under the cap. Identity with a Content-Length: one read()."""
    length = response.content_length
    if length is not None and length > limit:
        raise ResponseTooLarge(limit, request)
    encoding = response.headers.get("Content-Encoding")
    if encoding is None and length is not None:
        return await response.read()  # aiohttp reads exactly Content-Length bytes
    body = _Body(encoding, limit, request)
    async for chunk in response.content.iter_any():
        body.feed(chunk)
    return body.finish()


async def read_capped(response: httpx.Response, limit: int, request: httpx.Request) -> None:
    """Read an httpx response's body under the cap (like ``aread()``, which it replaces).

    Raises :class:`ResponseTooLarge` once more than ``limit`` bytes arrived or were decoded.
    """
    try:
        content = response._content
    except AttributeError:
        pass
    else:  # read already (an in-memory response)
        if len(content) > limit:
            raise ResponseTooLarge(limit, request)
        return
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ResponseTooLarge(limit, request)
    body = _Body(response.headers.get("Content-Encoding"), limit, request)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
    response._content = body.finish()


def _map_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's exception as the httpx one the pipeline classifies (sent or not, timeout)."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    cls: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connecting, or waiting for the pool
        cls = httpx.ConnectTimeout
    elif isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError: reading the response
        cls = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientProxyConnectionError):
        cls = httpx.ProxyError
    elif isinstance(exc, aiohttp.ClientConnectorError):  # never connected: nothing was sent
        cls = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        cls = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientPayloadError):
        cls = httpx.ReadError
    elif isinstance(exc, aiohttp.InvalidURL | ValueError):
        cls = httpx.UnsupportedProtocol
    else:
        cls = httpx.NetworkError
    return cls(message, request=request)


def owned_client(
    timeout: float | httpx.Timeout,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> tuple[httpx.AsyncClient, httpx.AsyncBaseTransport]:
    """A client of our own: (an ``httpx.AsyncClient`` for uploads, the transport requests use).

    Closing the client closes the transport. ``transport`` defaults to an :class:`AiohttpTransport`.
    """
    if transport is None:
        transport = AiohttpTransport(limits=limits)
    elif not isinstance(transport, httpx.AsyncBaseTransport):
        raise ConfigurationError(
            f"transport must be an httpx.AsyncBaseTransport, got {type(transport).__name__}"
        )
    return httpx.AsyncClient(transport=transport, timeout=timeout), transport


class SharedTransport(httpx.AsyncBaseTransport):
    """Lends a transport to several clients; closing them leaves it open (its owner closes it)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        pass
