"""Schedule versions, raised in the same transaction as every change to a doctor's free time.

Two kinds, both seen here as the ORM flushes, whatever code path writes:

- the **hours version** (`schedule_versions`, one per doctor) covers what every day of the
  doctor is built from: the weekly windows, the overrides, the doctor's zone and slot
  length. A bulk UPDATE/DELETE of a watched table names its doctor with
  `.execution_options(schedule_of=doctor_id)` and raises that doctor's; one that does not
  raises every doctor's. One of appointments or holds may instead name the
  `(doctor_id, start, end)` times it changes with `schedule_spans=[...]`, raising just
  their days (an empty list when the change alters no answer).
- a **day version** (`schedule_day_versions`, one per doctor and local date) covers one
  day's slots: an appointment or a hold that is created, moved, cancelled, released or
  booked raises exactly the local dates whose slots its old and new times overlap, in the
  doctor's zone (a slot of date D starts on D, so an interval [s, e) reaches the dates of
  the instants in (s - slot length, e): both days for 23:30-00:30, and the DST-aware local
  date for any instant).

Right before the transaction commits, the versions are raised for what it touched, so cached
slots (availability/cache.py) are looked up under versions that cannot name a state older
than the database's: a reader that sees version N reads data at least as new as N.

The local dates are worked out from the doctor's zone and slot length as this transaction
sees them. Every write of an appointment or hold holds the doctor's account lock, and so does
a change of zone or slot length (which raises the hours version, making every day's entry
unreachable anyway), so the two cannot interleave.

The version rows are written last, as the commit begins, in one order (doctor, date), and no
other statement locks them: raising them never waits on a lock held by a transaction that
waits on this one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Insert, event, inspect, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session

from ehass.appointments.models import Appointment
from ehass.availability.models import (
    AvailabilityOverride,
    ScheduleDayVersion,
    ScheduleVersion,
    WeeklyWindow,
)
from ehass.doctors.models import Doctor
from ehass.holds.models import SlotHold

_HOURS = "ehass.schedule_versions.hours"
_SPANS = "ehass.schedule_versions.spans"
_CREATED = "ehass.schedule_versions.created"
_EVERY = -1  # stands for "every doctor" among the ids whose hours version rises
_OF_HOURS = (WeeklyWindow, AvailabilityOverride)
_OF_DAYS = (Appointment, SlotHold)
_WATCHED_TABLES = frozenset(model.__table__.name for model in (*_OF_HOURS, *_OF_DAYS, Doctor))
_TINY = timedelta(microseconds=1)

Span = tuple[int, datetime, datetime]  # doctor id, start, end


def _ids(session: Session, key: str) -> set[int]:
    return session.info.setdefault(key, set())


def _spans(session: Session) -> set[Span]:
    return session.info.setdefault(_SPANS, set())


def _values(obj: object, name: str) -> list[Any]:
    """The attribute's value before this flush and now (one value when unchanged)."""
    history = inspect(obj).attrs[name].history
    return [*history.deleted, *history.added, *history.unchanged]


_TIME = ("doctor_id", "scheduled_at", "ends_at")


def _old_and_new(obj: Appointment | SlotHold, *, new: bool) -> list[Span | int]:
    """The (doctor, start, end) the row had and has. A bare doctor id stands for a time
    that cannot be told (an old value that was never loaded), so that doctor's hours
    version rises instead; _EVERY when even the doctor cannot be told."""
    histories = [inspect(obj).attrs[name].history for name in _TIME]
    now = [[*h.added, *h.unchanged] for h in histories]
    if not all(now) or (not new and any(h.added and not h.deleted for h in histories)):
        doctors = [i for i in _values(obj, "doctor_id") if i is not None]
        return list(doctors) or [_EVERY]
    after = tuple(values[0] for values in now)
    before = tuple(h.deleted[0] if h.deleted else a for h, a in zip(histories, after, strict=True))
    return [span for span in {before, after} if None not in span]


def _collect_object(session: Session, obj: object, *, new: bool = False) -> None:
    if isinstance(obj, Doctor):
        _ids(session, _HOURS).add(obj.id)
    elif isinstance(obj, _OF_HOURS):
        _ids(session, _HOURS).update(i for i in _values(obj, "doctor_id") if i is not None)
    elif isinstance(obj, _OF_DAYS):
        for found in _old_and_new(obj, new=new):
            if isinstance(found, int):
                _ids(session, _HOURS).add(found)
            else:
                _spans(session).add(found)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        _collect_object(session, obj)
    for obj in session.new:
        if isinstance(obj, Doctor):
            _ids(session, _CREATED).add(obj.id)
        else:
            _collect_object(session, obj, new=True)


