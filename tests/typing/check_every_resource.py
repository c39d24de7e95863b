"""Typical user code touching every resource, checked by mypy --strict (never executed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import assert_type

from cliniko_async import Cliniko, SyncCliniko, q
from cliniko_async.models import (
    AppointmentType,
    AppointmentTypeBillableItem,
    AppointmentTypeProduct,
    AttachmentPresignedPost,
    Attendee,
    AttendeeCancelInput,
    AvailabilityBlock,
    AvailableTime,
    BillableItem,
    BillableItemInput,
    Booking,
    Business,
    Communication,
    ConcessionPrice,
    ConcessionType,
    Conflicts,
    Contact,
    DailyAvailability,
    GroupAppointment,
    IndividualAppointment,
    IndividualAppointmentCancelInput,
    Invoice,
    InvoiceItem,
    MedicalAlert,
    MedicalAlertInput,
    MemoCommunication,
    NextAvailableTime,
    Patient,
    PatientAttachment,
    PatientCase,
    PatientForm,
    PatientFormTemplate,
    PatientInput,
    PatientInputPronouns,
    Practitioner,
    PractitionerReferenceNumber,
    Product,
    ProductSupplier,
    PublicSettings,
    ReferralSource,
    ReferralSourceType,
    Relationship,
    Service,
    Settings,
    Signature,
    StockAdjustment,
    Tax,
    TreatmentNote,
    TreatmentNoteTemplate,
    UnavailableBlock,
    UnavailableBlockType,
    UploadedPatientAttachment,
    User,
)

WEEK = {"from": dt.date(2026, 3, 2), "to": dt.date(2026, 3, 8)}


async def front_desk(cliniko: Cliniko) -> None:
    patient = await cliniko.patients.get(1)
    assert_type(patient, Patient)
    assert_type(patient.date_of_birth, dt.date | None)
    new = PatientInput(first_name="Ada", last_name="Lovelace", pronouns=PatientInputPronouns(
        accusative="her", nominative="she", predicative_possessive="hers",
        pronominal_possessive="her", reflexive="herself",
    ))  # fmt: skip
    assert_type(await cliniko.patients.create(new), Patient)
    assert_type(await cliniko.patients.unarchive(1), Patient)
    assert_type(await cliniko.patient_cases.list_active().collect(), list[PatientCase])
    assert_type(await cliniko.medical_alerts.create(MedicalAlertInput(name="x")), MedicalAlert)
    assert_type(await cliniko.referral_sources.get(1), ReferralSource)
    assert_type(await cliniko.referral_source_types.get(1), ReferralSourceType)
    assert_type(await cliniko.relationships.list().collect(), list[Relationship])
    assert_type(await cliniko.contacts.get(1), Contact)
    assert_type(await cliniko.concession_types.list().collect(), list[ConcessionType])
    assert_type(await cliniko.concession_prices.get(1), ConcessionPrice)
    async for memo in cliniko.communications.list(q=[q("patient_id") == 1]):
        assert_type(memo, Communication)
    assert_type(await cliniko.communications.get(1), Communication)
    assert_type(await cliniko.communications.archive(1), None)
    assert_type(await cliniko.patient_attachments.get(1), PatientAttachment)
    assert_type(await cliniko.patient_attachments.presigned_post(1), AttachmentPresignedPost)
    uploaded = await cliniko.patient_attachments.upload(1, Path("scan.pdf"), description="x")
    assert_type(uploaded, UploadedPatientAttachment)


async def calendar(cliniko: Cliniko) -> None:
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    appts = cliniko.individual_appointments.list(q=[q("starts_at") >= start], sort="starts_at")
    async for appt in appts:
        assert_type(appt, IndividualAppointment)
        assert_type(appt.starts_at, dt.datetime | None)
    assert_type(await cliniko.individual_appointments.conflicts(1), Conflicts)
    cancel = IndividualAppointmentCancelInput(cancellation_reason=50)
    assert_type(await cliniko.individual_appointments.cancel(1, cancel), None)
    assert_type(await cliniko.group_appointments.get(1), GroupAppointment)
    assert_type(
        await cliniko.attendees.cancel(1, AttendeeCancelInput(cancellation_reason=10)), None
    )
    assert_type(await cliniko.attendees.list().collect(), list[Attendee])
    assert_type(await cliniko.bookings.list().collect(), list[Booking])
    assert_type(await cliniko.unavailable_blocks.get(1), UnavailableBlock)
    assert_type(await cliniko.unavailable_block_types.list().collect(), list[UnavailableBlockType])
    assert_type(await cliniko.availability_blocks.list().collect(), list[AvailabilityBlock])
    assert_type(
        await cliniko.daily_availabilities.list_for_practitioner(1).collect(),
        list[DailyAvailability],
    )
    times = cliniko.available_times.list(1, 2, 3, params=WEEK)
    assert_type(await times.collect(), list[AvailableTime])
    assert_type(await cliniko.available_times.next_available_time(1, 2, 3, params=WEEK),
                NextAvailableTime)  # fmt: skip
    assert_type(await cliniko.practitioners.list_inactive().collect(), list[Practitioner])
    assert_type(await cliniko.practitioner_reference_numbers.get(1), PractitionerReferenceNumber)
    assert_type(await cliniko.businesses.get(1), Business)
    assert_type(await cliniko.services.list_for_business(1).collect(), list[Service])
    assert_type(await cliniko.appointment_types.get(1), AppointmentType)


async def billing_and_clinical(cliniko: Cliniko) -> None:
    invoice = await cliniko.invoices.get(1)
    assert_type(invoice, Invoice)
    assert_type(invoice.total_amount, Decimal | None)
    assert_type(await cliniko.invoice_items.list().collect(), list[InvoiceItem])
    item = BillableItemInput(name="Consult", price=Decimal("95.00"))
    assert_type(await cliniko.billable_items.create(item), BillableItem)
    assert_type(await cliniko.taxes.get(1), Tax)
    assert_type(await cliniko.products.get(1), Product)
    assert_type(await cliniko.product_suppliers.get(1), ProductSupplier)
    assert_type(await cliniko.stock_adjustments.get(1), StockAdjustment)
    assert_type(await cliniko.appointment_type_billable_items.get(1), AppointmentTypeBillableItem)
    assert_type(await cliniko.appointment_type_products.get(1), AppointmentTypeProduct)
    assert_type(await cliniko.treatment_notes.list_for_patient(1).collect(), list[TreatmentNote])
    assert_type(await cliniko.treatment_note_templates.get(1), TreatmentNoteTemplate)
    assert_type(await cliniko.patient_forms.get(1), PatientForm)
    assert_type(await cliniko.patient_form_templates.get(1), PatientFormTemplate)
    assert_type(await cliniko.signatures.get(1, 2), Signature)


async def admin(cliniko: Cliniko) -> None:
    assert_type(await cliniko.settings.get(), Settings)
    assert_type(await cliniko.settings.get_public(), PublicSettings)
    assert_type(await cliniko.users.get_authenticated_user(), User)
    assert_type(await cliniko.users.list().collect(), list[User])


def worker(cliniko: SyncCliniko) -> None:
    assert_type(cliniko.patients.get(1), Patient)
    for memo in cliniko.communications.list():
        assert_type(memo, Communication)
    assert_type(cliniko.individual_appointments.archive(1), None)
    assert_type(cliniko.patient_attachments.upload(1, "scan.pdf"), UploadedPatientAttachment)
    assert_type(MemoCommunication(id=1).id, int)  # a record always has its id
