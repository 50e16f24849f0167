"""Checks and refusals shared by everything that hands out a doctor's time: bookings,
holds and waitlist entries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import repository
from ehass.core.principal import Principal, Role
from ehass.doctors.models import Doctor
from ehass.doctors.repository import get_active_doctor
from ehass.errors import ConflictError, PermissionDeniedError, UnprocessableError


class SlotUnavailableError(ConflictError):
    slug = "slot-unavailable"
    title = "Slot unavailable"


class PatientBusyError(ConflictError):
    slug = "patient-busy"
    title = "Overlapping appointment"


def patient_for(principal: Principal, patient_id: int | None, *, doing: str) -> int:
    """The patient a request acts for: a patient only for themselves, an administrator for
    the patient named in the body; nobody else. `doing` completes "Patients ... only for
    themselves", e.g. "book"."""
    if principal.role is Role.PATIENT:
        assert principal.patient_id is not None
        if patient_id is not None and patient_id != principal.patient_id:
            raise PermissionDeniedError(f"Patients {doing} only for themselves.")
        return principal.patient_id
    if principal.is_admin:
        if patient_id is None:
            raise UnprocessableError(
                "An administrator must say which patient (patient_id).", loc=("body", "patient_id")
            )
        return patient_id
    raise PermissionDeniedError(f"Only patients and administrators {doing}.")


async def lock_people(session: AsyncSession, *, doctor_id: int, patient_id: int) -> Doctor:
    """Locks the doctor's rows, then the patient's: the one order every path that hands out
    time takes, so two of them never wait on each other in opposite orders."""
    doctor = await get_active_doctor(session, doctor_id, for_update=True)
    if doctor is None:
        raise UnprocessableError("Unknown or inactive doctor.", loc=("body", "doctor_id"))
    if await repository.get_active_patient(session, patient_id, for_update=True) is None:
        raise UnprocessableError("Unknown or inactive patient.", loc=("body", "patient_id"))
    return doctor
