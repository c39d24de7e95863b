"""The blocking, thread-safe client, :class:`SyncCliniko`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from anyio.from_thread import start_blocking_portal

from ._client import Cliniko
from ._limiter import LimiterBackend, RateLimit
from ._session import Session
from .errors import ClinikoError
from .resources import SyncResources

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["SyncCliniko", "SyncInAsyncContextError"]

T = TypeVar("T")
#: How long an interrupted call waits for its request to unwind in the loop thread.
UNWIND_TIMEOUT = 5.0


class SyncInAsyncContextError(ClinikoError, RuntimeError):
    """SyncCliniko was called from a thread that runs an event loop (it would block the loop)."""


class _CheckedPortal:
    """Wraps the portal: refuses calls from event-loop threads and after close."""

    def __init__(self, portal: BlockingPortal, owner: SyncCliniko) -> None:
        self._portal = portal
        self._owner = owner

    def call(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        if self._owner._closed:
            raise ClinikoError("this SyncCliniko is closed: create a new one")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise SyncInAsyncContextError(
                "SyncCliniko was called from inside a running event loop, where it would block "
                "the loop: in async code use cliniko_async.Cliniko and await its methods"
            )
        finished = threading.Event()

        async def run() -> T:
            try:
                return await func(*args)
            finally:
                finished.set()

        future = self._portal.start_task_soon(run)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt (or SystemExit) in the calling thread: cancel the request in
            # the loop thread and wait for it to unwind, so no task or connection is left.
            if future.cancel():
                finished.wait(UNWIND_TIMEOUT)
            raise


class SyncCliniko(SyncResources):
    """A blocking Cliniko client, safe to share between threads.

    One event-loop thread runs every request, so all threads share one rate limiter per key and
    one connection pool. Lists are plain iterators::

        with SyncCliniko(api_key=key, user_agent="Acme Sync (dev@acme.example)") as cliniko:
            for patient in cliniko.patients.list():
                ...
    """

    def __init__(
        self,
        *,
        api_key: str,
        user_agent: str,
        base_url: str | None = None,
        shard: str | None = None,
        rate_limit: RateLimit | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 2,
        limiter: LimiterBackend | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._closed = False
        self._lock = threading.Lock()
        # Validate everything before starting the loop thread.
        http = (
            httpx.AsyncClient(transport=transport, timeout=timeout)
            if transport is not None
            else None
        )
        self._async = Cliniko(
            api_key=api_key,
            user_agent=user_agent,
            base_url=base_url,
            shard=shard,
            rate_limit=rate_limit,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http,
            limiter=limiter,
        )
        self._owned_http = http
        self._portal_cm = start_blocking_portal()
        self._raw_portal = self._portal_cm.__enter__()
        self._checked = _CheckedPortal(self._raw_portal, self)
        self._resource_host = self

    # ResourceHost protocol
    @property
    def _session(self) -> Session:
        return self._async._session

    @property
    def _portal(self) -> BlockingPortal:
        return self._checked  # type: ignore[return-value]

    @property
    def base_url(self) -> str:
        """The base URL every request goes to."""
        return self._async.base_url

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """Send a raw request through the pipeline; return its JSON."""
        return self._checked.call(
            lambda: self._async.request(method, path, params=params, json=json)
        )

    def close(self) -> None:
        """Close the connection pool and stop the loop thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._raw_portal.call(self._async.aclose)
                if self._owned_http is not None:
                    self._raw_portal.call(self._owned_http.aclose)
            finally:
                self._closed = True
                with contextlib.suppress(Exception):
                    self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        key = self._session.config.api_key.fingerprint
        return f"<SyncCliniko base_url={self.base_url!r} key={key}>"
