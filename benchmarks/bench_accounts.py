"""Target 8: many clinics from one process, each key at Cliniko's own rate (compressed in time).

N keys (10, 100, 1,000) through ``ClinikoAccounts.for_key(...).patients.get(...)``, two workers
per key, every key limited to 20 requests per 6 s (Cliniko's 200 per 60 s is 3.33/s; the same
rate, compressed ten-fold in time so a run takes seconds). The baseline is the limit itself:
achieved / ideal = requests completed in the first PERIODS whole periods / (N x 20 x PERIODS).

The server is a stand-in (raw asyncio, one realistic 2.3 KB patient per response, the same
per-key rolling window as Cliniko, answering 429 over it) in its own process: the fake Cliniko
(starlette + uvicorn, ~1 ms per request) cannot serve 3,333 requests/s on one core. Client and
server are pinned to different cores when the machine has two.

``python -m benchmarks.bench_accounts [--keys 300] [--transport NAME]``: one N, or one of the
candidate HTTP stacks (aiohttp = the default, httpcore, httpcore-tuned, httpcore-capped,
httpx-aiohttp) for comparing them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import random
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator

import httpx

from cliniko_async import ClinikoAccounts, RateLimit

from ._common import result

LIMIT, PERIOD, PERIODS, WORKERS = 20, 6.0, 3, 2
KEYS = (10, 100, 1000)
USER_AGENT = "Bench Accounts (bench@example.com)"


def api_key(i: int, prefix: str = "a") -> str:
    return f"MS0x{prefix}LWtleS1udW1iZXI{i:08d}-au1"


# -- the stand-in server (its own process) -----------------------------------------------------


def serve_main(port: int, limited: bool = True) -> None:
    """Answer GET /v1/patients/{id} with a realistic patient; 429 over 20 per 6 s per key."""
    from .bench_models import patient_record

    rng = random.Random(8)
    bodies = [json.dumps(patient_record(i, rng), separators=(",", ":")).encode() for i in range(50)]
    ok = [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    ]
    windows: dict[bytes, collections.deque[float]] = collections.defaultdict(collections.deque)
    stats = {"accepted": 0, "rejected": 0}

    def answer(head: bytes) -> bytes:
        line_end = head.find(b"\r\n")
        path = head[:line_end].split(b" ")[1]
        if path == b"/__stats":
            body = json.dumps(stats).encode()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        if path == b"/__reset":
            windows.clear()
            stats.update(accepted=0, rejected=0)
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        lower = head.lower()
        at = lower.find(b"\r\nauthorization:")
        auth = head[at + 16 : head.find(b"\r\n", at + 2)].strip() if at >= 0 else b""
        now = time.monotonic()
        window = windows[auth]
        while window and window[0] <= now - PERIOD:
            window.popleft()
        if limited and len(window) >= LIMIT:
            stats["rejected"] += 1
            reset = time.time() + (window[0] + PERIOD - now)
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            return (
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n"
                b"X-RateLimit-Reset: %d\r\nDate: %s\r\n\r\n" % (int(reset) + 1, date.encode())
            )
        if limited:
            window.append(now)
        stats["accepted"] += 1
        try:
            index = int(path.rsplit(b"/", 1)[1]) % len(ok)
        except ValueError:
            index = 0
        return ok[index]

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            out = []
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
                out.append(answer(head))
            if out:
                self.transport.write(b"".join(out))

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        server = await asyncio.get_running_loop().create_server(Protocol, sock=sock, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def standin_server(limited: bool = True) -> Iterator[str]:
    """The stand-in server in its own process (pinned to the second core); its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_accounts", "--serve", str(port)]
        + ([] if limited else ["--unlimited"]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the stand-in server did not start")
        pin(proc.pid, 1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def pin(pid: int, core: int) -> bool:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2:
        return False
    os.sched_setaffinity(pid, {cores[core % len(cores)]})
    return True


async def server_stats(url: str, path: str) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url.removesuffix("/v1") + path)
        return {} if response.status_code == 204 else dict(response.json())


# -- candidate HTTP stacks -------------------------------------------------------------------


class CappedTransport(httpx.AsyncBaseTransport):
    """httpcore with a process-wide cap on requests in flight (the excess waits outside)."""

    def __init__(self, cap: int) -> None:
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
        )
        self.slots = asyncio.Semaphore(cap)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self.slots:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_transport(name: str) -> httpx.AsyncBaseTransport | None:
    if name == "aiohttp":
        return None  # the default
    if name == "httpcore":
        return httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
        )
    if name == "httpcore-tuned":
        return httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32)
        )
    if name == "httpcore-capped":
        return CappedTransport(16)
    if name == "httpx-aiohttp":
        import httpx_aiohttp

        return httpx_aiohttp.AiohttpTransport()
    raise SystemExit(f"unknown transport {name!r}")


