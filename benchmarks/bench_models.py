"""Target 4: structuring a 100-patient page, cattrs converter vs pydantic v2 vs JSON alone.

Every variant starts from the same response bytes. pydantic gets equivalent models, built from
ours field by field (same names, types, optionality, nested models, links as nested models),
and its fastest path (``validate_json``, parsing in Rust); ours decodes the way the client does
(orjson when installed, else json) and structures with the one cattrs converter.
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from decimal import Decimal
from typing import Any

import attrs
import pydantic

from cliniko_async._converter import structure_many
from cliniko_async._model import TAGGED_UNIONS, Model
from cliniko_async._session import _loads as loads
from cliniko_async._types import Link
from cliniko_async.models import Patient
from cliniko_async.testing import FakeCliniko

from ._common import best_of, result

_MIRRORS: dict[Any, Any] = {}


class LinksP(pydantic.BaseModel):
    self_: str | None = pydantic.Field(default=None, alias="self")


class LinkP(pydantic.BaseModel):
    links: LinksP | None = None


def mirror(t: Any) -> Any:
    """The pydantic equivalent of one of our annotations."""
    if t in _MIRRORS:
        return _MIRRORS[t]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        if t in TAGGED_UNIONS:
            members = tuple(mirror(m) for m in TAGGED_UNIONS[t][1].values())
            return typing.Union[members]  # noqa: UP007
        return typing.Union[tuple(mirror(a) for a in typing.get_args(t))]  # noqa: UP007
    if origin is tuple:
        return list[mirror(typing.get_args(t)[0])]  # type: ignore[misc]
    if t is Link:
        return LinkP
    if isinstance(t, type) and issubclass(t, Model):
        hints = typing.get_type_hints(t)
        fields: dict[str, Any] = {}
        for a in attrs.fields(t):
            if a.name != "extra":
                alias = t.__renames__.get(a.name)
                default = pydantic.Field(default=None, alias=alias) if alias else None
                fields[a.name] = (mirror(hints[a.name]), default)
        model = pydantic.create_model(t.__name__ + "P", **fields)
        _MIRRORS[t] = model
        return model
    if t in (str, int, bool, dt.datetime, dt.date, dt.time, Decimal, type(None)):
        return t
    return Any


def page_bytes() -> bytes:
    """A realistic 100-patient page as the fake Cliniko sends it."""
    fake = FakeCliniko(patients=100, appointments=0, rate_limit=None)
    page = []
    for r in fake.data["patients"].values():
        record = {**r, "links": {"self": f"https://api.au1.cliniko.com/v1/patients/{r['id']}"}}
        page.append(record)
    return json.dumps({"patients": page, "total_entries": 100, "links": {}}).encode()


def main() -> None:
    body = page_bytes()
    patient_p = mirror(Patient)
    patients_p = pydantic.TypeAdapter(list[patient_p])  # type: ignore[valid-type]
    page_p = pydantic.create_model("PageP", patients=(list[patient_p], ...))  # type: ignore[valid-type]

    def ours() -> object:
        return structure_many(loads(body)["patients"], Patient)  # what the paginator does

    def theirs() -> object:
        return page_p.model_validate_json(body).patients  # type: ignore[attr-defined]

    def theirs_dicts() -> object:
        return patients_p.validate_python(json.loads(body)["patients"])

    def json_only() -> object:
        return loads(body)["patients"]

    ours_p = ours()
    assert len(ours_p) == 100  # type: ignore[arg-type]
    a, b, b2, c = best_of(ours), best_of(theirs), best_of(theirs_dicts), best_of(json_only)
    fastest_pydantic = min(b, b2)
    ms = {"cattrs": a, "pydantic (json)": b, "pydantic (dicts)": b2, "decode only": c}
    print("100-patient page: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in ms.items()))
    verdict = "met" if a <= fastest_pydantic else "MISSED"
    print(f"ratio cattrs / fastest pydantic {a / fastest_pydantic:.2f} (target <= 1.00: {verdict})")
    print(f"cost over decoding: cattrs {(a - c) * 1e3:.3f} ms")
    result(
        "4 models",
        f"100-patient page {a * 1e3:.3f} ms vs pydantic v2 {fastest_pydantic * 1e3:.3f} ms = "
        f"{a / fastest_pydantic:.2f} x (decoding alone {c * 1e3:.3f} ms)",
        a <= fastest_pydantic,
    )


if __name__ == "__main__":
    main()