@event.listens_for(Session, "do_orm_execute")
def _collect_bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is None or mapper.local_table.name not in _WATCHED_TABLES:
        return
    if (spans := state.execution_options.get("schedule_spans")) is not None:
        _spans(state.session).update(spans)
        return
    doctor_id = state.execution_options.get("schedule_of")
    _ids(state.session, _HOURS).add(_EVERY if doctor_id is None else doctor_id)


def local_dates(
    start: datetime, end: datetime, *, timezone: ZoneInfo, slot_minutes: int
) -> list[date]:
    """The doctor's local dates with a slot that [start, end) overlaps: a slot starting at
    t overlaps it when start - length < t < end."""
    first = (start - timedelta(minutes=slot_minutes) + _TINY).astimezone(timezone).date()
    last = max(first, (end - _TINY).astimezone(timezone).date())
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _doctor_rules(session: Session, doctor_ids: set[int]) -> dict[int, tuple[ZoneInfo, int]]:
    """Zone and slot length of each doctor, from the session when it has them loaded."""
    rules: dict[int, tuple[ZoneInfo, int]] = {}
    for doctor_id in doctor_ids:
        doctor = session.identity_map.get(session.identity_key(Doctor, doctor_id))
        if isinstance(doctor, Doctor) and {"timezone", "slot_minutes"} <= doctor.__dict__.keys():
            rules[doctor_id] = (ZoneInfo(doctor.timezone), doctor.slot_minutes)
    if missing := sorted(doctor_ids - rules.keys()):
        rows = session.execute(
            select(Doctor.id, Doctor.timezone, Doctor.slot_minutes).where(Doctor.id.in_(missing))
        )
        rules.update({row.id: (ZoneInfo(row.timezone), row.slot_minutes) for row in rows})
    return rules


def _day_rows(session: Session, spans: set[Span], hours: set[int]) -> list[dict[str, Any]]:
    by_doctor: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        if span[0] not in hours:  # a raised hours version already covers all its days
            by_doctor[span[0]].append(span)
    rules = _doctor_rules(session, set(by_doctor))
    days: set[tuple[int, date]] = set()
    for doctor_id, of_doctor in by_doctor.items():
        if doctor_id not in rules:
            continue  # no such doctor: nothing of it is cached
        timezone, slot_minutes = rules[doctor_id]
        for _, start, end in of_doctor:
            # A naive instant is UTC, as every instant the app stores.
            start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
            dates = local_dates(start, end, timezone=timezone, slot_minutes=slot_minutes)
            days.update((doctor_id, d) for d in dates)
    return [{"doctor_id": i, "local_date": d, "version": 1} for i, d in sorted(days)]


def _upsert(connection: Connection, rows: list[dict[str, Any]]) -> Insert:
    """One statement that creates the day rows at 1 or adds 1 to those that exist."""
    table = ScheduleDayVersion.__table__
    if connection.dialect.name == "mysql":
        statement = mysql.insert(table).values(rows)
        return statement.on_duplicate_key_update(version=table.c.version + 1)
    statement = sqlite.insert(table).values(rows)
    return statement.on_conflict_do_update(
        index_elements=[table.c.doctor_id, table.c.local_date],
        set_={"version": table.c.version + 1},
    )


@event.listens_for(Session, "before_commit")
def _raise_versions(session: Session) -> None:
    session.flush()  # what is still pending is collected by _collect
    created: set[int] = session.info.pop(_CREATED, set())
    hours: set[int] = session.info.pop(_HOURS, set()) - created
    spans: set[Span] = session.info.pop(_SPANS, set())
    if not (hours or created or spans):
        return
    connection = session.connection()
    table = ScheduleVersion.__table__
    if created:
        connection.execute(
            table.insert(), [{"doctor_id": i, "version": 1} for i in sorted(created)]
        )
    day_rows = [] if _EVERY in hours else _day_rows(session, spans, hours | created)
    if day_rows:
        connection.execute(_upsert(connection, day_rows))
    if hours:
        raise_ = update(table).values(version=table.c.version + 1)
        if _EVERY not in hours:
            # One order for every transaction; rows of other doctors are never locked.
            raise_ = raise_.where(table.c.doctor_id.in_(sorted(hours)))
        connection.execute(raise_)
