"""Target 4: structuring a 100-patient page, cattrs converter vs pydantic v2 vs JSON alone.

All three decode the same bytes; pydantic uses equivalent models (same fields, types and
optionality) validated from the decoded dicts, as the client does after decoding.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pydantic

from cliniko_async._converter import structure
from cliniko_async.models import Patient
from cliniko_async.testing import FakeCliniko

LinkP = dict[str, Any]


class PhoneNumberP(pydantic.BaseModel):
    number: str | None = None
    phone_type: str | None = None
    normalized_number: str | None = None


def _pydantic_patient() -> type[pydantic.BaseModel]:
    """A pydantic model with Patient's fields (links as a nested model, like ours)."""

    class LinksP(pydantic.BaseModel):
        self_: str | None = pydantic.Field(default=None, alias="self")

    class LinkObjP(pydantic.BaseModel):
        links: LinksP | None = None

    fields: dict[str, Any] = {}
    for name, hint in Patient.__annotations__.items():
        text = str(hint)
        if name in ("extra", "__renames__"):
            continue
        if "Link" in text:
            fields[name] = (LinkObjP | None, None)
        elif "PhoneNumber" in text:
            fields[name] = (list[PhoneNumberP] | None, None)
        elif "dt.datetime" in text:
            fields[name] = (dt.datetime | None, None)
        elif "dt.date" in text:
            fields[name] = (dt.date | None, None)
        elif "int" in text:
            fields[name] = (int | None, None)
        elif "bool" in text:
            fields[name] = (bool | None, None)
        elif "dict" in text:
            fields[name] = (dict[str, Any] | None, None)
        else:
            fields[name] = (str | None, None)
    model: type[pydantic.BaseModel] = pydantic.create_model("PatientP", **fields)
    return model


def best_of(fn: Callable[[], object], repeat: int = 7, number: int = 50) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> None:
    fake = FakeCliniko(patients=100, appointments=0, rate_limit=None)
    page = []
    for r in fake.data["patients"].values():
        record = dict(r)
        record["date_of_birth"] = record["date_of_birth"] or None  # pydantic rejects ""
        record["archived_at"] = record["deleted_at"] = None
        record["links"] = {"self": f"https://api.au1.cliniko.com/v1/patients/{r['id']}"}
        page.append(record)
    body = json.dumps({"patients": page}).encode()
    patient_p = _pydantic_patient()

    def ours() -> object:
        return [structure(p, Patient) for p in json.loads(body)["patients"]]

    def theirs() -> object:
        return [patient_p.model_validate(p) for p in json.loads(body)["patients"]]

    def json_only() -> object:
        return json.loads(body)["patients"]

    a, b, c = best_of(ours), best_of(theirs), best_of(json_only)
    ms = {"cattrs": a * 1e3, "pydantic v2": b * 1e3, "json only": c * 1e3}
    print("100-patient page: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
    verdict = "met" if a <= b else "MISSED"
    print(f"ratio cattrs/pydantic {a / b:.2f} (target <= 1.00: {verdict})")
    print(f"cost over json: cattrs {(a - c) * 1e3:.2f} ms, pydantic {(b - c) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
