"""The FastAPI example app under 200 concurrent requests: one client, one pool, within the limit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cliniko_async import Cliniko, RateLimit
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, FaultRule, Faults
from examples.fastapi_app import create_app, create_multi_tenant_app

from ._mockserver import API_KEY, BASE_URL, OTHER_KEY, USER_AGENT

pytestmark = pytest.mark.looptime


async def drive(app: Any, n: int, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = await asyncio.gather(
                *(client.get(f"/patients/{i}", headers=headers) for i in range(1, n + 1))
            )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses[:3]]
    return [r.json() for r in responses]


async def test_200_concurrent_requests_one_client_one_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = Faults([FaultRule(latency=(0.001, 0.05))], seed=2)
    fake = FakeCliniko(patients=200, rate_limit=(50, 10.0), window="fixed", faults=faults)
    upstream = httpx.AsyncClient(transport=fake.transport())
    clients: list[Cliniko] = []
    pools: set[int] = set()
    original = Cliniko.patients.func  # type: ignore[attr-defined]

    def spy(self: Cliniko) -> Any:
        clients.append(self)
        pools.add(id(self._session.http))
        return original(self)

    monkeypatch.setattr(Cliniko, "patients", property(spy))
    app = create_app(
        api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=upstream,
        rate_limit=RateLimit(50, 10.0),
    )  # fmt: skip
    bodies = await drive(app, 200)
    assert sorted(b["id"] for b in bodies) == list(range(1, 201))
    assert len({id(c) for c in clients}) == 1  # one client for every request
    assert pools == {id(upstream)}  # and one connection pool
    assert fake.stats().rejected == 0
    assert fake.stats().max_in_window <= 50
    assert len(fake.stats().accepted) == 200
    await upstream.aclose()


async def test_multi_tenant_shares_pools_and_keeps_keys_apart() -> None:
    fake = FakeCliniko(api_keys=(API_KEY, OTHER_KEY))
    app = create_multi_tenant_app(
        user_agent=USER_AGENT, base_url=BASE_URL, transport=fake.transport()
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            a = await client.get("/patients/1", headers={"x-clinic-key": API_KEY})
            b = await client.get("/patients/2", headers={"x-clinic-key": OTHER_KEY})
            accounts = app.state.cliniko_accounts
            assert accounts.cached_sessions == 2
            assert len(accounts.pools) == 1
    names = fake.data["patients"][1]["first_name"], fake.data["patients"][2]["first_name"]
    assert (a.json()["first_name"], b.json()["first_name"]) == names
    assert len(fake.stats(API_KEY).accepted) == len(fake.stats(OTHER_KEY).accepted) == 1
