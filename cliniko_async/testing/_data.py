"""Deterministic, realistic seed data for the fake Cliniko, in Cliniko's wire format."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

__all__ = ["Dataset", "generate", "iso"]

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret",
         "Niklaus", "Radia", "Tim", "Hedy", "John", "Katherine", "Linus", "Mary", "Dennis",
         "Sophie", "Guido", "Anita", "Leslie", "Shafi", "Whitfield"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
        "Hamilton", "Wirth", "Perlman", "Berners-Lee", "Lamarr", "McCarthy", "Johnson", "Torvalds",
        "Jackson", "Ritchie", "Wilson", "van Rossum", "Borg", "Lamport", "Goldwasser", "Diffie"]  # fmt: skip
APPOINTMENT_TYPES = [("Initial Consultation", 60), ("Follow-up", 30), ("Massage", 45),
                     ("Telehealth Review", 20), ("Group Pilates", 55)]  # fmt: skip
EPOCH = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
Dataset = dict[str, dict[int, dict[str, Any]]]


def iso(t: dt.datetime) -> str:
    """``2026-01-02T03:04:05Z``."""
    # (isoformat, not strftime: "%Y" leaves year 1 as "1", which is no date-time)
    return t.astimezone(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _link(resource: str, rid: int) -> dict[str, Any]:
    return {"links": {"self": f"/{resource}/{rid}"}}


def generate(
    *,
    seed: int,
    patients: int,
    practitioners: int,
    businesses: int,
    appointment_types: int,
    appointments: int,
) -> Dataset:
    """Records keyed by resource and id. Links are stored as paths; the app makes them absolute."""
    rng = random.Random(seed)
    data: Dataset = {
        name: {}
        for name in (
            "patients",
            "practitioners",
            "businesses",
            "appointment_types",
            "individual_appointments",
        )
    }
    created = iso(EPOCH - dt.timedelta(days=400))
    for i in range(1, businesses + 1):
        data["businesses"][i] = {
            "id": str(i), "business_name": f"Clinic {i}", "city": rng.choice(["Melbourne", "Hobart"]),
            "created_at": created, "updated_at": created, "archived_at": None,
        }  # fmt: skip
    for i in range(1, practitioners + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        data["practitioners"][i] = {
            "id": str(i), "first_name": first, "last_name": last, "title": "Dr",
            "display_name": f"Dr {first} {last}", "active": i % 7 != 0,
            "show_in_online_bookings": True, "created_at": created, "updated_at": created,
        }  # fmt: skip
    for i in range(1, appointment_types + 1):
        name, minutes = APPOINTMENT_TYPES[(i - 1) % len(APPOINTMENT_TYPES)]
        data["appointment_types"][i] = {
            "id": str(i), "name": name, "duration_in_minutes": minutes, "color": "#3366cc",
            "max_attendees": 8 if "Group" in name else 1, "created_at": created,
            "appointment_confirmation_template_ids": [str(t) for t in sorted(rng.sample(range(1, 9), rng.randrange(0, 4)))],
            "updated_at": created, "archived_at": None,
        }  # fmt: skip
    base = EPOCH - dt.timedelta(days=365)
    for i in range(1, patients + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 30000))
        when = base + dt.timedelta(minutes=rng.randrange(0, 500_000))
        data["patients"][i] = {
            "id": str(i), "first_name": first, "last_name": last,
            "email": f"{first}.{last}{i}@example.com".lower().replace(" ", ""),
            "date_of_birth": born.isoformat() if i % 17 else None,
            "archived_at": None, "deleted_at": None, "accepted_privacy_policy": bool(i % 3),
            "old_reference_id": f"R{i:06d}", "preferred_first_name": None,
            "patient_phone_numbers": [{"number": f"04{rng.randrange(10**8):08d}", "phone_type": "Mobile"}],
            "created_at": iso(when), "updated_at": iso(when),
        }  # fmt: skip
    for i in range(1, appointments + 1):
        starts = base + dt.timedelta(minutes=15 * rng.randrange(0, 35_000))
        type_id = rng.randrange(1, appointment_types + 1) if appointment_types else 1
        minutes = APPOINTMENT_TYPES[(type_id - 1) % len(APPOINTMENT_TYPES)][1]
        patient = rng.randrange(1, patients + 1) if patients else 1
        data["individual_appointments"][i] = {
            "id": str(i), "starts_at": iso(starts),
            "ends_at": iso(starts + dt.timedelta(minutes=minutes)),
            "patient": _link("patients", patient),
            "practitioner": _link("practitioners", rng.randrange(1, practitioners + 1) if practitioners else 1),
            "business": _link("businesses", rng.randrange(1, businesses + 1) if businesses else 1),
            "appointment_type": _link("appointment_types", type_id),
            "notes": None, "did_not_arrive": False,
            "cancelled_at": None, "cancellation_reason": None, "archived_at": None,
            "deleted_at": None, "repeat_rule": {}, "created_at": iso(starts - dt.timedelta(days=7)),
            "updated_at": iso(starts - dt.timedelta(days=7)),
        }  # fmt: skip
    _created_in_id_order(data["patients"])
    _created_in_id_order(data["individual_appointments"])
    return data


def _created_in_id_order(table: dict[int, dict[str, Any]]) -> None:
    """Cliniko hands out ids in creation order: the same creation times, given out by id."""
    times = sorted(record["created_at"] for record in table.values())
    for (_, record), when in zip(sorted(table.items()), times, strict=True):
        record["created_at"] = record["updated_at"] = when
