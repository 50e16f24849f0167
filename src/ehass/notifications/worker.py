"""Delivers the outbox: claim due messages, send each, record the outcome.

Delivery is at least once. A claim is a lease, committed before anything is sent, so no
database transaction stays open while a mail server is slow; a worker that dies between
sending and recording leaves a lease that lapses, and the message goes again with the
same Message-ID. Healthy workers never send one message twice: each claims with
`FOR UPDATE SKIP LOCKED` and skips rows under another's lease.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from ehass import metrics
from ehass.appointments import service as appointments
from ehass.appointments.models import Status as AppointmentStatus
from ehass.audit import sealer
from ehass.config import Settings
from ehass.core.clock import SystemClock
from ehass.db import Database
from ehass.doctors.repository import get_active_doctor
from ehass.notifications import messages, repository
from ehass.notifications.delivery import Mailer, mailer_for
from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind
from ehass.runtime import Runtime, audit_signing_key
from ehass.shared import SharedState
from ehass.waitlist import service as waitlist

log = structlog.get_logger("ehass.worker")

HEARTBEAT_SECONDS = 10.0
# How often run-out holds are let go (their slot passes to the next in line at once), and
# how often every waiting line is matched against free time (new hours, say): the latter
# computes free slots for each waiting patient, so it runs less often.
WAITLIST_SECONDS = 2.0
FILL_SECONDS = 30.0
PURGE_SECONDS = 300.0


def backoff_seconds(
    attempts: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: the delay before attempt `attempts + 1`.

    Half the delay is fixed and half random, so workers that failed together (a mail server
    outage) do not all come back at the same instant.
    """
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    return delay / 2 + rand() * delay / 2


def _stale_reminder(row: Notification, state: tuple[str, int] | None) -> bool:
    """A reminder whose appointment has since moved or ended names the wrong time."""
    if state is None:
        return True
    status, sequence = state
    return status != AppointmentStatus.SCHEDULED or sequence != row.payload.get("sequence")


