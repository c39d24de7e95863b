"""Target 4: a 100-patient page of realistic records, ours vs pydantic v2 (GC on and off).

The records are as rich as the patient in Cliniko's own documentation (~2.3 KB of JSON each,
most fields set: custom fields with options, phone numbers, links, pronouns), built by
:func:`patient_record` with every value varied per record. Every contender gets the same bytes:

- ours: the client's decode (orjson when installed, else json) + ``structure_many``, what the
  paginator does;
- pydantic v2: models of equivalent strictness built from ours field by field (aware datetimes,
  ``Decimal`` money, links and phone numbers as nested models, custom fields as a union
  discriminated by ``type``), through its fastest path (``model_validate_json``, Rust parsing);
- msgspec: ``Struct``s of the same shape (a reference, not a target).

Timings interleave the contenders (ABAB...) and keep each one's best; then the memory each
keeps per record (tracemalloc, after the decoded JSON is gone), ours vs pydantic.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import random
import sys
import time
import tracemalloc
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import attrs
import msgspec
import pydantic

from cliniko_async._converter import structure_many
from cliniko_async._json import loads
from cliniko_async._model import TAGGED_UNIONS, Model
from cliniko_async._types import Link
from cliniko_async.models import Patient

from ._common import result

API = "https://api.au1.cliniko.com/v1"

# -- realistic records ---------------------------------------------------------------------

_FIRST = ["Peter", "Ada", "Grace", "Alan", "Katherine", "Margaret", "Edsger", "Barbara"]
_LAST = ["Patientman", "Lovelace", "Hopper", "Turing", "Johnson", "Hamilton", "Dijkstra"]
_CITIES = [("Melbourne", "Victoria", "3000"), ("Sydney", "New South Wales", "2000")]


def _ts(rng: random.Random) -> str:
    moment = dt.datetime(2013, 1, 1) + dt.timedelta(seconds=rng.randrange(400_000_000))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _link(path: str) -> dict[str, Any]:
    return {"links": {"self": f"{API}/{path}"}}


def patient_record(i: int, rng: random.Random) -> dict[str, Any]:
    """One patient shaped like the documented example (GET /patients/{id}), values varied."""
    pid = 1_000_000_000_000_000 + i * 7919
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, state, post_code = rng.choice(_CITIES)

    def uuid() -> str:
        return f"{rng.getrandbits(128):032x}"

    return {
        "accepted_privacy_policy": True,
        "accepted_email_marketing": rng.random() < 0.5,
        "accepted_sms_marketing": False,
        "address_1": f"{rng.randrange(1, 300)} Smith Street",
        "address_2": "",
        "address_3": "",
        "archived_at": None,
        "city": city,
        "country": "Australia",
        "country_code": "AU",
        "created_at": _ts(rng),
        "custom_fields": {
            "sections": [
                {
                    "name": "Insurance coverage",
                    "token": uuid(),
                    "fields": [
                        {
                            "name": "Provider",
                            "type": "radiobuttons",
                            "other": {"enabled": True},
                            "token": uuid(),
                            "options": [
                                {"name": "Great Insurance", "token": uuid()},
                                {"name": "Super Insurance", "token": uuid(), "selected": True},
                            ],
                        },
                        {
                            "name": "Policy number",
                            "type": "text",
                            "token": uuid(),
                            "value": f"ABC-{rng.randrange(10**5):05d}",
                        },
                    ],
                }
            ]
        },
        "date_of_birth": f"{rng.randrange(1930, 2020)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d}",
        "deleted_at": None,
        "dva_card_number": "",
        "email": f"{first.lower()}.{last.lower()}{i}@example.com",
        "emergency_contact": "Jane Doe 0400 000 000",
        "first_name": first,
        "invoice_default_to": "Super Insurance",
        "invoice_email": "super.insurance@example.com",
        "invoice_extra_information": f"Insurance #{rng.randrange(10**6)}\r\nClaim #123456",
        "gender": "Male",
        "gender_identity": "Transgender",
        "id": str(pid),
        "label": "VIP",
        "last_name": last,
        "medicare": f"{rng.randrange(10**9, 10**10)}",
        "medicare_reference_number": "1",
        "merged_at": None,
        "notes": "Prefers morning appointments.",
        "appointment_notes": "",
        "occupation": "Engineer",
        "old_reference_id": f"R{i}",
        "patient_phone_numbers": [
            {"phone_type": "Mobile", "number": f"614{rng.randrange(10**8):08d}"},
            {"phone_type": "Home", "number": f"613{rng.randrange(10**8):08d}"},
        ],
        "post_code": post_code,
        "preferred_first_name": first[:3],
        "pronouns": {
            "accusative": "him",
            "nominative": "he",
            "predicative_possessive": "his",
            "pronominal_possessive": "his",
            "reflexive": "himself",
        },
        "receives_cancellation_emails": True,
        "receives_confirmation_emails": True,
        "referral_source": "Google",
        "reminder_type": "SMS & Email",
        "sex": "Female to Male",
        "state": state,
        "title": "Mr",
        "time_zone": "Australia/Melbourne",
        "updated_at": _ts(rng),
        "concession_type": _link(f"concession_types/{rng.randrange(1, 50)}"),
        "referring_doctor": _link(f"contacts/{rng.randrange(1, 10**6)}"),
        "medical_alerts": _link(f"patients/{pid}/medical_alerts?page=1"),
        "invoices": _link(f"patients/{pid}/invoices?page=1"),
        "appointments": _link(f"patients/{pid}/appointments?page=1"),
        "links": {"self": f"{API}/patients/{pid}"},
    }


def page_bytes(n: int = 100, seed: int = 14) -> bytes:
    """A page of ``n`` realistic patients, as Cliniko sends it (compact JSON)."""
    rng = random.Random(seed)
    page = [patient_record(i, rng) for i in range(n)]
    body = {"patients": page, "total_entries": n, "links": {"self": f"{API}/patients?page=1"}}
    return json.dumps(body, separators=(",", ":")).encode()


#: The keys the fake Cliniko's seeded patients carry (~0.45 KB records): the sparse case.
SPARSE_KEYS = (
    "id", "first_name", "last_name", "email", "date_of_birth", "archived_at", "deleted_at",
    "accepted_privacy_policy", "old_reference_id", "preferred_first_name",
    "patient_phone_numbers", "created_at", "updated_at", "links",
)  # fmt: skip


def sparse_page_bytes(n: int = 100) -> bytes:
    """The same page with only the keys the fake's records carry."""
    page = json.loads(page_bytes(n))
    page["patients"] = [{k: p[k] for k in SPARSE_KEYS} for p in page["patients"]]
    return json.dumps(page, separators=(",", ":")).encode()


