"""A scriptable Cliniko stand-in for pipeline tests that need hand-made responses.

Behaviour the fake Cliniko models (lists, rate limits, faults) is tested on the fake; this
stand-in serves the scenarios it does not (scripted bodies and statuses per request).

It counts request *arrivals* on the event loop's clock (virtual under looptime) in a rolling or
fixed window and answers 429 + X-RateLimit-Reset + Date beyond the limit, like Cliniko.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs
import httpx

from cliniko_async.testing import KeyStats

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

    @property
    def stats(self) -> KeyStats:
        """The window arithmetic is the fake Cliniko's, so both count the same way."""
        return KeyStats(self.period, self.window, self.arrivals)

    def count_in_window(self, t: float) -> int:
        return self.stats.count_at(t)

    def reset_at(self, t: float) -> float:
        return self.stats.reset_at(t)

    def max_in_any_window(self) -> int:
        return self.stats.max_in_window

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
