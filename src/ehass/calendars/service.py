"""Calendar files: one appointment for its participants, and a private subscription feed
per user that calendar apps poll."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import service as appointment_service
from ehass.audit import service as audit
from ehass.calendars import ics, repository
from ehass.core.principal import Principal
from ehass.errors import NotFoundError
from ehass.runtime import Runtime

# A feed shows the recent past too, so today's earlier appointments do not vanish.
FEED_LOOKBACK = timedelta(days=30)


class CalendarFeedNotFoundError(NotFoundError):
    slug = "calendar-feed-not-found"
    title = "Calendar feed not found"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def appointment_document(
    session: AsyncSession, rt: Runtime, principal: Principal, *, appointment_id: int
) -> bytes:
    # The same visibility and read audit as GET /appointments/{id}.
    appointment = await appointment_service.get(
        session, rt, principal, appointment_id=appointment_id
    )
    event = await repository.event_of(session, appointment.id)
    assert event is not None  # just read
    return ics.document(
        [event], domain=rt.settings.mail_domain, stamp=rt.clock.now(), method="PUBLISH"
    )


def _own(principal: Principal, user_id: int) -> None:
    # Someone else's feed is not theirs to see or change, not even an administrator's:
    # the address alone gives access, so it is only ever shown to its owner.
    if principal.user_id != user_id:
        raise CalendarFeedNotFoundError(f"No calendar feed for user {user_id}.")


async def rotate_feed(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int
) -> str:
    """A new feed address for the user; the previous one stops working. Returns the URL."""
    _own(principal, user_id)
    token = secrets.token_urlsafe(32)
    now = rt.clock.now()
    await repository.replace_feed(session, user_id=user_id, token_hash=_digest(token), now=now)
    audit.record(session, at=now, action="calendar_feed.create", entity="user", entity_id=user_id)
    return f"{rt.settings.public_url.rstrip('/')}/calendar/{token}.ics"


async def revoke_feed(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int
) -> None:
    _own(principal, user_id)
    if not await repository.remove_feed(session, user_id=user_id):
        raise CalendarFeedNotFoundError(f"No calendar feed for user {user_id}.")
    audit.record(
        session, at=rt.clock.now(), action="calendar_feed.delete", entity="user", entity_id=user_id
    )


async def feed_document(session: AsyncSession, rt: Runtime, *, token: str) -> bytes:
    owner = await repository.feed_owner(session, _digest(token))
    if owner is None:
        raise CalendarFeedNotFoundError("No such calendar feed.")
    _user_id, patient_id, doctor_id = owner
    now = rt.clock.now()
    events = await repository.upcoming_events(
        session, since=now - FEED_LOOKBACK, patient_id=patient_id, doctor_id=doctor_id
    )
    return ics.document(
        events, domain=rt.settings.mail_domain, stamp=now, name="EHASS appointments"
    )


async def forget(session: AsyncSession, *, user_id: int) -> None:
    """Erasure: the person's feed address stops working."""
    await repository.remove_feed(session, user_id=user_id)
