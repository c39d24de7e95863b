"""``sandbox()``: a fake Cliniko served on 127.0.0.1, and the settings to reach it."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import attrs

from ._app import DEFAULT_API_KEY, DEFAULT_USER_AGENT, FakeCliniko
from ._server import serve

__all__ = ["Sandbox", "sandbox"]

_lock = threading.Lock()
_servers: list[contextlib.ExitStack] = []


@attrs.frozen
class Sandbox:
    """Where a served fake Cliniko is: unpacks as ``API_KEY, USER_AGENT, BASE_URL``."""

    api_key: str = attrs.field(repr=False)
    user_agent: str
    base_url: str
    fake: FakeCliniko = attrs.field(repr=False)

    def __iter__(self) -> Iterator[str]:
        return iter((self.api_key, self.user_agent, self.base_url))


def sandbox(fake: FakeCliniko | None = None, **fake_kwargs: Any) -> Sandbox:
    """Serve ``fake`` (default: a new seeded ``FakeCliniko(**fake_kwargs)``) on 127.0.0.1.

    ::

        from cliniko_async.testing import sandbox

        API_KEY, USER_AGENT, BASE_URL = sandbox()

    The server runs in a background thread until the process exits (or :func:`stop_sandboxes`).
    Every example in the documentation starts this way; for the real API use your own key and
    User-Agent and leave ``base_url`` out.
    """
    fake = fake if fake is not None else FakeCliniko(**fake_kwargs)
    stack = contextlib.ExitStack()
    base_url = stack.enter_context(serve(fake))
    with _lock:
        _servers.append(stack)
    return Sandbox(DEFAULT_API_KEY, DEFAULT_USER_AGENT, base_url, fake)


def stop_sandboxes() -> None:
    """Stop every server :func:`sandbox` started (done at exit anyway)."""
    with _lock:
        stacks = list(_servers)
        _servers.clear()
    for stack in reversed(stacks):
        stack.close()


atexit.register(stop_sandboxes)
