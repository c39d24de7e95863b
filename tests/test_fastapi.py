"""The FastAPI example app under 200 concurrent requests: one client, one pool, within the limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from cliniko_async import Cliniko, RateLimit
from cliniko_async.errors import (
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from cliniko_async.fastapi import DEFAULT_RETRY_AFTER, cliniko_error_response, get_cliniko
from cliniko_async.testing import DEFAULT_API_KEY, FakeCliniko, FaultRule, Faults
from examples.fastapi_app import create_app, create_multi_tenant_app

from ._mockserver import API_KEY, BASE_URL, OTHER_KEY, USER_AGENT

ROOT = Path(__file__).resolve().parents[1]


async def drive(app: Any, n: int, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = await asyncio.gather(
                *(client.get(f"/patients/{i}", headers=headers) for i in range(1, n + 1))
            )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses[:3]]
    return [r.json() for r in responses]


@pytest.mark.looptime
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


@pytest.mark.looptime
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


# --- the opt-in exception handlers, the lifespan message, the example under uvicorn ---------


def _status_error(cls: type[APIStatusError], status: int, **extra: Any) -> APIStatusError:
    return cls(
        "failed", method="GET", url="https://api.au1.cliniko.com/v1/patients/1",
        status_code=status, body={"message": "x"}, headers={}, **extra,
    )  # fmt: skip


def test_error_responses() -> None:
    not_found = cliniko_error_response(_status_error(NotFoundError, 404))
    assert not_found is not None and not_found.status_code == 404
    assert json.loads(bytes(not_found.body)) == {"detail": "not found"}

    errors = {"first_name": ["can't be blank"], "email": ["is invalid"]}
    invalid = cliniko_error_response(_status_error(UnprocessableEntityError, 422, errors=errors))
    assert invalid is not None and invalid.status_code == 422
    assert json.loads(bytes(invalid.body))["errors"] == errors

    reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    limited = cliniko_error_response(_status_error(RateLimitError, 429, reset_at=reset))
    assert limited is not None and limited.status_code == 503
    assert 25 <= int(limited.headers["retry-after"]) <= 31
    unknown = cliniko_error_response(_status_error(RateLimitError, 429, reset_at=None))
    assert unknown is not None and unknown.headers["retry-after"] == str(DEFAULT_RETRY_AFTER)

    for cls, status in ((AuthenticationError, 401), (PermissionDeniedError, 403)):
        refused = cliniko_error_response(_status_error(cls, status))
        assert refused is not None and refused.status_code == 502
    down = cliniko_error_response(_status_error(ServerError, 503))
    assert down is not None and down.status_code == 502
    slow = cliniko_error_response(APITimeoutError("timed out", method="GET", url="https://x/v1"))
    assert slow is not None and slow.status_code == 504
    # no upstream URL in the answers
    for response in (not_found, invalid, limited, refused, down, slow):
        assert response is not None and b"cliniko.com" not in bytes(response.body)
    assert cliniko_error_response(ConfigurationError("bad")) is None  # the app's bug: a 500


def test_not_found_is_a_404_and_a_refused_key_a_502() -> None:
    fake = FakeCliniko(patients=5, api_keys=(DEFAULT_API_KEY,))
    app = create_app(
        api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
        transport=fake.transport(),
    )  # fmt: skip
    with TestClient(app) as client:
        assert client.get("/patients/1").status_code == 200
        missing = client.get("/patients/999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "not found"}

    refused = create_app(
        api_key=OTHER_KEY, user_agent=USER_AGENT, base_url=BASE_URL, transport=fake.transport()
    )
    with TestClient(refused) as client:
        answer = client.get("/patients/1")
    assert answer.status_code == 502
    assert OTHER_KEY not in answer.text


@pytest.mark.parametrize("multi_tenant", [False, True])
def test_an_id_out_of_range_is_a_422_not_a_500(multi_tenant: bool) -> None:
    """0, -1 and 2**63 or more are no Cliniko id: the client would refuse them with a
    ConfigurationError, a 500 with a traceback; the example's path parameter refuses them."""
    fake = FakeCliniko(patients=5, api_keys=(DEFAULT_API_KEY,))
    headers = {"x-clinic-key": DEFAULT_API_KEY} if multi_tenant else {}
    if multi_tenant:
        app = create_multi_tenant_app(
            user_agent=USER_AGENT, base_url=BASE_URL, transport=fake.transport()
        )
    else:
        app = create_app(
            api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL,
            transport=fake.transport(),
        )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/patients/1", headers=headers).status_code == 200
        for bad in ("0", "-1", str(2**63), "99999999999999999999999", "1.5", "x"):
            answer = client.get(f"/patients/{bad}", headers=headers)
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.json()["detail"][0]["loc"] == ["path", "patient_id"]
        assert client.get(f"/patients/{2**63 - 1}", headers=headers).status_code == 404
    assert fake.requests == 2  # the 422s sent nothing to Cliniko


def test_the_docs_example_answers_422_for_an_id_out_of_range(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_readme import examples, run_example

    first = examples(ROOT / "docs" / "fastapi.md")[0]
    assert 'client.get("/patients/0")' in first.source
    run_example(first, tmp_path, monkeypatch, None)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["404 {'detail': 'not found'}", "422"]


def test_without_the_lifespan_the_message_says_so() -> None:
    app = create_app(api_key=DEFAULT_API_KEY, user_agent=USER_AGENT, base_url=BASE_URL)
    client = TestClient(app)  # no `with`: the lifespan never runs
    with pytest.raises(ConfigurationError, match="lifespan has not run.*with TestClient"):
        client.get("/patients/1")

    bare = FastAPI()

    @bare.get("/")
    async def root(cliniko: Annotated[Cliniko, Depends(get_cliniko)]) -> str:
        return cliniko.base_url

    with (
        TestClient(bare) as client,
        pytest.raises(ConfigurationError, match=r"create the app with FastAPI\(lifespan="),
    ):
        client.get("/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_the_example_under_uvicorn_answers_404_for_a_missing_patient() -> None:
    """``uvicorn examples.fastapi_app:app``, as the README says, against its in-process fake."""
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLINIKO_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # until uvicorn listens (or has died)
            assert server.poll() is None, server.communicate()[0]
            try:
                first = httpx.get(f"{url}/patients/1", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        missing = httpx.get(f"{url}/patients/999999", timeout=5)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert first.status_code == 200 and first.json()["id"] == 1
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json() == {"detail": "not found"}
