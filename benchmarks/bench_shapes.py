"""Issue 13 item 5 (DESIGN target 1 "in every deployment shape"): one key, one budget, per shape.

The fake Cliniko is served on loopback behind :class:`Recorder`, an ASGI middleware that adds a
random latency each way and records, for every request, who sent it (our client or an outside
one, told apart by User-Agent), when it left (the client's stamp where it has one, else when it
reached the server), when it arrived (when the fake counts it), its status and, for a 429 to
our client, the pause the server announced (the reset as a local clock time). Per shape it
prints the most of our requests in any window (429'd ones included) against the limit, 429s,
arrivals inside announced pauses, the share of the limit used over the whole periods of the
run, errors and hangs.

An arrival inside a pause counts against us when it was sent after our client had received
that 429 (its stamp, taken by a transport wrapper, where the shape has one); requests sent
after the server produced the 429 but before it reached the client (in flight on the way
back) are shown apart: no client can know of a 429 before it arrives.

Shapes where our client is the key's only user must show at most ``limit`` in any window,
zero 429s, >= 0.95 of the limit and no hang. Shapes with an outside client on the key (a raw
httpx loop; 429s expected) must show no arrival inside an announced pause and no hang; the
429-header variants rewrite the 429s our client gets (no ``Date``, ``Date`` an hour ahead, a
reset in the past, a reset further than the client waits, ``Retry-After`` in seconds or as an
HTTP date, with and without ``Date``).

Real time, compressed: ``RateLimit(50, 1.5)``, 6 periods per main shape, 4 per outside-client
shape. ``python -m benchmarks.bench_shapes``; tests/test_shapes.py runs the same shapes
shorter.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import contextlib
import dataclasses
import email.utils
import itertools
import math
import multiprocessing
import random
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from cliniko_async import Cliniko, ClinikoError, RateLimit, SyncCliniko
from cliniko_async._limiter import LocalLimiterBackend
from cliniko_async.testing import DEFAULT_USER_AGENT, FakeCliniko, KeyStats, serve
from cliniko_async.testing._redis_server import RedisServer

from ._common import result, whole_periods_used

OUTSIDE_UA = "Outside App (ops@outside.example)"
#: How long past its deadline a shape may run before its workers count as hung.
HANG_GRACE = 20.0
#: The 429 header variants: how the 429s our client gets are rewritten.
REWRITES = (
    "no-date",
    "date-hour-ahead",
    "reset-in-past",
    "reset-beyond-max-wait",
    "retry-after-seconds",
    "retry-after-seconds-no-date",
    "retry-after-http-date",
    "retry-after-http-date-no-date",
)
#: Further ahead than the client waits (RequestOptions.max_rate_limit_wait, 120 s by default).
FAR_RESET = 130
#: Seconds the header variants add to the fake's reset (see Recorder._on_429).
STRETCH = 2

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


@dataclass(frozen=True)
class Params:
    limit: int = 50
    period: float = 1.5
    periods: int = 6
    latency: tuple[float, float] = (0.001, 0.015)  # each way, uniform
    window: Literal["rolling", "fixed"] = "rolling"
    seed: int = 1

    @property
    def rate_limit(self) -> RateLimit:
        return RateLimit(self.limit, self.period)

    @property
    def seconds(self) -> float:
        return self.periods * self.period


# -- the server side ------------------------------------------------------------------------


@dataclass
class Entry:
    """One request as the server saw it."""

    who: str
    sent: float
    arrived: float
    rid: str | None
    status: int = 0
    produced: float = math.nan  # when the fake produced the response
    responded: float = math.nan  # when it left the server (after the latency back)
    announced: float = math.nan  # a 429 to our client: the reset it announced (monotonic)


class Recorder:
    """ASGI middleware in front of the fake: latency each way, arrivals, 429 rewrites."""

    def __init__(self, app: ASGIApp, params: Params, rewrite: str | None = None) -> None:
        self.app = app
        self.params = params
        self.rewrite = rewrite
        self.rng = random.Random(params.seed)
        self.entries: list[Entry] = []

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        who = "ours" if headers.get(b"user-agent") == DEFAULT_USER_AGENT.encode() else "outside"
        entered = time.monotonic()
        stamp = headers.get(b"x-shape-sent")
        rid = headers.get(b"x-shape-id")
        lo, hi = self.params.latency
        await asyncio.sleep(self.rng.uniform(lo, hi))
        entry = Entry(
            who,
            sent=float(stamp) if stamp else entered,
            arrived=time.monotonic(),
            rid=rid.decode() if rid else None,
        )
        self.entries.append(entry)

        async def send_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.produced = time.monotonic()
                entry.status = message["status"]
                if entry.status == 429 and who == "ours":
                    message = self._on_429(message, entry)
                await asyncio.sleep(self.rng.uniform(lo, hi))
                entry.responded = time.monotonic()
            await send(message)

        await self.app(scope, receive, send_back)

    def _on_429(self, message: Message, entry: Entry) -> Message:
        headers = [(k.lower(), v) for k, v in message.get("headers", [])]
        found = dict(headers)
        now_wall = time.time()
        reset = int(found[b"x-ratelimit-reset"])
        kind = self.rewrite
        if kind is None:
            entry.announced = entry.produced + (reset - now_wall)
            return message
        # The variants announce a pause longer than the fake's window needs (a server may), so
        # that a client which ignores the header and backs off instead (0.5-1 s) shows.
        reset += STRETCH
        announced: float | None = reset  # wall clock; None: the headers announce no pause
        new_reset: int | None = reset
        retry_after: str | None = None
        date = found.get(b"date")
        if kind == "date-hour-ahead":  # the reset is right, the Date an hour ahead
            date = email.utils.formatdate(now_wall + 3600, usegmt=True).encode()
            announced = None
        elif kind == "reset-in-past":
            new_reset, announced = int(now_wall) - 30, None
        elif kind == "reset-beyond-max-wait":
            new_reset = int(now_wall) + FAR_RESET
            announced = new_reset
        elif kind.startswith("retry-after"):
            new_reset = None
            if kind.startswith("retry-after-seconds"):
                seconds = max(1, math.ceil(reset - now_wall))
                retry_after, announced = str(seconds), now_wall + seconds
            else:
                retry_after = email.utils.formatdate(reset, usegmt=True)
        if kind.endswith("no-date"):
            date = None
        entry.announced = entry.produced + (announced - now_wall if announced is not None else 0.0)
        out = [(k, v) for k, v in headers if k not in (b"date", b"x-ratelimit-reset")]
        if date is not None:
            out.append((b"date", date))
        if new_reset is not None:
            out.append((b"x-ratelimit-reset", str(new_reset).encode()))
        if retry_after is not None:
            out.append((b"retry-after", retry_after.encode()))
        return {**message, "headers": out}


# -- what a shape returns, and the analysis -----------------------------------------------------


@dataclass
class Run:
    """What the clients of a shape report."""

    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    hung: int = 0
    cancelled: int = 0  # still queued two periods after the deadline: cancelled, not hung
    received_429: dict[str, float] = field(default_factory=dict)  # stamped clients only
    paused_at: list[float] = field(default_factory=list)  # when our client paused the key

    def add(self, other: Run) -> None:
        self.ok += other.ok
        self.errors.update(other.errors)
        self.hung += other.hung
        self.cancelled += other.cancelled
        self.received_429.update(other.received_429)


@dataclass
class Outcome:
    shape: str
    params: Params
    only_user: bool
    max_in_window: int
    ours_429: int
    outside_429: int
    in_pause: int
    in_flight_back: int
    fraction: float
    run: Run
    elapsed: float

    @property
    def met(self) -> bool:
        if self.run.hung:
            return False
        if self.only_user:
            return (
                self.max_in_window <= self.params.limit
                and self.ours_429 == 0
                and self.fraction >= 0.95
                and not self.run.errors
            )
        # With an outside client, only a reset beyond what the client waits may fail requests.
        return self.in_pause == 0 and set(self.run.errors) <= {"RateLimitError"}

    def line(self) -> str:
        frac = f"{self.fraction:.3f}" if self.only_user else "  -  "
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.run.errors.items())) or "none"
        return (
            f"{self.shape:<38} max {self.max_in_window:>3}/{self.params.limit}"
            f"  429s {self.ours_429:>4} (outside {self.outside_429:>4})"
            f"  in pauses {self.in_pause:>3} (+{self.in_flight_back} in flight back)"
            f"  of limit {frac}  hung {self.run.hung}  ok {self.run.ok}"
            f"{f'  cancelled {self.run.cancelled}' if self.run.cancelled else ''}  errors: {errors}"
            f"  [{'met' if self.met else 'MISSED'}] {self.elapsed:.1f} s"
        )


def analyse(
    shape: str, params: Params, entries: list[Entry], run: Run, only_user: bool, elapsed: float
) -> Outcome:
    ours = [e for e in entries if e.who == "ours"]
    arrivals = sorted(e.arrived for e in ours)
    window = KeyStats(params.period, params.window, arrivals).max_in_window if arrivals else 0
    rejected = [e for e in ours if e.status == 429]
    # A pause is known to our client from the moment it paused the key (where the shape notes
    # it), else from when it had the 429.
    paused_at = sorted(run.paused_at)

    def known(e: Entry) -> float:
        received = run.received_429.get(e.rid or "", e.responded)
        i = bisect.bisect_left(paused_at, received)
        return paused_at[i] if i < len(paused_at) else received

    pauses = sorted(
        (known(e), e.produced, e.announced) for e in rejected if not math.isnan(e.announced)
    )
    known_at = [p[0] for p in pauses]
    until = list(itertools.accumulate((p[2] for p in pauses), max))
    produced_at = sorted((p[1], p[2]) for p in pauses)
    produced_times = [p[0] for p in produced_at]
    produced_until = list(itertools.accumulate((p[1] for p in produced_at), max))
    in_pause = in_flight_back = 0
    for e in ours:
        i = bisect.bisect_left(known_at, e.sent)
        if i and until[i - 1] > e.arrived:
            in_pause += 1
            continue
        j = bisect.bisect_left(produced_times, e.sent)
        if j and produced_until[j - 1] > e.arrived:
            in_flight_back += 1
    accepted = sorted(e.arrived for e in ours if e.status and e.status != 429)
    fraction = 0.0
    if len(accepted) > params.limit:
        # The lower of: the share of the k whole periods from the first request that was used,
        # and the rate sustained over the first m * limit requests (as bench_sync measures).
        used, k = whole_periods_used(accepted, params.period)
        m = (len(accepted) - 1) // params.limit
        sustained = m * params.period / (accepted[m * params.limit] - accepted[0])
        fraction = min(used / (k * params.limit), sustained) if k else 0.0
    return Outcome(
        shape=shape,
        params=params,
        only_user=only_user,
        max_in_window=window,
        ours_429=len(rejected),
        outside_429=sum(1 for e in entries if e.who == "outside" and e.status == 429),
        in_pause=in_pause,
        in_flight_back=in_flight_back,
        fraction=fraction,
        run=run,
        elapsed=elapsed,
    )


# -- clients ------------------------------------------------------------------------------------


def new_key() -> str:
    """A key of its own per shape: a fresh budget, and no clash with another rate_limit."""
    return f"shape{uuid.uuid4().hex}-au1"


class Stamping(httpx.AsyncBaseTransport):
    """Stamps each request with an id and the time it left; notes when our client had a 429 in
    hand (its body read: httpx returns a response to the client only then)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.ids = itertools.count()
        self.received_429: dict[str, float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rid = str(next(self.ids))
        request.headers["x-shape-id"] = rid
        request.headers["x-shape-sent"] = repr(time.monotonic())
        response = await self.inner.handle_async_request(request)
        if response.status_code != 429:
            return response

        def read() -> None:
            self.received_429[rid] = time.monotonic()

        return httpx.Response(
            429,
            headers=response.headers,
            stream=_ThenCall(response.stream, read),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _ThenCall(httpx.AsyncByteStream):
    """A response body that calls ``then()`` once it has been read to the end."""

    def __init__(self, inner: Any, then: Callable[[], None]) -> None:
        self.inner = inner
        self.then = then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk
        self.then()

    async def aclose(self) -> None:
        await self.inner.aclose()


class PauseLog:
    """The default limiter backend, noting when our client paused the key: from then on the
    client knows of the 429 (requests it admitted before that were already on their way)."""

    def __init__(self) -> None:
        self.inner = LocalLimiterBackend()
        self.times: list[float] = []

    def limiter_for(self, fingerprint: str, rate_limit: RateLimit) -> Any:
        return _Noting(self.inner.limiter_for(fingerprint, rate_limit), self.times)


class _Noting:
    def __init__(self, inner: Any, times: list[float]) -> None:
        self._inner = inner
        self._times = times
        self.rate_limit = inner.rate_limit

    async def acquire(self, *args: Any) -> Any:
        return await self._inner.acquire(*args)

    def pause(self, seconds: float, *args: Any, **kwargs: Any) -> None:
        self._times.append(time.monotonic())
        self._inner.pause(seconds, *args, **kwargs)

    def paused_for(self) -> float:
        return float(self._inner.paused_for())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def cliniko(url: str, key: str, params: Params, **kwargs: Any) -> Cliniko:
    return Cliniko(
        api_key=key,
        user_agent=DEFAULT_USER_AGENT,
        base_url=url,
        rate_limit=params.rate_limit,
        **kwargs,
    )


async def get_until(client: Cliniko, deadline: float, run: Run) -> None:
    """One worker: GETs back to back until the deadline; stops at its first error (a failed
    job), so fail-fast errors do not spin."""
    n = 0
    while time.monotonic() < deadline:
        try:
            await client.patients.get(1 + n % 50)
        except ClinikoError as exc:
            run.errors[type(exc).__name__] += 1
            return
        run.ok += 1
        n += 1


async def workers_until(client: Cliniko, count: int, deadline: float, run: Run) -> None:
    """``count`` workers until the deadline. Then the queue may drain for two periods; what
    still waits is cancelled (the job is over), and what does not end within HANG_GRACE of
    being cancelled is hung."""
    tasks = [asyncio.ensure_future(get_until(client, deadline, run)) for _ in range(count)]
    drain = deadline - time.monotonic() + 2 * client.rate_limit.period + 1.0
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, drain))
    for task in pending:
        task.cancel()
    run.cancelled += len(pending)
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=HANG_GRACE)
        run.hung += len(stuck)
    for task in done:  # anything but a ClinikoError ended its worker: count it too
        if (exc := task.exception()) is not None:
            run.errors[type(exc).__name__] += 1


