"""pytest fixtures for your own tests: ``fake_cliniko`` and ``cliniko`` (a connected client).

Installed with the package (entry point ``cliniko_async``), so a test only asks for them::

    import pytest

    @pytest.mark.anyio
    async def test_names(cliniko, fake_cliniko):
        assert (await cliniko.patients.get(1)).first_name

Both fixtures are plain (synchronous) fixtures, so they work under any asyncio test runner:
anyio's pytest plugin (``@pytest.mark.anyio``, installed with anyio), pytest-asyncio in strict
mode (``@pytest.mark.asyncio``) or in auto mode. The client talks to the fake in-process (no
socket), has a rate-limit budget of its own for each test (the fake's 200 per 60 s), and is
closed after the test. The library runs on asyncio only: with anyio keep the default
``anyio_backend`` (``"asyncio"``), not trio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
def cliniko(fake_cliniko: FakeCliniko) -> Iterator[Cliniko]:
    """A ``Cliniko`` connected in-process to ``fake_cliniko``, with a budget of its own."""
    from cliniko_async import Cliniko
    from cliniko_async._limiter import LocalLimiterBackend
    from cliniko_async.testing import DEFAULT_API_KEY, DEFAULT_USER_AGENT, IN_PROCESS_BASE_URL

    client = Cliniko(
        api_key=DEFAULT_API_KEY,
        user_agent=DEFAULT_USER_AGENT,
        base_url=IN_PROCESS_BASE_URL,
        transport=fake_cliniko.transport(),
        # Not the process's budget for the key: each test starts with a full one.
        limiter=LocalLimiterBackend(clock=time.monotonic),
    )
    yield client
    # The in-process transport holds no connection: closing the session is all there is to do
    # (and needs no event loop, whichever runner the test used).
    client._session.close()
