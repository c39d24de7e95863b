"""Interim declarations of the core resources (replaced by the generated resource table)."""

from __future__ import annotations

import functools
from typing import Any

from .._filters import FilterType
from .._resource import ActionOp, Async, CreateOp, GetOp, ListOp, ModeT, Resource, Sync, UpdateOp
from ..models import (
    IndividualAppointment,
    IndividualAppointmentCancelInput,
    IndividualAppointmentInput,
    Patient,
    PatientInput,
    Practitioner,
)

__all__ = [
    "RESOURCES",
    "AsyncResources",
    "IndividualAppointmentsResource",
    "PatientsResource",
    "PractitionersResource",
    "SyncResources",
]

S, N, D, T, B = (
    FilterType.STRING,
    FilterType.INTEGER,
    FilterType.DATE,
    FilterType.DATETIME,
    FilterType.BOOLEAN,
)
_ARCHIVE_INSTEAD = "Cliniko deprecated this DELETE; use archive()"


_PRACTITIONER_FILTERS = {"created_at": T, "id": N, "updated_at": T, "user_id": N}
_APPOINTMENT_FILTERS = {
    "appointment_type_id": N,
    "archived_at": T,
    "business_id": N,
    "cancelled_at": T,
    "created_at": T,
    "deleted_at": T,
    "ends_at": T,
    "id": N,
    "patient_case_id": N,
    "patient_id": N,
    "practitioner_id": N,
    "repeated_from_id": N,
    "starts_at": T,
    "updated_at": T,
}


class PatientsResource(Resource[ModeT]):
    """Patients (``/patients``)."""

    list = ListOp(
        "/patients",
        "patients",
        Patient,
        filters={
            "accepted_privacy_policy": B,
            "archived_at": T,
            "created_at": T,
            "date_of_birth": D,
            "email": S,
            "first_name": S,
            "id": N,
            "last_name": S,
            "old_reference_id": S,
            "preferred_first_name": S,
            "updated_at": T,
        },
    )
    get = GetOp("/patients/{id}", Patient, filters={"archived_at": T})
    create = CreateOp("/patients", Patient, PatientInput)
    update = UpdateOp("/patients/{id}", Patient, PatientInput)
    archive = ActionOp("POST", "/patients/{id}/archive")
    unarchive = ActionOp("POST", "/patients/{id}/unarchive", Patient)
    delete = ActionOp("DELETE", "/patients/{id}", deprecated=_ARCHIVE_INSTEAD)
    list_archived = ListOp(
        "/patients/archived",
        "patients",
        Patient,
        deprecated="only in the older API reference; use list(q=[q('archived_at').any()])",
    )
    list_deleted = ListOp(
        "/patients/deleted",
        "patients",
        Patient,
        deprecated="only in the older API reference; use list(q=[q('deleted_at').any()])",
    )


class PractitionersResource(Resource[ModeT]):
    """Practitioners (``/practitioners``)."""

    list = ListOp("/practitioners", "practitioners", Practitioner, filters=_PRACTITIONER_FILTERS)
    get = GetOp("/practitioners/{id}", Practitioner)
    list_inactive = ListOp(
        "/practitioners/inactive", "practitioners", Practitioner, filters=_PRACTITIONER_FILTERS
    )
    list_for_appointment_type = ListOp(
        "/appointment_types/{appointment_type_id}/practitioners",
        "practitioners",
        Practitioner,
        filters=_PRACTITIONER_FILTERS,
    )
    list_inactive_for_appointment_type = ListOp(
        "/appointment_types/{appointment_type_id}/practitioners/inactive",
        "practitioners",
        Practitioner,
        filters=_PRACTITIONER_FILTERS,
    )
    list_for_business = ListOp(
        "/businesses/{business_id}/practitioners",
        "practitioners",
        Practitioner,
        filters=_PRACTITIONER_FILTERS,
    )
    list_inactive_for_business = ListOp(
        "/businesses/{business_id}/practitioners/inactive",
        "practitioners",
        Practitioner,
        filters=_PRACTITIONER_FILTERS,
    )


class IndividualAppointmentsResource(Resource[ModeT]):
    """Individual appointments (``/individual_appointments``)."""

    list = ListOp(
        "/individual_appointments",
        "individual_appointments",
        IndividualAppointment,
        filters=_APPOINTMENT_FILTERS,
    )
    get = GetOp("/individual_appointments/{id}", IndividualAppointment)
    create = CreateOp("/individual_appointments", IndividualAppointment, IndividualAppointmentInput)
    update = UpdateOp(
        "/individual_appointments/{id}", IndividualAppointment, IndividualAppointmentInput
    )
    archive = ActionOp("POST", "/individual_appointments/{id}/archive")
    cancel = ActionOp(
        "PATCH", "/individual_appointments/{id}/cancel", None, IndividualAppointmentCancelInput
    )
    delete = ActionOp("DELETE", "/individual_appointments/{id}", deprecated=_ARCHIVE_INSTEAD)
    conflicts = GetOp("/individual_appointments/{id}/conflicts", dict)
    list_cancelled = ListOp(
        "/individual_appointments/cancelled",
        "individual_appointments",
        IndividualAppointment,
        deprecated="only in the older API reference; use list(q=[q('cancelled_at').any()])",
    )
    list_deleted = ListOp(
        "/individual_appointments/deleted",
        "individual_appointments",
        IndividualAppointment,
        deprecated="only in the older API reference; use list(q=[q('deleted_at').any()])",
    )


RESOURCES: dict[str, type[Resource[Any]]] = {
    "patients": PatientsResource,
    "practitioners": PractitionersResource,
    "individual_appointments": IndividualAppointmentsResource,
}


class AsyncResources:
    """Resource attributes of :class:`~cliniko_async.Cliniko`."""

    _resource_host: Any

    @functools.cached_property
    def patients(self) -> PatientsResource[Async]:
        """Patients (``/patients``)."""
        return PatientsResource(self._resource_host)

    @functools.cached_property
    def practitioners(self) -> PractitionersResource[Async]:
        """Practitioners (``/practitioners``)."""
        return PractitionersResource(self._resource_host)

    @functools.cached_property
    def individual_appointments(self) -> IndividualAppointmentsResource[Async]:
        """Individual appointments (``/individual_appointments``)."""
        return IndividualAppointmentsResource(self._resource_host)


class SyncResources:
    """Resource attributes of :class:`~cliniko_async.SyncCliniko`."""

    _resource_host: Any

    @functools.cached_property
    def patients(self) -> PatientsResource[Sync]:
        """Patients (``/patients``)."""
        return PatientsResource(self._resource_host)

    @functools.cached_property
    def practitioners(self) -> PractitionersResource[Sync]:
        """Practitioners (``/practitioners``)."""
        return PractitionersResource(self._resource_host)

    @functools.cached_property
    def individual_appointments(self) -> IndividualAppointmentsResource[Sync]:
        """Individual appointments (``/individual_appointments``)."""
        return IndividualAppointmentsResource(self._resource_host)