# -- the client ------------------------------------------------------------------------------


async def run_keys(url: str, n: int, transport: str) -> dict[str, float]:
    await server_stats(url, "/__reset")
    accounts = ClinikoAccounts(
        user_agent=USER_AGENT,
        base_url=url,
        rate_limit=RateLimit(LIMIT, PERIOD),
        max_sessions=max(1024, n),
        transport=make_transport(transport),
    )
    keys = [api_key(i, f"n{n}") for i in range(n)]
    done: list[float] = []
    lags: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    window = PERIODS * PERIOD

    async def worker(k: int, w: int) -> None:
        i = w
        while True:
            try:
                await accounts.for_key(keys[k]).patients.get(1 + (k + i) % 50)
            except Exception as exc:  # counted and reported, never silent
                errors[type(exc).__name__] += 1
            else:
                done.append(time.perf_counter())
            i += WORKERS

    async def sampler() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)

    gc.collect()
    lag_task = asyncio.create_task(sampler())
    cpu0, t0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(worker(k, w)) for k in range(n) for w in range(WORKERS)]
    await asyncio.sleep(window + 0.3)
    cpu = time.process_time() - cpu0
    for task in [*tasks, lag_task]:
        task.cancel()
    await asyncio.gather(*tasks, lag_task, return_exceptions=True)
    await accounts.aclose()
    stats = await server_stats(url, "/__stats")
    in_window = sum(1 for t in done if t < t0 + window)
    lags.sort()
    return {
        "ratio": in_window / (n * LIMIT * PERIODS),
        "completed": in_window,
        "rejected": stats.get("rejected", -1),
        "cpu_us": cpu / max(1, len(done)) * 1e6,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1e3 if lags else float("nan"),
        "errors": sum(errors.values()),
        "error_kinds": len(errors),
    }


async def memory_per_key(url: str, n: int = 1000) -> tuple[float, float]:
    """tracemalloc bytes per key: cached only (for_key), and after one request each."""
    async with ClinikoAccounts(
        user_agent=USER_AGENT, base_url=url, rate_limit=RateLimit(LIMIT, PERIOD), max_sessions=n
    ) as accounts:
        await accounts.for_key(api_key(0, "w")).patients.get(1)  # warm: pool, imports, caches
        keys = [api_key(i, "m") for i in range(n)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for k in keys:
            accounts.for_key(k)
        gc.collect()
        cached = tracemalloc.get_traced_memory()[0] - before
        await asyncio.gather(*(accounts.for_key(k).patients.get(1) for k in keys))
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    return cached / n, used / n


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        serve_main(int(argv[1]), limited="--unlimited" not in argv)
        return
    transport = argv[argv.index("--transport") + 1] if "--transport" in argv else "aiohttp"
    keys = (int(argv[argv.index("--keys") + 1]),) if "--keys" in argv else KEYS
    pinned = pin(0, 0)
    with standin_server() as url:
        print(
            f"{WORKERS} workers per key, {LIMIT} per {PERIOD:.0f} s per key, {PERIODS} periods; "
            f"transport {transport}; server: raw-asyncio stand-in in its own process (the fake "
            f"is the bottleneck at this rate); pinned to separate cores: {pinned}"
        )
        print("  keys  achieved/ideal  completed  429s  CPU us/req  lag p99 ms  errors")
        rows: dict[int, dict[str, float]] = {}
        for n in keys:
            row = rows[n] = asyncio.run(run_keys(url, n, transport))
            print(
                f"  {n:4d}  {row['ratio']:14.3f}  {row['completed']:9.0f}  {row['rejected']:4.0f}"
                f"  {row['cpu_us']:10.0f}  {row['lag_p99_ms']:10.1f}  {row['errors']:6.0f}"
            )
        cached, used = asyncio.run(memory_per_key(url))
    print(f"  memory per key (tracemalloc, 1,000 keys): {cached:,.0f} B cached, {used:,.0f} B used")
    if transport != "aiohttp" or len(keys) == 1:
        return
    big, mid = rows[1000], rows[100]
    result(
        "8 many clinics",
        f"1,000 keys {big['ratio']:.3f} of the limit, {big['rejected']:.0f} x 429, lag p99 "
        f"{big['lag_p99_ms']:.0f} ms, {big['cpu_us']:.0f} us/request; 100 keys "
        f"{mid['ratio']:.3f}; {used:,.0f} B per key",
        big["ratio"] >= 0.95
        and big["rejected"] == 0
        and big["lag_p99_ms"] <= 100
        and mid["ratio"] >= 0.99
        and mid["rejected"] == 0,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
