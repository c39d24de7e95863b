"""In-process httpx transport for the fake Cliniko."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._app import DroppedConnection

if TYPE_CHECKING:
    from ._app import FakeCliniko


class FakeTransport(httpx.AsyncBaseTransport):
    """Calls the fake in-process; an injected drop raises ``httpx.RemoteProtocolError``."""

    def __init__(self, fake: FakeCliniko) -> None:
        self._asgi = httpx.ASGITransport(app=fake.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._asgi.handle_async_request(request)
        except DroppedConnection:
            raise httpx.RemoteProtocolError(
                "server dropped the connection", request=request
            ) from None
