"""Live slot changes for open booking pages: who took or freed which start time.

Changes are collected from the ORM as appointments are flushed, and published only once
the transaction has committed, whatever booked them (the JSON API, these pages, or a
service called from elsewhere). Bulk cancellations (a deactivated account's) are not
seen here; pages reconcile with the availability API whenever their stream reconnects.

Delivery is in-process by default. With `settings.redis_url`, changes go through Redis
pub/sub, so a page served by one process hears of a booking made through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, SessionTransaction
from starlette.types import ASGIApp, Receive, Scope, Send

from ehass.appointments.models import Appointment, Status
from ehass.shared import CircuitOpenError, GuardedRedis, RedisGuard

log = structlog.get_logger("ehass.web.events")
_PENDING = "ehass.web.slot_changes"
QUEUE_SIZE = 100


@dataclass(frozen=True, slots=True)
class SlotChange:
    doctor_id: int
    taken: tuple[str, ...] = ()
    freed: tuple[str, ...] = ()

    def as_json(self) -> str:
        return json.dumps(
            {"doctor_id": self.doctor_id, "taken": list(self.taken), "freed": list(self.freed)}
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> SlotChange:
        data = json.loads(raw)
        return cls(int(data["doctor_id"]), tuple(data["taken"]), tuple(data["freed"]))


def _stamp(at: datetime) -> str:
    """The form the pages use for a slot: `2026-12-01T14:30:00Z`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes_of(appointment: Appointment, *, is_new: bool) -> tuple[str | None, str | None]:
    """(freed start, taken start) by this flush of `appointment`."""
    state = inspect(appointment)
    start_history = state.attrs.scheduled_at.history
    status_history = state.attrs.status.history
    now_holding = appointment.status == Status.SCHEDULED
    if is_new:
        return None, _stamp(appointment.scheduled_at) if now_holding else None
    old_start = start_history.deleted[0] if start_history.deleted else appointment.scheduled_at
    old_status = status_history.deleted[0] if status_history.deleted else appointment.status
    was_holding = old_status == Status.SCHEDULED
    moved = old_start != appointment.scheduled_at
    freed = _stamp(old_start) if was_holding and (moved or not now_holding) else None
    taken = _stamp(appointment.scheduled_at) if now_holding and (moved or not was_holding) else None
    return freed, taken


# Changes per doctor: (freed starts, taken starts).
_Changes = dict[int, tuple[list[str], list[str]]]


def _decider(transaction: SessionTransaction) -> SessionTransaction:
    """The transaction whose end decides the fate of what is flushed inside `transaction`:
    the innermost savepoint around it, or the root."""
    while transaction.parent is not None and not transaction.nested:
        transaction = transaction.parent
    return transaction


def _buckets(session: Session) -> dict[SessionTransaction, _Changes]:
    return session.info.setdefault(_PENDING, {})


def _merge(into: _Changes, changes: _Changes) -> None:
    for doctor_id, (freed, taken) in changes.items():
        freed_list, taken_list = into.setdefault(doctor_id, ([], []))
        freed_list.extend(freed)
        taken_list.extend(taken)


def _collect(session: Session, _context: Any) -> None:
    # Kept per savepoint: a released savepoint's changes still wait for the outer commit,
    # and a rolled-back one's go without taking the outer transaction's with them.
    decider = session.get_nested_transaction() or session.get_transaction()
    if decider is None:
        return
    pending = _buckets(session).setdefault(decider, {})
    for appointment, is_new in [
        *((o, True) for o in session.new if isinstance(o, Appointment)),
        *((o, False) for o in session.dirty if isinstance(o, Appointment)),
    ]:
        freed, taken = changes_of(appointment, is_new=is_new)
        if freed or taken:
            freed_list, taken_list = pending.setdefault(appointment.doctor_id, ([], []))
            if freed:
                freed_list.append(freed)
            if taken:
                taken_list.append(taken)