# -- pydantic v2 and msgspec equivalents ---------------------------------------------------

_P: dict[Any, Any] = {}
_M: dict[Any, Any] = {}


class LinksP(pydantic.BaseModel):
    self_: str | None = pydantic.Field(default=None, alias="self")


class LinkP(pydantic.BaseModel):
    links: LinksP | None = None


class LinksM(msgspec.Struct):
    self_: str | None = msgspec.field(default=None, name="self")


class LinkM(msgspec.Struct):
    links: LinksM | None = None


_SCALARS_P = {dt.datetime: pydantic.AwareDatetime, dt.date: dt.date, dt.time: dt.time}


def _tag_of(cls: type[Model]) -> tuple[str, str] | None:
    for union, (tag, variants) in TAGGED_UNIONS.items():
        for value, member in variants.items():
            if member is cls and len(typing.get_args(union)) == len(variants):
                return tag, value
    return None


def mirror_p(t: Any) -> Any:
    """The pydantic v2 equivalent of one of our annotations."""
    if t in _P:
        return _P[t]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        if t in TAGGED_UNIONS:
            members = tuple(mirror_p(m) for m in TAGGED_UNIONS[t][1].values())
            union = typing.Union.__getitem__(members)
            return typing.Annotated[union, pydantic.Field(discriminator=TAGGED_UNIONS[t][0])]
        return typing.Union[tuple(mirror_p(a) for a in typing.get_args(t))]  # noqa: UP007
    if origin is tuple:
        return list[mirror_p(typing.get_args(t)[0])]  # type: ignore[misc]
    if t is Link:
        return LinkP
    if isinstance(t, type) and issubclass(t, Model):
        hints = typing.get_type_hints(t)
        tagged = _tag_of(t)
        fields: dict[str, Any] = {}
        for a in attrs.fields(t):
            if a.name == "extra":
                continue
            alias = t.__renames__.get(a.name)
            default = pydantic.Field(default=None, alias=alias) if alias else None
            fields[a.name] = (mirror_p(hints[a.name]), default)
        if tagged is not None:  # the discriminator: a Literal of this member's tag
            fields[tagged[0]] = (Literal[tagged[1]], ...)
        model = pydantic.create_model(t.__name__ + "P", **fields)
        _P[t] = model
        return model
    if t in (str, int, bool, Decimal, type(None)) or t in _SCALARS_P:
        return _SCALARS_P.get(t, t)
    return Any


def mirror_m(t: Any) -> Any:
    """The msgspec equivalent of one of our annotations (tagged unions as tagged Structs)."""
    if t in _M:
        return _M[t]
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(mirror_m(a) for a in typing.get_args(t))]  # noqa: UP007
    if origin is tuple:
        return list[mirror_m(typing.get_args(t)[0])]  # type: ignore[misc]
    if t is Link:
        return LinkM
    if isinstance(t, type) and issubclass(t, Model):
        hints = typing.get_type_hints(t)
        tagged = _tag_of(t)
        fields: list[tuple[str, Any, Any]] = []
        for a in attrs.fields(t):
            if a.name == "extra" or (tagged and a.name == tagged[0]):
                continue
            wire = t.__renames__.get(a.name)
            default = msgspec.field(default=None, name=wire) if wire else None
            fields.append((a.name, mirror_m(hints[a.name]), default))
        kw: dict[str, Any] = {"tag_field": tagged[0], "tag": tagged[1]} if tagged else {}
        struct = msgspec.defstruct(t.__name__ + "M", fields, kw_only=True, **kw)
        _M[t] = struct
        return struct
    if t in (str, int, bool, dt.datetime, dt.date, dt.time, Decimal, type(None)):
        return t
    return Any


