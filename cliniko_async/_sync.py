"""The blocking, thread-safe client, :class:`SyncCliniko`.

Every request runs on one event loop in a daemon thread of our own (not anyio's blocking portal,
whose context manager, left open by a client nobody closed, kept the interpreter from exiting).

- **Exit**: a ``weakref.finalize`` per client closes its pool and stops its loop thread when the
  client is garbage-collected or, at the latest, when the interpreter exits (after the program's
  own non-daemon threads have been joined), each step bounded, so a script that never closes its
  client still exits promptly and without warnings.
- **Fork**: a loop thread belongs to the process that started it; after ``fork()`` (gunicorn
  ``--preload``, multiprocessing) the child starts a fresh one on its first call. The parent's
  loop is left alone in the child (it is the parent's). Across processes nothing is shared but
  what lives in Redis: a key's budget is one per process unless it goes through
  :class:`cliniko_async.redis.RedisLimiterBackend`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack

from ._client import Cliniko
from ._limiter import RateLimit
from ._options import ClientOptions, RequestSettings, keyword_error, signature
from ._session import Session
from .errors import ClientClosedError, ClinikoError
from .resources import SyncResources

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["SyncCliniko", "SyncInAsyncContextError"]

T = TypeVar("T")
#: How long an interrupted call waits for its request to unwind in the loop thread.
UNWIND_TIMEOUT = 5.0
#: How long closing (or exiting with an unclosed client) waits for the pool to close and for
#: the loop thread to stop: each step is bounded so that exit is never held up for long.
SHUTDOWN_TIMEOUT = 1.0


class SyncInAsyncContextError(ClinikoError, RuntimeError):
    """SyncCliniko was called from a thread that runs an event loop (it would block the loop)."""


class _LoopThread:
    """An asyncio event loop running forever in a daemon thread of the process that made it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        try:
            self.loop = asyncio.new_event_loop()
        except OSError as exc:  # out of file descriptors (the loop's selector and self-pipe)
            raise _no_thread(exc) from None
        self._lock = threading.Lock()  # orders submit() against stop()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name="cliniko-sync-loop", daemon=True)
        try:
            self.thread.start()
        except RuntimeError as exc:  # "can't start new thread": out of threads
            self.loop.close()
            raise _no_thread(exc) from None

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        # Under the lock, so that a call racing close() either runs before the loop stops (its
        # task is then cancelled and awaited by _run) or is refused: never queued on a loop
        # that will not run it.
        with self._lock:
            if self._stopping:
                coro.close()
                raise ClientClosedError("this SyncCliniko is closed: create a new one")
            return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the loop; wait (bounded) for its thread unless called from that thread."""
        if self.pid != os.getpid():
            return  # the parent's loop: not ours to touch in a forked child
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_loop_thread():
            self.thread.join(SHUTDOWN_TIMEOUT + 1.0)


def _no_thread(exc: BaseException) -> ClinikoError:
    return ClinikoError(
        f"SyncCliniko could not start its event-loop thread ({exc}): the process is out of "
        "file descriptors or threads. Each SyncCliniko has one thread; for many keys share "
        "one (with_options) or use ClinikoAccounts from async code"
    )


class _Runtime:
    """What a SyncCliniko and its ``with_options`` views share: the loop thread and the client.

    Holds no reference to any SyncCliniko, so that a client nobody closed can be collected.
    """

    def __init__(self, root: Cliniko) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.loop_thread: _LoopThread | None = None
        self.closed = False
        # The loop threads of the parent, left behind in a forked child. Kept referenced so
        # that their loops (never closed here: they are the parent's) are not collected with a
        # "unclosed event loop" ResourceWarning.
        self.abandoned: list[_LoopThread] = []

    def current(self) -> _LoopThread:
        """This process's loop thread, started on first use (and again after a fork)."""
        lt = self.loop_thread
        if lt is not None and lt.pid == os.getpid():
            return lt
        with self.lock:
            if self.closed:
                raise ClientClosedError("this SyncCliniko is closed: create a new one")
            lt = self.loop_thread
            if lt is None or lt.pid != os.getpid():
                if lt is not None:
                    self.abandoned.append(lt)
                lt = self.loop_thread = _LoopThread()
            return lt

    def after_fork_in_child(self) -> None:
        # A lock held by another thread of the parent at fork time stays held forever in the
        # child; nobody else runs in the child yet, so a fresh one is safe.
        self.lock = threading.Lock()

    def shutdown(self) -> None:
        """Close the pool and stop the loop thread (idempotent; bounded; any thread)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            lt, self.loop_thread = self.loop_thread, None
        if lt is None or lt.pid != os.getpid():
            return  # nothing started in this process: the pool holds no connection
        if lt.in_loop_thread():  # collected on the loop thread itself: cannot wait here
            task = lt.loop.create_task(self.root.aclose())
            task.add_done_callback(lambda _: lt.stop())
            return
        try:
            lt.submit(self.root.aclose()).result(SHUTDOWN_TIMEOUT)
        except Exception:  # noqa: S110 - closing is best effort; the loop is stopped below
            pass
        finally:
            lt.stop()


# Every live runtime, so a forked child can reset their locks.
_RUNTIMES: weakref.WeakSet[_Runtime] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runtime in list(_RUNTIMES):
        runtime.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Caller:
    """Runs coroutines on the loop thread for one client view; ``call`` is all resources use."""

    def __init__(self, owner: SyncCliniko) -> None:
        self._owner = weakref.ref(owner)

    def call(self, func: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        finished = threading.Event()

        async def run() -> T:
            try:
                return await func(*args)
            finally:
                finished.set()

        try:
            owner = self._owner()
            if owner is None or owner._closed or owner._runtime.closed:
                raise ClientClosedError("this SyncCliniko is closed: create a new one")
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise SyncInAsyncContextError(
                    "SyncCliniko was called from inside a running event loop, where it would "
                    "block the loop: in async code use cliniko_async.Cliniko and await its methods"
                )
            future = owner._runtime.current().submit(run())
        except ClinikoError:
            for arg in args:  # a coroutine made for this call: never run, close it quietly
                if inspect.iscoroutine(arg):
                    arg.close()
            raise
        del owner  # do not keep the client alive while blocked (it may be collected meanwhile)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            # The client was closed (its loop stopped) while this call was running.
            raise ClientClosedError("this SyncCliniko was closed during the call") from None
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

    The loop thread starts on the first request. A client that is never closed does not keep
    the interpreter from exiting: its pool is closed and its thread stopped at exit. A client
    created before ``fork()`` works in the child (a fresh loop thread, started there on first
    use); processes share a key's budget only through
    :class:`cliniko_async.redis.RedisLimiterBackend`.

    Takes :class:`~cliniko_async.Cliniko`'s arguments: ``transport`` (an
    ``httpx.AsyncBaseTransport``, closed with the client) or ``http_client`` (your own
    ``httpx.AsyncClient``: yours to close, and not fork-safe: after ``fork()`` give the child
    its own) replace the client's own pool, which is rebuilt in a forked child.
    """

    @signature(before={"api_key": str, "shard": (str | None, None)})
    def __init__(
        self, *, api_key: str, shard: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        # Validates everything (http_client and transport included) before any thread starts.
        problem = keyword_error("SyncCliniko", options)
        if problem is not None:
            del api_key, shard, options  # not in the traceback's frame locals
            raise problem
        try:
            client = Cliniko(api_key=api_key, shard=shard, **options)
        finally:
            # Not kept for a traceback that records frame locals (a key pasted into any).
            del api_key, shard, options
        runtime = _Runtime(client)
        _RUNTIMES.add(runtime)
        self._setup(client, runtime)
        # Closes the pool and stops the loop thread if this client is collected unclosed, and
        # at interpreter exit (weakref.finalize runs the pending ones from atexit).
        self._finalizer: weakref.finalize[[], SyncCliniko] | None = weakref.finalize(
            self, runtime.shutdown
        )

    def _setup(self, client: Cliniko, runtime: _Runtime) -> None:
        self._async = client
        self._runtime = runtime
        self._closed = False
        self._caller = _Caller(self)
        self._resource_host = self

    # ResourceHost protocol
    @property
    def _session(self) -> Session:
        return self._async._session

    @property
    def _portal(self) -> BlockingPortal:
        return self._caller  # type: ignore[return-value]  # only .call() is used

    @property
    def base_url(self) -> str:
        """The base URL every request goes to."""
        return self._async.base_url

    @property
    def rate_limit(self) -> RateLimit:
        """The key's rate limit."""
        return self._async.rate_limit

    @signature()
    def with_options(self, **options: Unpack[RequestSettings]) -> SyncCliniko:
        """A client sharing this one's loop thread, pool and limiter, with other settings.

        ``cliniko.with_options(timeout=5, max_retries=0).patients.get(1)``: the keywords of
        :meth:`Cliniko.with_options <cliniko_async.Cliniko.with_options>`. Closing the view
        only closes the view; closing the client it came from closes both.
        """
        clone = SyncCliniko.__new__(SyncCliniko)
        clone._setup(self._async.with_options(**options), self._runtime)
        clone._finalizer = None
        return clone

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """Send a raw request through the pipeline; return its JSON."""
        return self._caller.call(
            lambda: self._async.request(method, path, params=params, json=json)
        )

    def close(self) -> None:
        """Close the connection pool and stop the loop thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()  # runtime.shutdown(), once
            return
        # A with_options view: close the view only (its session refuses new requests).
        self._async._session.close()

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
        if getattr(self, "_async", None) is None:  # a constructor that raised
            return "<SyncCliniko (not constructed)>"
        key = self._session.config.api_key.fingerprint
        return f"<SyncCliniko base_url={self.base_url!r} key={key}>"
