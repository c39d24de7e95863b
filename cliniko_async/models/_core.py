"""Interim hand-checked models for the core resources (replaced by the generated models)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import attrs

from .._model import Model
from .._types import UNSET, Link, Unset

__all__ = [
    "IndividualAppointment",
    "IndividualAppointmentCancelInput",
    "IndividualAppointmentInput",
    "Patient",
    "PatientInput",
    "PhoneNumber",
    "Practitioner",
]


@attrs.frozen(kw_only=True)
class PhoneNumber(Model):
    """PhoneNumber (Cliniko schema ``PhoneNumber``)."""

    normalized_number: str | None = None
    number: str | None = None
    phone_type: str | None = None


@attrs.frozen(kw_only=True)
class Patient(Model):
    """Patient (Cliniko schema ``Patient``)."""

    accepted_email_marketing: bool | None = None
    accepted_privacy_policy: bool | None = None
    accepted_sms_marketing: bool | None = None
    address_1: str | None = None
    address_2: str | None = None
    address_3: str | None = None
    appointment_notes: str | None = None
    appointments: Link | None = None
    archived_at: dt.datetime | None = None
    attendees: Link | None = None
    city: str | None = None
    concession_type: Link | None = None
    country: str | None = None
    country_code: str | None = None
    created_at: dt.datetime | None = None
    custom_fields: dict[str, Any] | None = None
    date_of_birth: dt.date | None = None
    deleted_at: dt.datetime | None = None
    dva_card_number: str | None = None
    email: str | None = None
    emergency_contact: str | None = None
    first_name: str | None = None
    gender: str | None = None
    gender_identity: str | None = None
    id: int | None = None
    invoice_default_to: str | None = None
    invoice_email: str | None = None
    invoice_extra_information: str | None = None
    invoices: Link | None = None
    label: str | None = None
    last_name: str | None = None
    latest_booking: Link | None = None
    links: Link | None = None
    medical_alerts: Link | None = None
    medicare: str | None = None
    medicare_reference_number: str | None = None
    merged_at: dt.datetime | None = None
    merged_with_patient: Link | None = None
    notes: str | None = None
    occupation: str | None = None
    old_reference_id: str | None = None
    patient_attachments: Link | None = None
    patient_phone_numbers: list[PhoneNumber] | None = None
    post_code: str | None = None
    preferred_first_name: str | None = None
    pronouns: dict[str, Any] | None = None
    receives_cancellation_emails: bool | None = None
    receives_confirmation_emails: bool | None = None
    referral_source: str | None = None
    referring_doctor: Link | None = None
    relationships: Link | None = None
    reminder_type: str | None = None
    sex: str | None = None
    state: str | None = None
    time_zone: str | None = None
    title: str | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Practitioner(Model):
    """Practitioner (Cliniko schema ``Practitioner``)."""

    active: bool | None = None
    appointment_types: Link | None = None
    appointments: Link | None = None
    created_at: dt.datetime | None = None
    default_appointment_type: Link | None = None
    description: str | None = None
    designation: str | None = None
    display_name: str | None = None
    first_name: str | None = None
    id: int | None = None
    invoices: Link | None = None
    label: str | None = None
    last_name: str | None = None
    links: Link | None = None
    practitioner_reference_numbers: Link | None = None
    show_in_online_bookings: bool | None = None
    title: str | None = None
    updated_at: dt.datetime | None = None
    user: Link | None = None


@attrs.frozen(kw_only=True)
class IndividualAppointment(Model):
    """IndividualAppointment (Cliniko schema ``IndividualAppointment``)."""

    appointment_type: Link | None = None
    archived_at: dt.datetime | None = None
    attendees: Link | None = None
    booking_ip_address: str | None = None
    business: Link | None = None
    cancellation_note: str | None = None
    cancellation_reason: int | None = None
    cancellation_reason_description: str | None = None
    cancelled_at: dt.datetime | None = None
    conflicts: Link | None = None
    created_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    did_not_arrive: bool | None = None
    email_reminder_sent: bool | None = None
    ends_at: dt.datetime | None = None
    has_patient_appointment_notes: bool | None = None
    id: int | None = None
    invoice_status: int | None = None
    links: Link | None = None
    notes: str | None = None
    online_booking_policy_accepted: bool | None = None
    patient: Link | None = None
    patient_arrived: bool | None = None
    patient_case: Link | None = None
    patient_name: str | None = None
    practitioner: Link | None = None
    repeat_rule: dict[str, Any] | None = None
    repeated_from: Link | None = None
    repeats: Link | None = None
    sms_reminder_sent: bool | None = None
    starts_at: dt.datetime | None = None
    telehealth_url: str | None = None
    treatment_note_status: int | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class PatientInput:
    """Request body for creating or updating a Patient (unset fields are not sent)."""

    __required__: ClassVar[frozenset[str]] = frozenset({"last_name", "first_name"})
    accepted_email_marketing: bool | Unset | None = UNSET
    accepted_privacy_policy: bool | Unset | None = UNSET
    address_1: str | Unset | None = UNSET
    address_2: str | Unset | None = UNSET
    address_3: str | Unset | None = UNSET
    appointment_notes: str | Unset | None = UNSET
    city: str | Unset | None = UNSET
    concession_type_id: int | Unset | None = UNSET
    country: str | Unset | None = UNSET
    country_code: str | Unset | None = UNSET
    custom_fields: dict[str, Any] | Unset | None = UNSET
    date_of_birth: dt.date | Unset | None = UNSET
    dva_card_number: str | Unset | None = UNSET
    email: str | Unset | None = UNSET
    emergency_contact: str | Unset | None = UNSET
    first_name: str | Unset | None = UNSET
    gender_identity: str | Unset | None = UNSET
    invoice_default_to: str | Unset | None = UNSET
    invoice_email: str | Unset | None = UNSET
    invoice_extra_information: str | Unset | None = UNSET
    last_name: str | Unset | None = UNSET
    medicare: str | Unset | None = UNSET
    medicare_reference_number: str | Unset | None = UNSET
    notes: str | Unset | None = UNSET
    occupation: str | Unset | None = UNSET
    old_reference_id: str | Unset | None = UNSET
    patient_phone_numbers: list[dict[str, Any]] | Unset | None = UNSET
    post_code: str | Unset | None = UNSET
    preferred_first_name: str | Unset | None = UNSET
    pronouns: dict[str, Any] | Unset | None = UNSET
    receives_cancellation_emails: bool | Unset | None = UNSET
    receives_confirmation_emails: bool | Unset | None = UNSET
    referral_source: str | Unset | None = UNSET
    referring_doctor_id: int | Unset | None = UNSET
    reminder_type: str | Unset | None = UNSET
    sex: str | Unset | None = UNSET
    state: str | Unset | None = UNSET
    time_zone: str | Unset | None = UNSET
    title: str | Unset | None = UNSET
    unsubscribe_sms_marketing: bool | Unset | None = UNSET


@attrs.frozen(kw_only=True)
class IndividualAppointmentInput:
    """Request body for creating or updating a IndividualAppointment (unset fields are not sent)."""

    __required__: ClassVar[frozenset[str]] = frozenset(
        {
            "business_id",
            "patient_id",
            "starts_at",
            "practitioner_id",
            "ends_at",
            "appointment_type_id",
        }
    )
    appointment_type_id: int | Unset | None = UNSET
    business_id: int | Unset | None = UNSET
    ends_at: dt.datetime | Unset | None = UNSET
    notes: str | Unset | None = UNSET
    patient_case_id: int | Unset | None = UNSET
    patient_id: int | Unset | None = UNSET
    practitioner_id: int | Unset | None = UNSET
    repeat_rule: dict[str, Any] | Unset | None = UNSET
    starts_at: dt.datetime | Unset | None = UNSET


@attrs.frozen(kw_only=True)
class IndividualAppointmentCancelInput:
    """Request body for cancelling an IndividualAppointment (unset fields are not sent)."""

    __required__: ClassVar[frozenset[str]] = frozenset({"cancellation_reason"})
    apply_to_repeats: bool | Unset | None = UNSET
    cancellation_note: str | Unset | None = UNSET
    cancellation_reason: int | Unset | None = UNSET
