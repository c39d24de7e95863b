"""A tiny counting Cliniko stand-in for the core pipeline tests (httpx.MockTransport).

It counts request *arrivals* on the event loop's clock (virtual under looptime) in a rolling or
fixed window and answers 429 + X-RateLimit-Reset + Date beyond the limit, like Cliniko.
"""

from __future__ import annotations

import asyncio
import bisect
import email.utils
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs
import httpx

EPOCH = 1_800_000_000.0  # the server's wall clock at loop time 0
Handler = Callable[[httpx.Request, "CountingServer"], Awaitable[httpx.Response | None]]


@attrs.define
class CountingServer:
    limit: int = 200
    period: float = 60.0
    window: Literal["rolling", "fixed"] = "rolling"
    latency: tuple[float, float] = (0.0, 0.0)  # uniform one-way latency each way
    seed: int = 1
    route: Handler | None = None
    arrivals: list[float] = attrs.field(factory=list)
    rejected: int = 0
    hosts: list[str] = attrs.field(factory=list)
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return EPOCH + self.now

    def date_header(self) -> str:
        return email.utils.formatdate(self.wall(), usegmt=True)

    def count_in_window(self, t: float) -> int:
        if self.window == "rolling":
            lo = bisect.bisect_right(self.arrivals, t - self.period)
            return len(self.arrivals) - lo
        start = (t // self.period) * self.period
        return len(self.arrivals) - bisect.bisect_left(self.arrivals, start)

    def reset_at(self, t: float) -> float:
        if self.window == "rolling":
            oldest = self.arrivals[len(self.arrivals) - self.count_in_window(t)]
            return oldest + self.period
        return (t // self.period + 1) * self.period

    def max_in_any_window(self) -> int:
        best = 0
        for i, t in enumerate(self.arrivals):
            if self.window == "rolling":
                j = bisect.bisect_left(self.arrivals, t + self.period)
            else:
                start = (t // self.period) * self.period
                i = bisect.bisect_left(self.arrivals, start)
                j = bisect.bisect_left(self.arrivals, start + self.period)
            best = max(best, j - i)
        return best

    def json(self, status: int, body: Any, **headers: str) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(),
            headers={"content-type": "application/json", "date": self.date_header(), **headers},
        )  # fmt: skip

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        lo, hi = self.latency
        if hi:
            await asyncio.sleep(self._rng.uniform(lo, hi))
        t = self.now
        response: httpx.Response | None = None
        if self.count_in_window(t) >= self.limit:
            self.rejected += 1
            reset = EPOCH + self.reset_at(t)
            response = self.json(
                429, {"message": "Too Many Requests"}, **{"x-ratelimit-reset": str(int(reset) + 1)}
            )
        else:
            self.arrivals.append(t)
            if self.route is not None:
                response = await self.route(request, self)
        if response is None:
            response = self.json(200, {"ok": True, "path": request.url.path})
        if hi:
            await asyncio.sleep(self._rng.uniform(lo, hi))
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


API_KEY = "MS0xMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcA-au1"
OTHER_KEY = "MS0yMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcA-au1"
USER_AGENT = "cliniko-async tests (dev@example.com)"
BASE_URL = "http://127.0.0.1/v1"