# -- measuring -----------------------------------------------------------------------------


def interleaved(
    contenders: dict[str, Callable[[], object]], rounds: int = 15, number: int = 20
) -> dict[str, float]:
    """Seconds per call of each contender: best of ``rounds`` interleaved runs (ABAB...)."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return best


def retained_per_record(build: Callable[[], object]) -> float:
    """Bytes still allocated per record once ``build()``'s result is all that is kept."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept: Any = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    n = len(kept)
    del kept
    return (after - before) / n


def main() -> None:
    body = page_bytes()
    n = 100
    print(f"{n} realistic patients: {len(body) / n:,.0f} bytes of JSON per record")
    patient_p: Any = mirror_p(Patient)
    page_p: Any = pydantic.create_model("PageP", patients=(list[patient_p], ...))
    patient_m: Any = mirror_m(Patient)
    page_m: Any = msgspec.defstruct("PageM", [("patients", list[patient_m])])

    def ours() -> list[Any]:
        return structure_many(loads(body)["patients"], Patient)  # what the paginator does

    def pydantic_v2() -> list[Any]:
        return page_p.model_validate_json(body).patients  # type: ignore[no-any-return]

    def msgspec_ref() -> list[Any]:
        return msgspec.json.decode(body, type=page_m, strict=False).patients  # type: ignore[no-any-return]

    def decode_only() -> list[Any]:
        return loads(body)["patients"]  # type: ignore[no-any-return]

    # The same records come out of each (spot checks that the contenders do the same work).
    start = time.perf_counter()
    first = ours()  # the first page builds (and specialises) the structure functions
    cold = time.perf_counter() - start
    a, b, c = first[7], pydantic_v2()[7], msgspec_ref()[7]
    print(f"first page, ours (structure functions built on the way): {cold * 1e3:.1f} ms")
    assert a.id == b.id == c.id and a.created_at == b.created_at == c.created_at
    assert a.created_at.tzinfo is not None and b.created_at.tzinfo is not None
    assert a.concession_type.id == int(b.concession_type.links.self_.rsplit("/", 1)[1])
    assert a.custom_fields.sections[0].fields[0].options[1].selected is True
    assert b.custom_fields.sections[0].fields[0].options[1].selected is True

    contenders: dict[str, Callable[[], object]] = {
        "ours": ours,
        "pydantic": pydantic_v2,
        "msgspec": msgspec_ref,
        "decode only": decode_only,
    }
    for label, disable in (("GC on", False), ("GC off", True)):
        if disable:
            gc.disable()
        try:
            t = interleaved(contenders)
        finally:
            gc.enable()
        ratio = t["ours"] / t["pydantic"]
        print(
            f"{label:6}: ours {t['ours'] * 1e3:.3f} ms, pydantic v2 {t['pydantic'] * 1e3:.3f} ms, "
            f"msgspec {t['msgspec'] * 1e3:.3f} ms, decode only {t['decode only'] * 1e3:.3f} ms "
            f"| ours / pydantic {ratio:.2f}, ours / msgspec {t['ours'] / t['msgspec']:.2f}"
        )
        result(
            f"4 models ({label})",
            f"100 realistic patients {t['ours'] * 1e3:.3f} ms vs pydantic v2 "
            f"{t['pydantic'] * 1e3:.3f} ms = {ratio:.2f} x (msgspec {t['msgspec'] * 1e3:.3f} ms)",
            ratio <= 1.0,
        )

    sparse = sparse_page_bytes()
    sparse_only: dict[str, Callable[[], object]] = {
        "ours": lambda: structure_many(loads(sparse)["patients"], Patient),
        "pydantic": lambda: page_p.model_validate_json(sparse).patients,
    }
    gc.disable()
    try:
        t = interleaved(sparse_only)
    finally:
        gc.enable()
    print(
        f"sparse records ({len(sparse) / n:,.0f} B, GC off, for reference): ours "
        f"{t['ours'] * 1e3:.3f} ms, pydantic v2 {t['pydantic'] * 1e3:.3f} ms "
        f"| ours / pydantic {t['ours'] / t['pydantic']:.2f}"
    )

    mem = {
        name: retained_per_record(fn) for name, fn in contenders.items() if name != "decode only"
    }
    print(
        "retained per record: "
        + ", ".join(f"{name} {v:,.0f} B" for name, v in mem.items())
        + f" | ours / pydantic {mem['ours'] / mem['pydantic']:.2f}"
    )
    result(
        "4 models (memory)",
        f"retained per realistic patient {mem['ours']:,.0f} B vs pydantic v2 "
        f"{mem['pydantic']:,.0f} B = {mem['ours'] / mem['pydantic']:.2f} x "
        f"(msgspec {mem['msgspec']:,.0f} B)",
        mem["ours"] <= mem["pydantic"],
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