def _publish_committed(session: Session) -> None:
    """after_commit, which SQLAlchemy also fires when a savepoint is released: only the
    root transaction's commit publishes, since the outer COMMIT can still fail."""
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        buckets = session.info.get(_PENDING, {})
        if (changes := buckets.pop(savepoint, None)) and savepoint.parent is not None:
            _merge(buckets.setdefault(_decider(savepoint.parent), {}), changes)
        return
    buckets = session.info.pop(_PENDING, None)
    bus = _current_bus.get()
    if not buckets or bus is None:
        return
    committed: _Changes = {}
    for changes in buckets.values():
        _merge(committed, changes)
    for doctor_id, (freed, taken) in committed.items():
        bus.publish_soon(SlotChange(doctor_id, taken=tuple(taken), freed=tuple(freed)))


def _forget(session: Session, *_args: Any) -> None:
    """after_rollback, fired for a savepoint's rollback too: only its own changes go."""
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(_PENDING, None)
    else:
        session.info.get(_PENDING, {}).pop(savepoint, None)


_current_bus: ContextVar[SlotEvents | None] = ContextVar("ehass_slot_events", default=None)
_listening = False


def listen_to_the_orm() -> None:
    """Once per process: every Session reports appointment changes (a cheap check)."""
    global _listening
    if _listening:
        return
    event.listen(Session, "after_flush", _collect)
    event.listen(Session, "after_commit", _publish_committed)
    event.listen(Session, "after_rollback", _forget)
    _listening = True


@dataclass
class SlotEvents:
    """Subscribers per doctor in this process, fed locally or from Redis."""

    # Publishing uses the app's shared client (through its circuit breaker when it is a
    # GuardedRedis); listening needs a connection of its own.
    publisher: Redis | None = None
    redis_url: str | None = None
    channel: str = "ehass:web:slots"
    _subscribers: dict[int, set[asyncio.Queue[SlotChange]]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _listener: asyncio.Task[None] | None = None
    _redis: Redis | None = None

    @property
    def guard(self) -> RedisGuard | None:
        return self.publisher.guard if isinstance(self.publisher, GuardedRedis) else None

    def publish_soon(self, change: SlotChange) -> None:
        """From synchronous code running on the event loop (the ORM's commit hook)."""
        task = asyncio.get_running_loop().create_task(self.publish(change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, change: SlotChange) -> None:
        if self.publisher is not None:
            try:
                await self.publisher.publish(self.channel, change.as_json())
                return
            except CircuitOpenError:
                pass  # Redis is known to be down: not asked, and not logged per change
            except (RedisError, OSError):
                log.warning("slot_events.redis_publish_failed")
        self.deliver(change)  # no Redis, or it failed: at least this process's pages hear

    def deliver(self, change: SlotChange) -> None:
        for queue in list(self._subscribers.get(change.doctor_id, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck page misses a change
                queue.put_nowait(change)

    @contextlib.asynccontextmanager
    async def subscribe(self, doctor_id: int) -> AsyncIterator[asyncio.Queue[SlotChange]]:
        if self.redis_url and (self._listener is None or self._listener.done()):
            self._listener = asyncio.create_task(self._listen())
        queue: asyncio.Queue[SlotChange] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(doctor_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(doctor_id, set())
            queues.discard(queue)
            if not queues:
                self._subscribers.pop(doctor_id, None)

    def _listening_client(self) -> Redis:
        if self._redis is None:
            assert self.redis_url is not None
            self._redis = Redis.from_url(self.redis_url, socket_connect_timeout=1.0)
        return self._redis

    async def _listen(self) -> None:
        """Redis messages to this process's subscribers; reconnects after an outage."""
        delay = 0.5
        while True:
            pubsub = self._listening_client().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                delay = 0.5
                async for message in pubsub.listen():
                    try:
                        self.deliver(SlotChange.from_json(message["data"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning("slot_events.bad_message")
            except (RedisError, OSError):
                # While the shared client's circuit is open Redis is known to be down: no
                # reconnecting before requests would ask it again either.
                wait = max(delay, self.guard.breaker.seconds_until_probe() if self.guard else 0)
                log.warning("slot_events.redis_unavailable", retry_in_seconds=wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()


class SlotEventsMiddleware:
    """Makes the app's SlotEvents the one the ORM hook publishes to during a request."""

    def __init__(self, app: ASGIApp, *, bus: SlotEvents) -> None:
        self.app = app
        self.bus = bus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _current_bus.set(self.bus)
        try:
            await self.app(scope, receive, send)
        finally:
            _current_bus.reset(token)
