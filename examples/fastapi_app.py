"""A FastAPI app that reads patients through one lifespan-managed Cliniko client.

Run it (extras ``[fastapi,testing]`` and uvicorn)::

    uvicorn examples.fastapi_app:app              # against an in-process fake Cliniko
    curl -i http://127.0.0.1:8000/patients/1      # 200 {"id": 1, "first_name": ...}
    curl -i http://127.0.0.1:8000/patients/999999 # 404 {"detail": "not found"}
    curl -i http://127.0.0.1:8000/patients/0      # 422: not an id (1 to 2**63 - 1)

With ``CLINIKO_API_KEY`` set it talks to that account instead (``CLINIKO_USER_AGENT``: your
app's name and a contact email; ``CLINIKO_BASE_URL``: another API root, such as a fake served
with ``python -m cliniko_async.testing``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path

from cliniko_async import Cliniko
from cliniko_async.fastapi import (
    accounts_lifespan,
    add_cliniko_exception_handlers,
    cliniko_for_tenant,
    cliniko_lifespan,
    get_cliniko,
)

#: A Cliniko id: 1 to 2**63 - 1. FastAPI answers 422 to anything else (0, -1, 2**63), which the
#: client would refuse with a ConfigurationError: a 500 with a traceback in your logs.
PatientId = Annotated[int, Path(gt=0, lt=2**63)]


def create_app(**client_kwargs: Any) -> FastAPI:
    """The single-account app: one client for the whole process."""
    app = FastAPI(lifespan=cliniko_lifespan(**client_kwargs))
    add_cliniko_exception_handlers(app)  # NotFoundError -> 404, not 500

    @app.get("/patients/{patient_id}")
    async def patient(
        patient_id: PatientId, cliniko: Annotated[Cliniko, Depends(get_cliniko)]
    ) -> dict[str, object]:
        record = await cliniko.patients.get(patient_id)
        return {"id": record.id, "first_name": record.first_name}

    return app


def tenant_key(x_clinic_key: Annotated[str, Header()]) -> str:
    """Your own auth goes here: map the caller to its clinic's Cliniko key."""
    return x_clinic_key


tenant_cliniko = cliniko_for_tenant(tenant_key)


def create_multi_tenant_app(**accounts_kwargs: Any) -> FastAPI:
    """The multi-tenant app: one pool per shard host, one limiter per clinic key."""
    app = FastAPI(lifespan=accounts_lifespan(**accounts_kwargs))
    add_cliniko_exception_handlers(app)

    @app.get("/patients/{patient_id}")
    async def patient(
        patient_id: PatientId, cliniko: Annotated[Cliniko, Depends(tenant_cliniko)]
    ) -> dict[str, object]:
        record = await cliniko.patients.get(patient_id)
        return {"id": record.id, "first_name": record.first_name}

    return app


def settings_from_environment() -> dict[str, Any]:
    """The client's settings: ``CLINIKO_*`` variables, or an in-process fake Cliniko."""
    if os.environ.get("CLINIKO_API_KEY"):
        return {
            "api_key": os.environ["CLINIKO_API_KEY"],
            "user_agent": os.environ.get(
                "CLINIKO_USER_AGENT", "cliniko-async example (dev@example.com)"
            ),
            "base_url": os.environ.get("CLINIKO_BASE_URL") or None,
        }
    from cliniko_async.testing import (
        DEFAULT_API_KEY,
        DEFAULT_USER_AGENT,
        IN_PROCESS_BASE_URL,
        FakeCliniko,
    )

    return {
        "api_key": DEFAULT_API_KEY,
        "user_agent": DEFAULT_USER_AGENT,
        "base_url": IN_PROCESS_BASE_URL,
        "transport": FakeCliniko().transport(),
    }


app = create_app(**settings_from_environment())
