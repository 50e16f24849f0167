"""A version per doctor's schedule, raised in the same transaction as every change to it.

Whatever changes a doctor's free time (an appointment, a hold, the working hours, the
doctor's zone or slot length), written by any code path, is seen here as the ORM flushes
it. Right before the transaction commits, `schedule_versions` is raised for each doctor
touched, so cached slots (availability/cache.py) are looked up under a version that cannot
name a state older than the database's: a reader that sees version N reads data at least as
new as N. Bulk UPDATE/DELETE statements name their doctor with
`.execution_options(schedule_of=doctor_id)`; one that does not raises every version.

The version row is written last, as the commit begins, and no other statement locks it:
raising it never waits on a lock held by a transaction that waits on this one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, update
from sqlalchemy.orm import ORMExecuteState, Session

from ehass.appointments.models import Appointment
from ehass.availability.models import AvailabilityOverride, ScheduleVersion, WeeklyWindow
from ehass.doctors.models import Doctor
from ehass.holds.models import SlotHold

_TOUCHED = "ehass.schedule_versions.touched"
_CREATED = "ehass.schedule_versions.created"
_EVERY = -1  # stands for "every doctor" among the touched ids
_BY_DOCTOR_ID = (Appointment, SlotHold, WeeklyWindow, AvailabilityOverride)
_WATCHED_TABLES = frozenset(model.__table__.name for model in (*_BY_DOCTOR_ID, Doctor))


def _ids(session: Session, key: str) -> set[int]:
    return session.info.setdefault(key, set())


def _doctor_ids(obj: object) -> list[int]:
    if isinstance(obj, Doctor):
        return [obj.id]
    if isinstance(obj, _BY_DOCTOR_ID):
        # An appointment moved to another doctor frees time at the first one.
        return [obj.doctor_id, *inspect(obj).attrs.doctor_id.history.deleted]
    return []


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    touched = _ids(session, _TOUCHED)
    for obj in (*session.dirty, *session.deleted):
        touched.update(i for i in _doctor_ids(obj) if i is not None)
    for obj in session.new:
        if isinstance(obj, Doctor):
            _ids(session, _CREATED).add(obj.id)
        else:
            touched.update(i for i in _doctor_ids(obj) if i is not None)


@event.listens_for(Session, "do_orm_execute")
def _collect_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.local_table.name not in _WATCHED_TABLES:
        return
    doctor_id = state.execution_options.get("schedule_of")
    _ids(state.session, _TOUCHED).add(_EVERY if doctor_id is None else doctor_id)


@event.listens_for(Session, "before_commit")
def _raise_versions(session: Session) -> None:
    session.flush()  # what is still pending is collected by _collect
    created: set[int] = session.info.pop(_CREATED, set())
    touched: set[int] = session.info.pop(_TOUCHED, set()) - created
    if not (touched or created):
        return
    connection = session.connection()
    table = ScheduleVersion.__table__
    if created:
        connection.execute(
            table.insert(), [{"doctor_id": i, "version": 1} for i in sorted(created)]
        )
    if touched:
        raise_ = update(table).values(version=table.c.version + 1)
        if _EVERY not in touched:
            # One order for every transaction; rows of other doctors are never locked.
            raise_ = raise_.where(table.c.doctor_id.in_(sorted(touched)))
        connection.execute(raise_)
