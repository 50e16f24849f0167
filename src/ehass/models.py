"""Every model, imported once so the metadata is complete (Alembic, create_all)."""

from ehass.appointments.models import Appointment, IdempotencyRecord
from ehass.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry, AuditPending
from ehass.auth.models import AccountToken, MfaFactor, RecoveryCode, RefreshToken, UserSession
from ehass.availability.models import (
    AvailabilityOverride,
    ScheduleDayVersion,
    ScheduleVersion,
    WeeklyWindow,
)
from ehass.calendars.models import CalendarFeed
from ehass.core.base import Base
from ehass.doctors.models import Doctor
from ehass.holds.models import SlotHold
from ehass.notifications.models import Notification, WorkerHeartbeat
from ehass.users.models import Patient, User
from ehass.waitlist.models import WaitlistEntry

__all__ = [
    "AccountToken",
    "Appointment",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditPending",
    "AvailabilityOverride",
    "Base",
    "CalendarFeed",
    "Doctor",
    "IdempotencyRecord",
    "MfaFactor",
    "Notification",
    "Patient",
    "RecoveryCode",
    "RefreshToken",
    "ScheduleDayVersion",
    "ScheduleVersion",
    "SlotHold",
    "User",
    "UserSession",
    "WaitlistEntry",
    "WeeklyWindow",
    "WorkerHeartbeat",
]
