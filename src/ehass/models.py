"""Every model, imported once so the metadata is complete (Alembic, create_all)."""

from ehass.appointments.models import Appointment, IdempotencyRecord
from ehass.auth.models import RefreshToken, UserSession
from ehass.availability.models import AvailabilityOverride, WeeklyWindow
from ehass.core.base import Base
from ehass.doctors.models import Doctor
from ehass.users.models import Patient, User

__all__ = [
    "Appointment",
    "AvailabilityOverride",
    "Base",
    "Doctor",
    "IdempotencyRecord",
    "Patient",
    "RefreshToken",
    "User",
    "UserSession",
    "WeeklyWindow",
]
