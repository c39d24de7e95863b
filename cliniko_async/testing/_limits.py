"""Field limits from Cliniko's OpenAPI description, for the fake's request validation.

Generated from ``openapi.yaml`` (maxLength and enum of each top-level field of each request body)
by ``python -m tests.testing.test_fake``; ``test_limits_match_the_spec`` keeps it in sync. The
fake reads only this table (and the package's models) at run time, never the spec itself.
"""

from __future__ import annotations

from typing import Any

#: Input class name -> wire field name -> (maxLength or None, allowed values or None).
LIMITS: dict[str, dict[str, tuple[int | None, tuple[Any, ...] | None]]] = {
    "AppointmentTypeInput": {
        "name": (255, None),
        "online_bookings_lead_time_hours": (
            None,
            (0, 1, 2, 4, 12, 18, 24, 48, 72, 168, 336, 504, 672),
        ),
        "online_payments_mode": (None, ("deposit_required", "optional", "required")),
    },
    "AttendeeCancelInput": {"cancellation_reason": (None, (10, 20, 30, 40, 50, 60))},
    "BillableItemInput": {
        "item_code": (100, None),
        "item_type": (None, ("Product", "Service", "Other")),
        "name": (255, None),
    },
    "BusinessInput": {
        "additional_information": (5000, None),
        "additional_invoice_information": (5000, None),
    },
    "ConcessionTypeInput": {"name": (255, None)},
    "ContactInput": {
        "address_1": (255, None),
        "address_2": (255, None),
        "address_3": (255, None),
        "city": (255, None),
        "company_name": (255, None),
        "country_code": (2, None),
        "doctor_type": (None, ("general_practitioner", "specialist")),
        "email": (255, None),
        "first_name": (255, None),
        "last_name": (255, None),
        "occupation": (255, None),
        "post_code": (255, None),
        "provider_number": (255, None),
        "state": (255, None),
        "type_code": (None, (0, 1, 2)),
    },
    "FullPatientExportInput": {"description": (255, None)},
    "IndividualAppointmentCancelInput": {"cancellation_reason": (None, (10, 20, 30, 40, 50, 60))},
    "MedicalAlertInput": {"name": (255, None)},
    "MemoCommunicationInput": {
        "category_code": (None, (12,)),
        "direction_code": (None, (1, 2)),
        "type_code": (None, (1, 2, 3, 4)),
    },
    "PatientCaseInput": {"referral_type": (None, ("dva", "medicare"))},
    "PatientCustomFieldCheckboxesInput": {"type": (None, ("checkboxes",))},
    "PatientCustomFieldDateInput": {"type": (None, ("date",))},
    "PatientCustomFieldParagraphInput": {"type": (None, ("paragraph",))},
    "PatientCustomFieldRadiobuttonsInput": {"type": (None, ("radiobuttons",))},
    "PatientCustomFieldTextInput": {"type": (None, ("text",))},
    "PatientFormInput": {"name": (255, None)},
    "PatientFormQuestionCheckboxesInput": {"name": (255, None), "type": (None, ("checkboxes",))},
    "PatientFormQuestionDateInput": {"name": (255, None), "type": (None, ("date",))},
    "PatientFormQuestionParagraphInput": {
        "answer": (10000, None),
        "name": (255, None),
        "type": (None, ("paragraph",)),
    },
    "PatientFormQuestionRadiobuttonsInput": {
        "name": (255, None),
        "type": (None, ("radiobuttons",)),
    },
    "PatientFormQuestionSignatureInput": {"name": (255, None), "type": (None, ("signature",))},
    "PatientFormQuestionTextInput": {
        "answer": (10000, None),
        "name": (255, None),
        "type": (None, ("text",)),
    },
    "PatientFormTemplateInput": {"name": (255, None)},
    "PatientFormTemplateQuestionCheckboxesInput": {
        "name": (255, None),
        "type": (None, ("checkboxes",)),
    },
    "PatientFormTemplateQuestionDateInput": {"name": (255, None), "type": (None, ("date",))},
    "PatientFormTemplateQuestionParagraphInput": {
        "name": (255, None),
        "type": (None, ("paragraph",)),
    },
    "PatientFormTemplateQuestionRadiobuttonsInput": {
        "name": (255, None),
        "type": (None, ("radiobuttons",)),
    },
    "PatientFormTemplateQuestionSignatureInput": {
        "name": (255, None),
        "type": (None, ("signature",)),
    },
    "PatientFormTemplateQuestionTextInput": {"name": (255, None), "type": (None, ("text",))},
    "PatientInput": {
        "address_1": (255, None),
        "address_2": (255, None),
        "address_3": (255, None),
        "city": (255, None),
        "email": (255, None),
        "emergency_contact": (255, None),
        "first_name": (255, None),
        "last_name": (255, None),
        "medicare": (255, None),
        "medicare_reference_number": (255, None),
        "occupation": (255, None),
        "old_reference_id": (255, None),
        "preferred_first_name": (255, None),
        "referral_source": (255, None),
        "reminder_type": (None, ("None", "SMS", "Email", "SMS & Email")),
        "title": (255, None),
    },
    "PatientUpdateInput": {
        "address_1": (255, None),
        "address_2": (255, None),
        "address_3": (255, None),
        "city": (255, None),
        "email": (255, None),
        "emergency_contact": (255, None),
        "first_name": (255, None),
        "last_name": (255, None),
        "medicare": (255, None),
        "medicare_reference_number": (255, None),
        "occupation": (255, None),
        "old_reference_id": (255, None),
        "preferred_first_name": (255, None),
        "referral_source": (255, None),
        "reminder_type": (None, ("None", "SMS", "Email", "SMS & Email")),
        "title": (255, None),
    },
    "ProductInput": {"item_code": (100, None), "name": (255, None), "serial_number": (255, None)},
    "ProductUpdateInput": {
        "item_code": (100, None),
        "name": (255, None),
        "serial_number": (255, None),
    },
    "RelationshipInput": {"relation": (None, (10, 20, 30, 40, 50, 60, 70))},
    "StockAdjustmentInput": {
        "adjustment_type": (
            None,
            (
                "Correction",
                "Damaged",
                "Item Sold",
                "Other",
                "Out of Date",
                "Returned",
                "Stock Purchase",
            ),
        )
    },
    "TreatmentNoteQuestionBodychartsInput": {"name": (255, None), "type": (None, ("bodycharts",))},
    "TreatmentNoteQuestionCheckboxesInput": {"name": (255, None), "type": (None, ("checkboxes",))},
    "TreatmentNoteQuestionDateInput": {"name": (255, None), "type": (None, ("date",))},
    "TreatmentNoteQuestionParagraphInput": {"name": (255, None), "type": (None, ("paragraph",))},
    "TreatmentNoteQuestionRadiobuttonsInput": {
        "name": (255, None),
        "type": (None, ("radiobuttons",)),
    },
    "TreatmentNoteQuestionTextInput": {"name": (255, None), "type": (None, ("text",))},
    "TreatmentNoteTemplateInput": {"name": (255, None)},
    "TreatmentNoteTemplateQuestionBodychartsInput": {
        "name": (255, None),
        "type": (None, ("bodycharts",)),
    },
    "TreatmentNoteTemplateQuestionCheckboxesInput": {
        "name": (255, None),
        "type": (None, ("checkboxes",)),
    },
    "TreatmentNoteTemplateQuestionDateInput": {"name": (255, None), "type": (None, ("date",))},
    "TreatmentNoteTemplateQuestionParagraphInput": {
        "name": (255, None),
        "type": (None, ("paragraph",)),
    },
    "TreatmentNoteTemplateQuestionRadiobuttonsInput": {
        "name": (255, None),
        "type": (None, ("radiobuttons",)),
    },
    "TreatmentNoteTemplateQuestionTextInput": {"name": (255, None), "type": (None, ("text",))},
    "UnavailableBlockTypeInput": {"name": (255, None)},
    "UploadedPatientAttachmentBodyInput": {"description": (255, None)},
    "UploadedPatientAttachmentInput": {"description": (255, None)},
}
