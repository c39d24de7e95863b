"""pytest fixtures for your own tests: ``fake_cliniko`` and ``cliniko`` (a connected client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cliniko_async import Cliniko
    from cliniko_async.testing import FakeCliniko


@pytest.fixture
def fake_cliniko() -> FakeCliniko:
    """A fresh, seeded fake Cliniko (50 patients, 200 appointments, 200 requests per 60 s)."""
    from cliniko_async.testing import FakeCliniko

    return FakeCliniko()


@pytest.fixture
async def cliniko(fake_cliniko: FakeCliniko) -> AsyncIterator[Cliniko]:
    """A ``Cliniko`` session connected in-process to ``fake_cliniko``."""
    import httpx

    from cliniko_async import Cliniko
    from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, IN_PROCESS_BASE_URL

    async with (
        httpx.AsyncClient(transport=fake_cliniko.transport()) as http,
        Cliniko(
            api_key=DEFAULT_API_KEY,
            user_agent=DEFAULT_USER_AGENT,
            base_url=IN_PROCESS_BASE_URL,
            http_client=http,
        ) as client,
    ):
        yield client
