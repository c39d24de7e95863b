"""ClinikoAccounts: per-key sessions, one pool per shard host, bounded per-key state."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest

from cliniko_async import ClinikoAccounts
from cliniko_async._limiter import _REGISTRY, forget_all_limiters, registered_keys

from ._mockserver import USER_AGENT

pytestmark = pytest.mark.looptime


def key(i: int, shard: str = "au1") -> str:
    return f"MS0xLWtleS1udW1iZXI{i:08d}-{shard}"


async def test_10000_keys_once_each_stay_within_the_bound() -> None:
    forget_all_limiters()
    hosts: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.add(request.url.host)
        return httpx.Response(200, json={"ok": True})

    async with ClinikoAccounts(
        user_agent=USER_AGENT, max_sessions=256, transport=httpx.MockTransport(handler)
    ) as accounts:
        for i in range(10_000):
            await accounts.for_key(key(i)).request("GET", "/user")
            assert accounts.cached_sessions <= 256
        assert accounts.cached_sessions == 256
        assert list(accounts.pools) == ["https://api.au1.cliniko.com/v1"]
        # Reuse: the same key gets the same session while cached.
        assert accounts.for_key(key(9_999)) is accounts.for_key(key(9_999))
        gc.collect()
        # Evicted keys' limiters stay while their slots are in use (within the period) ...
        assert registered_keys() == 10_000
        await asyncio.sleep(61)
        _REGISTRY._sweep()
        # ... and are forgotten once idle.
        assert registered_keys() <= 256
    assert hosts == {"api.au1.cliniko.com"}


async def test_pools_per_shard_limiters_per_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    async with ClinikoAccounts(
        user_agent=USER_AGENT, transport=httpx.MockTransport(handler)
    ) as acc:
        a, b, c = acc.for_key(key(1)), acc.for_key(key(2)), acc.for_key(key(3, "uk2"))
        assert a._session.http is b._session.http
        assert a._session.http is not c._session.http
        assert c.base_url == "https://api.uk2.cliniko.com/v1"
        await a.request("GET", "/user")
        await b.request("GET", "/user")
        assert a._session.limiter is not b._session.limiter
