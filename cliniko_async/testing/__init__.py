"""A fake Cliniko for tests, demos and benchmarks (extra ``cliniko-async[testing]``).

::

    fake = FakeCliniko(patients=1000, rate_limit=(200, 60.0))
    http = httpx.AsyncClient(transport=fake.transport())        # in-process
    cliniko = Cliniko(api_key=DEFAULT_API_KEY, user_agent=DEFAULT_USER_AGENT,
                      base_url="http://127.0.0.1/v1", http_client=http)

    with serve(fake) as base_url:                                 # or over real HTTP
        ...

``fake.stats(key)`` tells what the server saw: accepted requests, 429s, and the largest
number of requests in any window of the rate-limit period.
"""

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
from ._server import serve

IN_PROCESS_BASE_URL = "http://127.0.0.1/v1"

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_USER_AGENT",
    "IN_PROCESS_BASE_URL",
    "Clock",
    "FakeCliniko",
    "FaultRule",
    "Faults",
    "KeyStats",
    "LoopClock",
    "RealClock",
    "serve",
]