def join_all(threads: list[threading.Thread], deadline: float) -> int:
    for t in threads:
        t.join(max(0.0, deadline + HANG_GRACE - time.monotonic()))
    return sum(t.is_alive() for t in threads)


# -- the shapes ---------------------------------------------------------------------------------


def one_loop(url: str, key: str, params: Params, **_: Any) -> Run:
    run = Run()

    async def main() -> None:
        async with cliniko(url, key, params) as client:
            await workers_until(client, 32, time.monotonic() + params.seconds, run)

    asyncio.run(main())
    return run


def asyncio_run_per_task(url: str, key: str, params: Params, **_: Any) -> Run:
    """A worker that calls ``asyncio.run(job())`` per task: 10 jobs one after the other."""
    run = Run()
    per_job = max(1, params.periods * params.limit // 10)

    async def job() -> None:
        async with cliniko(url, key, params) as client:
            tasks = [asyncio.ensure_future(client.patients.get(1 + i % 50)) for i in range(per_job)]
            done, pending = await asyncio.wait(tasks, timeout=params.seconds + HANG_GRACE)
            run.hung += len(pending)
            for task in pending:
                task.cancel()
            for task in done:
                exc = task.exception()
                if exc is None:
                    run.ok += 1
                else:
                    run.errors[type(exc).__name__] += 1

    for _job in range(10):
        asyncio.run(job())
    return run


def threads_with_own_loops(url: str, key: str, params: Params, **_: Any) -> Run:
    """8 threads, each with its own event loop and client."""
    deadline = time.monotonic() + params.seconds
    runs = [Run() for _ in range(8)]

    def thread(run: Run) -> None:
        async def main() -> None:
            async with cliniko(url, key, params) as client:
                await workers_until(client, 4, deadline, run)

        asyncio.run(main())

    threads = [threading.Thread(target=thread, args=(r,), daemon=True) for r in runs]
    for t in threads:
        t.start()
    hung = join_all(threads, deadline)
    total = Run(hung=hung)
    for r in runs:
        total.add(r)
    return total


def sync_threads(url: str, key: str, params: Params, threads: int = 64, **_: Any) -> Run:
    """One SyncCliniko shared by 64 threads."""
    run = Run()
    lock = threading.Lock()
    deadline = time.monotonic() + params.seconds
    with SyncCliniko(
        api_key=key, user_agent=DEFAULT_USER_AGENT, base_url=url, rate_limit=params.rate_limit
    ) as client:

        def worker() -> None:
            n = 0
            while time.monotonic() < deadline:
                try:
                    client.patients.get(1 + n % 50)
                except ClinikoError as exc:
                    with lock:
                        run.errors[type(exc).__name__] += 1
                    return
                with lock:
                    run.ok += 1
                n += 1

        pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for t in pool:
            t.start()
        run.hung = join_all(pool, deadline)
    return run


def _fork_child(client: SyncCliniko, deadline: float, out: Any) -> None:
    run = Run()
    lock = threading.Lock()

    def worker() -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                client.patients.get(1 + n % 50)
            except ClinikoError as exc:
                with lock:
                    run.errors[type(exc).__name__] += 1
                return
            with lock:
                run.ok += 1
            n += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
    for t in pool:
        t.start()
    run.hung = join_all(pool, deadline)
    out.put((run.ok, dict(run.errors), run.hung, run.cancelled))


def collect(procs: list[Any], out: Any, deadline: float) -> Run:
    total = Run()
    for p in procs:
        p.join(max(0.0, deadline + HANG_GRACE + 5 - time.monotonic()))
    for p in procs:
        if p.is_alive():
            total.hung += 1
            p.kill()
            p.join()
    while not out.empty():
        ok, errors, hung, cancelled = out.get()
        total.add(Run(ok, collections.Counter(errors), hung, cancelled))
    return total


def forked_after_client(url: str, key: str, params: Params, redis_url: str = "", **_: Any) -> Run:
    """gunicorn --preload: the client (Redis budget) is made and used, then 4 workers fork."""
    from cliniko_async.redis import RedisLimiterBackend

    ctx = multiprocessing.get_context("fork")
    out = ctx.SimpleQueue()
    with SyncCliniko(
        api_key=key, user_agent=DEFAULT_USER_AGENT, base_url=url, rate_limit=params.rate_limit,
        limiter=RedisLimiterBackend(redis_url, max_in_flight=params.period),
    ) as client:  # fmt: skip
        client.patients.get(1)  # used before the fork: loop thread, pool and Redis connected
        deadline = time.monotonic() + params.seconds
        procs = [ctx.Process(target=_fork_child, args=(client, deadline, out)) for _ in range(4)]
        for p in procs:
            p.start()
        run = collect(procs, out, deadline)
    run.ok += 1
    return run


def _redis_child(
    url: str, key: str, params: Params, redis_url: str, deadline: float, out: Any
) -> None:
    from cliniko_async.redis import RedisLimiterBackend

    run = Run()

    async def main() -> None:
        backend = RedisLimiterBackend(redis_url, max_in_flight=params.period)
        try:
            async with cliniko(url, key, params, limiter=backend) as client:
                await workers_until(client, 500, deadline, run)
        finally:
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()

    asyncio.run(main())
    out.put((run.ok, dict(run.errors), run.hung, run.cancelled))


def processes_on_redis(url: str, key: str, params: Params, redis_url: str = "", **_: Any) -> Run:
    """4 processes x 500 concurrent requests, one budget through Redis."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.SimpleQueue()
    deadline = time.monotonic() + params.seconds
    procs = [
        ctx.Process(target=_redis_child, args=(url, key, params, redis_url, deadline, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    return collect(procs, out, deadline)


async def outside_client(
    url: str, key: str, deadline: float, concurrency: int, every: float
) -> None:
    """Another app on the same key: raw httpx, no limiter; 429s ignored. ``every`` paces each
    of its loops (0: back to back)."""
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    headers = {"Authorization": auth, "User-Agent": OUTSIDE_UA, "Accept": "application/json"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:

        async def loop(offset: float) -> None:
            await asyncio.sleep(offset)
            while (now := time.monotonic()) < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    await http.get(f"{url}/patients/1")
                if every:
                    await asyncio.sleep(max(0.0, every - (time.monotonic() - now)))

        await asyncio.gather(*(loop(i * every / concurrency) for i in range(concurrency)))


def with_outside_client(
    url: str, key: str, params: Params, outside_share: float | None = None, **_: Any
) -> Run:
    """Our client (one loop, 32 workers) and another app on the key. ``outside_share``: the
    share of the limit the other app spends, paced (None: it hammers, back to back)."""
    run = Run()
    deadline = time.monotonic() + params.seconds
    if outside_share is None:
        concurrency, every = 4, 0.0
    else:
        concurrency = 2
        every = concurrency * params.period / max(1.0, outside_share * params.limit)
    outside = threading.Thread(
        target=lambda: asyncio.run(outside_client(url, key, deadline, concurrency, every)),
        daemon=True,
    )
    outside.start()
    stamping = Stamping(httpx.AsyncHTTPTransport())
    pauses = PauseLog()

    async def main() -> None:
        async with (
            httpx.AsyncClient(transport=stamping) as http,
            cliniko(url, key, params, http_client=http, limiter=pauses) as client,
        ):
            await workers_until(client, 32, deadline, run)

    asyncio.run(main())
    run.hung += join_all([outside], deadline)
    run.received_429 = stamping.received_429
    run.paused_at = pauses.times
    return run


Shape = Callable[..., Run]
#: name -> (runner, our client is the key's only user, keyword arguments)
SHAPES: dict[str, tuple[Shape, bool, dict[str, Any]]] = {
    "one loop": (one_loop, True, {}),
    "asyncio.run per task x 10": (asyncio_run_per_task, True, {}),
    "8 threads, own loops": (threads_with_own_loops, True, {}),
    "SyncCliniko, 64 threads": (sync_threads, True, {}),
    "8 threads, own loops, fixed window": (threads_with_own_loops, True, {"window": "fixed"}),
    "SyncCliniko, 64 threads, fixed window": (sync_threads, True, {"window": "fixed"}),
    "4 forked after client, Redis": (forked_after_client, True, {"redis": True}),
    "4 processes x 500, Redis": (processes_on_redis, True, {"redis": True}),
    "outside client hammering": (with_outside_client, False, {}),
    **{
        f"429 {name}": (with_outside_client, False, {"outside_share": 0.25, "rewrite": name})
        for name in REWRITES
    },
}


def run_shape(name: str, params: Params, redis_url: str | None = None) -> Outcome:
    runner, only_user, kwargs = SHAPES[name]
    kwargs = dict(kwargs)
    rewrite = kwargs.pop("rewrite", None)
    if "window" in kwargs:
        params = dataclasses.replace(params, window=kwargs.pop("window"))
    if kwargs.pop("redis", False):
        if redis_url is None:
            raise ValueError(f"{name} needs a redis_url")
        kwargs["redis_url"] = redis_url
    key = new_key()
    fake = FakeCliniko(
        patients=50, appointments=0, api_keys=(key,), rate_limit=(params.limit, params.period),
        window=params.window,
    )  # fmt: skip
    recorder = Recorder(fake.app, params, rewrite)
    fake.app = recorder  # type: ignore[assignment]  # serve() runs whatever fake.app is
    with serve(fake) as url:
        start = time.monotonic()
        run = runner(url, key, params, **kwargs)
        elapsed = time.monotonic() - start
    return analyse(name, params, recorder.entries, run, only_user, elapsed)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis-compatible server of our own on a free loopback port."""
    with RedisServer() as server:
        yield server.url


def main(argv: list[str]) -> None:
    main_params = Params()
    outside_params = Params(periods=4)
    wanted = [a for a in argv if not a.startswith("-")]
    names = [n for n in SHAPES if not wanted or any(w in n for w in wanted)]
    p = main_params
    print(
        f"limit {p.limit} per {p.period} s ({p.window} window unless said), "
        f"latency {p.latency[0] * 1000:.0f}-"
        f"{p.latency[1] * 1000:.0f} ms each way; {p.periods} periods per shape, "
        f"{outside_params.periods} with an outside client"
    )
    outcomes = []
    with redis_server() as redis_url:
        for name in names:
            params = main_params if SHAPES[name][1] else outside_params
            outcome = run_shape(name, params, redis_url)
            print(outcome.line(), flush=True)
            outcomes.append(outcome)
    met = sum(o.met for o in outcomes)
    worst = min((o.fraction for o in outcomes if o.only_user), default=0.0)
    over = sum(o.max_in_window > o.params.limit for o in outcomes if o.only_user)
    result(
        "1 shapes",
        f"{met} of {len(outcomes)} deployment shapes met (alone on the key: {over} over the "
        f"limit, lowest {worst:.3f} of it; outside client: "
        f"{sum(o.in_pause for o in outcomes if not o.only_user)} arrivals inside pauses)",
        met == len(outcomes),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
