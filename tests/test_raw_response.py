"""``with_raw_response``: the HTTP status and headers (rate-limit ones included) with the model."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cliniko_async import Cliniko, RawResponse, SyncCliniko
from cliniko_async.models import Patient, PatientInput

from ._mockserver import API_KEY, BASE_URL, USER_AGENT

RATE = {
    "X-RateLimit-Limit": "200",
    "X-RateLimit-Remaining": "187",
    "X-RateLimit-Reset": "1800000060",
}


def handler(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if path.endswith("/archive"):
        return httpx.Response(204, headers=RATE)
    body = json.loads(request.content) if request.content else {}
    patient = {"id": "7", "first_name": "Ada", "last_name": "L", **body}
    status = 201 if method == "POST" else 200
    return httpx.Response(status, json=patient, headers={**RATE, "X-Request-Id": path})


async def test_async_raw_get_create_archive() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with Cliniko(
        api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL, http_client=http
    ) as cliniko:
        raw = await cliniko.patients.with_raw_response.get(7)
        assert isinstance(raw, RawResponse)
        assert raw.status_code == 200
        assert isinstance(raw.parsed, Patient) and raw.parsed.first_name == "Ada"
        assert raw.headers["x-request-id"] == "/v1/patients/7"
        assert (raw.rate_limit_limit, raw.rate_limit_remaining) == (200, 187)
        assert raw.rate_limit_reset == 1800000060
        created = await cliniko.patients.with_raw_response.create(
            PatientInput(first_name="Grace", last_name="Hopper")
        )
        assert created.status_code == 201 and created.parsed.first_name == "Grace"
        archived = await cliniko.patients.with_raw_response.archive(7)
        assert archived.status_code == 204 and archived.parsed is None
        # the plain call is unchanged
        assert (await cliniko.patients.get(7)).first_name == "Ada"
    await http.aclose()


def test_sync_raw_get() -> None:
    with SyncCliniko(
        api_key=API_KEY,
        user_agent=USER_AGENT,
        base_url=BASE_URL,
        transport=httpx.MockTransport(handler),
    ) as cliniko:
        raw = cliniko.patients.with_raw_response.get(7)
        assert raw.status_code == 200 and raw.parsed.id == 7
        assert raw.rate_limit_remaining == 187


def test_lists_have_no_raw_twin() -> None:
    cliniko: Any = Cliniko(api_key=API_KEY, user_agent=USER_AGENT, base_url=BASE_URL)
    with pytest.raises(AttributeError):
        cliniko.patients.with_raw_response.list  # noqa: B018
    assert "Coroutine" not in repr(cliniko.patients.with_raw_response)
