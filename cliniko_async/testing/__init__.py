"""A fake Cliniko for tests, demos and benchmarks (extra ``cliniko-async[testing]``).

::

    from cliniko_async.testing import sandbox

    API_KEY, USER_AGENT, BASE_URL = sandbox()   # a seeded fake served on 127.0.0.1

    fake = FakeCliniko(patients=1000, rate_limit=(200, 60.0))
    cliniko = Cliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT,
                      base_url=IN_PROCESS_BASE_URL, transport=fake.transport())  # in-process

    with serve(fake) as base_url:                                 # or over real HTTP
        ...

``fake.stats(key)`` tells what the server saw: accepted requests, 429s, and the largest
number of requests in any window of the rate-limit period. The pytest fixtures
``fake_cliniko`` and ``cliniko`` come with the package (``cliniko_async.testing.pytest_plugin``).

Names are imported on first use, so ``python -m cliniko_async.testing`` can say what to
install when starlette or uvicorn is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

IN_PROCESS_BASE_URL = "http://127.0.0.1/v1"
INSTALL_HINT = 'pip install "cliniko-async[testing]"'

if TYPE_CHECKING:
    from ._app import (
        DEFAULT_API_KEY,
        DEFAULT_USER_AGENT,
        Clock,
        FakeCliniko,
        FaultRule,
        Faults,
        KeyStats,
        LoopClock,
        RealClock,
    )
    from ._mutate import Mutation, mutate, settle
    from ._sandbox import Sandbox, sandbox, stop_sandboxes
    from ._server import serve

_LAZY = {
    "DEFAULT_API_KEY": "._app",
    "DEFAULT_USER_AGENT": "._app",
    "Clock": "._app",
    "FakeCliniko": "._app",
    "FaultRule": "._app",
    "Faults": "._app",
    "KeyStats": "._app",
    "LoopClock": "._app",
    "RealClock": "._app",
    "Mutation": "._mutate",
    "mutate": "._mutate",
    "settle": "._mutate",
    "Sandbox": "._sandbox",
    "sandbox": "._sandbox",
    "stop_sandboxes": "._sandbox",
    "serve": "._server",
}

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_USER_AGENT",
    "INSTALL_HINT",
    "IN_PROCESS_BASE_URL",
    "Clock",
    "FakeCliniko",
    "FaultRule",
    "Faults",
    "KeyStats",
    "LoopClock",
    "Mutation",
    "RealClock",
    "Sandbox",
    "mutate",
    "sandbox",
    "serve",
    "settle",
    "stop_sandboxes",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