@dataclass
class Worker:
    database: Database
    rt: Runtime
    mailer: Mailer
    embedded: bool = False
    batch_size: int = 20
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )

    def __post_init__(self) -> None:
        self.started_at = self.rt.clock.now()
        self.lease = timedelta(seconds=self.rt.settings.notification_lease_seconds)
        self._last_beat = 0.0
        self._last_waitlist = 0.0
        self._last_fill = float("-inf")
        self._audit_key = audit_signing_key(self.rt.settings)
        self._last_purge = float("-inf")

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Delivers what is due now; returns how many messages it settled. Once `stop` is
        set it finishes the message in hand and hands the rest of its claim back, so
        another worker sends them at once rather than after the lease."""
        claimed = await self._claim()
        for index, item in enumerate(claimed):
            if stop is not None and stop.is_set():
                await self._release(claimed[index:])
                return index
            await self._deliver(item)
        return len(claimed)

    async def run_waitlist(self, *, everyone: bool = True) -> int:
        """Lets run-out holds go and offers free time to waiting patients; returns the
        number of offers made. A doctor whose offer ran out is served at once; `everyone`
        also looks at every doctor with a waiting line (new hours, deactivations). Each
        doctor is handled in a transaction of its own, under that doctor's lock."""
        async with self.database.transaction() as session:
            lapsed = await waitlist.lapsed_holds(session, self.rt)
        doctor_ids = sorted({doctor_id for _, doctor_id in lapsed})
        for doctor_id in doctor_ids:
            async with self.database.transaction() as session:
                await waitlist.settle_lapsed_holds(session, self.rt, doctor_id=doctor_id)
        if everyone:
            async with self.database.transaction() as session:
                doctor_ids = await waitlist.doctors_to_fill(session, self.rt)
        offered = 0
        for doctor_id in doctor_ids:
            async with self.database.transaction() as session:
                doctor = await get_active_doctor(session, doctor_id, for_update=True)
                if doctor is not None:
                    offered += await waitlist.fill(session, self.rt, doctor=doctor)
        return offered

    async def run_sealer(self) -> int:
        """Chains what is committed in audit_pending and signs a checkpoint of the tree;
        returns the number of entries sealed. A transaction per batch keeps each short."""
        total = 0
        while True:
            async with self.database.transaction() as session:
                sealed = await sealer.seal(session)
                await sealer.sign_checkpoint(session, self._audit_key, now=self.rt.clock.now())
            total += sealed
            if sealed < sealer.BATCH:
                return total

    async def _seal_loop(self, stop: asyncio.Event) -> None:
        # Its own loop, not a pass of the delivery loop: that one sleeps worker_poll_seconds,
        # while entries must reach the chain within a fraction of a second (the MMD).
        while not stop.is_set():
            try:
                await self.run_sealer()
            except Exception as exc:  # the database is down: wait, then try again
                log.warning("worker.sealer_paused", error=type(exc).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rt.settings.audit_seal_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Works until `stop` is set; a failing database only pauses it."""
        log.info("worker.started", worker_id=self.worker_id, channel=self.mailer.channel)
        seal_task = asyncio.create_task(self._seal_loop(stop), name="ehass-audit-sealer")
        try:
            await self._deliver_loop(stop)
        finally:
            if not stop.is_set():  # cancelled rather than stopped: take the sealer along
                seal_task.cancel()
            with suppress(asyncio.CancelledError):
                await seal_task
        log.info("worker.stopped", worker_id=self.worker_id)

    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._heartbeat()
                await self._waitlist_pass()
                await self._purge_pass()
                settled = await self.run_once(stop)
            except Exception as exc:  # the database is down: wait, then try again
                log.warning("worker.paused", error=type(exc).__name__)
                settled = 0
            if settled < self.batch_size:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rt.settings.worker_poll_seconds)

    async def _waitlist_pass(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_waitlist < WAITLIST_SECONDS:
            return
        everyone = loop_time - self._last_fill >= FILL_SECONDS
        self._last_waitlist = loop_time
        if everyone:
            self._last_fill = loop_time
        await self.run_waitlist(everyone=everyone)

    async def run_purge(self) -> int:
        """Deletes Idempotency-Key answers past their hours; returns how many."""
        async with self.database.transaction() as session:
            return await appointments.purge_expired_keys(session, self.rt)

    async def _purge_pass(self) -> None:
        # Requests no longer purge expired answers; a few hundred rows every few minutes
        # on an indexed column keeps the table to a day's worth.
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_purge < PURGE_SECONDS:
            return
        self._last_purge = loop_time
        await self.run_purge()

    async def _heartbeat(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_beat < HEARTBEAT_SECONDS:
            return
        async with self.database.transaction() as session:
            await repository.beat(
                session,
                worker_id=self.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                embedded=self.embedded,
                started_at=self.started_at,
                now=self.rt.clock.now(),
            )
            counts = await repository.outbox_counts(session, now=self.rt.clock.now())
        metrics.set_outbox(due=counts["due"] or 0, dead=counts["dead"] or 0)
        self._last_beat = loop_time

    async def _claim(self) -> list[messages.Outgoing]:
        now = self.rt.clock.now()
        async with self.database.transaction() as session:
            rows = await repository.claim_due(
                session, now=now, lease_until=now + self.lease, limit=self.batch_size
            )
            claimed = []
            for row in rows:
                if row.kind == NotificationKind.REMINDER and row.appointment_id is not None:
                    state = await repository.appointment_state(session, row.appointment_id)
                    if _stale_reminder(row, state):
                        row.status, row.lease_until = DeliveryStatus.CANCELLED, None
                        continue
                claimed.append(
                    messages.Outgoing(
                        id=row.id,
                        kind=row.kind,
                        message_id=row.message_id,
                        payload=row.payload,
                        request_id=row.request_id,
                        created_at=row.created_at,
                        attempts=row.attempts,
                    )
                )
        return claimed

    async def _deliver(self, item: messages.Outgoing) -> None:
        settings = self.rt.settings
        bound = log.bind(notification_id=item.id, kind=item.kind, request_id=item.request_id)
        try:
            email = messages.email(
                item,
                sender=settings.mail_from,
                domain=settings.mail_domain,
                public_url=settings.public_url,
            )
            await self.mailer.send(email)
        except Exception as exc:  # any failure is retried, then dead-lettered
            await self._failed(item, exc)
            return
        await self._settle(item, self.rt.clock.now())
        metrics.count_delivery(item.kind, self.mailer.channel)
        bound.info("notification.delivered", channel=self.mailer.channel)

    async def _release(self, items: list[messages.Outgoing]) -> None:
        """Gives claimed messages back, unsent: the attempt this claim counted is undone."""
        async with self.database.transaction() as session:
            for item in items:
                row = await repository.get(session, item.id)
                if row is not None and row.status == DeliveryStatus.PENDING:
                    row.lease_until, row.attempts = None, max(0, row.attempts - 1)
        log.info("worker.released", worker_id=self.worker_id, count=len(items))

    async def _settle(self, item: messages.Outgoing, now: datetime) -> None:
        status = DeliveryStatus.LOGGED if self.mailer.channel == "log" else DeliveryStatus.SENT
        async with self.database.transaction() as session:
            row = await repository.get(session, item.id)
            if row is None:
                return
            row.status, row.sent_at, row.lease_until, row.last_error = status, now, None, None

    async def _failed(self, item: messages.Outgoing, exc: Exception) -> None:
        settings = self.rt.settings
        now = self.rt.clock.now()
        error = f"{type(exc).__name__}: {exc}"[:500]
        async with self.database.transaction() as session:
            row = await repository.get(session, item.id)
            if row is None:
                return
            row.last_error, row.lease_until = error, None
            if row.attempts >= settings.notification_max_attempts:
                row.status = DeliveryStatus.DEAD
                outcome = "dead"
            else:
                delay = backoff_seconds(
                    row.attempts,
                    base=settings.notification_retry_base_seconds,
                    cap=settings.notification_retry_max_seconds,
                )
                row.due_at = now + timedelta(seconds=delay)
                outcome = "retry"
        metrics.count_delivery_failure(outcome)
        log.warning(
            "notification.failed",
            notification_id=item.id,
            kind=item.kind,
            attempts=item.attempts,
            outcome=outcome,
            error=type(exc).__name__,
            request_id=item.request_id,
        )


@asynccontextmanager
async def embedded(database: Database, rt: Runtime) -> AsyncIterator[Worker | None]:
    """The worker inside `ehass serve` (the SQLite default), stopped with the app."""
    if not rt.settings.runs_embedded_worker:
        yield None
        return
    worker = Worker(database, rt, mailer_for(rt.settings), embedded=True)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="ehass-worker")
    try:
        yield worker
    finally:
        stop.set()
        await task


async def run_standalone(settings: Settings) -> int:
    """`ehass worker`: delivers until SIGTERM or SIGINT, then finishes the message in hand
    and hands the rest of its claim back."""
    from ehass.main import wait_for_database  # late: main imports this module

    database = Database.from_settings(settings)
    rt = Runtime.create(settings, SystemClock(), SharedState(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await wait_for_database(database, within_seconds=settings.startup_timeout_seconds)
        await Worker(database, rt, mailer_for(settings)).run(stop)
    finally:
        await rt.shared.close()
        await database.dispose()
    return 0
