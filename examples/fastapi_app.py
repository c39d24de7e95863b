"""A FastAPI app that reads patients through one lifespan-managed Cliniko client.

Run it against the fake Cliniko (no account needed):

    CLINIKO_API_KEY=... CLINIKO_BASE_URL=http://127.0.0.1:8123/v1 uvicorn examples.fastapi_app:app
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Header

from cliniko_async import Cliniko
from cliniko_async.fastapi import (
    accounts_lifespan,
    cliniko_for_tenant,
    cliniko_lifespan,
    get_cliniko,
)


def create_app(**client_kwargs: object) -> FastAPI:
    """The single-account app: one client for the whole process."""
    app = FastAPI(lifespan=cliniko_lifespan(**client_kwargs))

    @app.get("/patients/{patient_id}")
    async def patient(
        patient_id: int, cliniko: Annotated[Cliniko, Depends(get_cliniko)]
    ) -> dict[str, object]:
        record = await cliniko.patients.get(patient_id)
        return {"id": record.id, "first_name": record.first_name}

    return app


def tenant_key(x_clinic_key: Annotated[str, Header()]) -> str:
    """Your own auth goes here: map the caller to its clinic's Cliniko key."""
    return x_clinic_key


tenant_cliniko = cliniko_for_tenant(tenant_key)


def create_multi_tenant_app(**accounts_kwargs: object) -> FastAPI:
    """The multi-tenant app: one pool per shard host, one limiter per clinic key."""
    app = FastAPI(lifespan=accounts_lifespan(**accounts_kwargs))

    @app.get("/patients/{patient_id}")
    async def patient(
        patient_id: int, cliniko: Annotated[Cliniko, Depends(tenant_cliniko)]
    ) -> dict[str, object]:
        record = await cliniko.patients.get(patient_id)
        return {"id": record.id, "first_name": record.first_name}

    return app


if os.environ.get("CLINIKO_API_KEY"):
    app = create_app(
        api_key=os.environ["CLINIKO_API_KEY"],
        user_agent=os.environ.get("CLINIKO_USER_AGENT", "cliniko-async example (dev@example.com)"),
        base_url=os.environ.get("CLINIKO_BASE_URL"),
    )
