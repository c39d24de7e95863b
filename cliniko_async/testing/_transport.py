"""In-process httpx transport for the fake Cliniko, and the signal the app raises to drop."""

from __future__ import annotations

from typing import Any

import httpx


class DroppedConnection(Exception):
    """Raised inside the app to make the transport drop the connection."""


class FakeTransport(httpx.AsyncBaseTransport):
    """Calls an ASGI app in-process; an injected drop raises ``httpx.RemoteProtocolError``."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._asgi.handle_async_request(request)
        except DroppedConnection:
            raise httpx.RemoteProtocolError(
                "server dropped the connection", request=request
            ) from None
