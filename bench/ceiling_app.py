"""Bare Starlette endpoints on the raw asyncmy driver, served like the app (uvicorn, uvloop,
httptools, one process per port, behind the same nginx):

- GET /ceiling/doctors/{id}/availability, ceiling (a): runs the availability read's SQL and
  answers a comparable body (the same free 30-minute slots);
- POST /ceiling/appointments, ceiling (b): the booking's whole transaction
  (ceiling_booking.py), 201 with the appointment, 409 on a conflict, 422 on bad input.

What they leave out is what the project's numbers pay for: FastAPI's dependency injection
and validation, the SQLAlchemy session and ORM, the middleware stack, pydantic responses.

    python bench/ceiling_app.py --port 8100 --database ehass_bench
"""

from __future__ import annotations

import argparse
import json
import secrets
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta

import uvicorn
from ceiling_booking import Booker, local_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The statements the project's GET /doctors/{id}/availability sends, in its order
# (repository.get_active_doctor, weekly_windows, overrides_between twice, busy_intervals).
DOCTOR = (
    "SELECT doctors.id, doctors.user_id, doctors.specialty, doctors.timezone, "
    "doctors.slot_minutes FROM doctors JOIN users ON doctors.user_id = users.id "
    "WHERE doctors.id = %s AND users.is_active = true"
)
WEEKLY = (
    "SELECT id, doctor_id, weekday, start_time, end_time FROM weekly_windows "
    "WHERE doctor_id = %s ORDER BY weekday, start_time"
)
OVERRIDES = (
    "SELECT id, doctor_id, on_date, windows FROM availability_overrides "
    "WHERE doctor_id = %s AND on_date >= %s AND on_date <= %s ORDER BY on_date"
)
BUSY = (
    "SELECT scheduled_at, ends_at FROM appointments WHERE doctor_id = %s "
    "AND status = 'scheduled' AND scheduled_at < %s AND ends_at > %s"
)
OVERRIDES_FROM = (
    "SELECT id, doctor_id, on_date, windows FROM availability_overrides "
    "WHERE doctor_id = %s AND on_date >= %s ORDER BY on_date"
)
MAX_SLOT = timedelta(minutes=240)
# The project's pool per process (database_pool_size 10 + as many overflow).
BOOKING_POOL = 20


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def _as_time(value: timedelta | time) -> time:
    # MySQL TIME comes back from the driver as a timedelta.
    if isinstance(value, timedelta):
        return (datetime.min + value).time()
    return value


def _slots(weekly: list, busy: list, start: datetime, end: datetime, minutes: int) -> list:
    """UTC doctors only (all bench doctors are): every grid slot inside a weekly window,
    not overlapping a booking, within [start, end)."""
    by_day: dict[int, list[tuple[time, time]]] = {}
    for _, _, weekday, w_start, w_end in weekly:
        by_day.setdefault(weekday, []).append((_as_time(w_start), _as_time(w_end)))
    step = timedelta(minutes=minutes)
    out = []
    day = start.date()
    while day <= end.date():
        for w_start, w_end in by_day.get(day.weekday(), ()):
            at = datetime.combine(day, w_start)
            stop = datetime.combine(day, w_end)
            while at + step <= stop:
                if start <= at < end and not any(b0 < at + step and at < b1 for b0, b1 in busy):
                    out.append(
                        {
                            "start": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "end": (at + step).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        }
                    )
                at += step
        day += timedelta(days=1)
    return out


def _bad_request(detail: str) -> Response:
    return Response(json.dumps({"detail": detail}), status_code=422, media_type="application/json")


def build(database: str) -> Starlette:
    pool = None
    booker: Booker | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette):
        nonlocal pool, booker
        pool = await local_pool(database, maxsize=10, autocommit=True)
        booker = await Booker.start(database, maxsize=BOOKING_POOL)
        yield
        await booker.close()
        pool.close()
        await pool.wait_closed()

    async def availability(request: Request) -> Response:
        doctor_id = int(request.path_params["doctor_id"])
        start = _parse(request.query_params["from"])
        end = _parse(request.query_params["to"])
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(DOCTOR, (doctor_id,))
            doctor = await cur.fetchone()
            if doctor is None:
                return Response(status_code=404)
            await cur.execute(WEEKLY, (doctor_id,))
            weekly = await cur.fetchall()
            await cur.execute(
                OVERRIDES,
                (doctor_id, start.date() - timedelta(days=1), end.date() + timedelta(days=1)),
            )
            await cur.fetchall()
            await cur.execute(BUSY, (doctor_id, end + MAX_SLOT, start - MAX_SLOT))
            busy = await cur.fetchall()
            await cur.execute(OVERRIDES_FROM, (doctor_id, datetime.now(UTC).date()))
            await cur.fetchall()
        body = {
            "doctor_id": doctor_id,
            "timezone": doctor[3],
            "slot_minutes": doctor[4],
            "weekly": [
                {"day": w[2], "start": str(_as_time(w[3])), "end": str(_as_time(w[4]))}
                for w in weekly
            ],
            "overrides": [],
            "slots": _slots(weekly, busy, start, end, doctor[4]),
        }
        return Response(json.dumps(body), media_type="application/json")

    async def book(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            doctor_id, patient_id = int(body["doctor_id"]), int(body["patient_id"])
            at = datetime.fromisoformat(body["scheduled_at"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return _bad_request("doctor_id, patient_id and scheduled_at (RFC 3339) are required")
        if at.tzinfo is None:
            return _bad_request("scheduled_at needs an offset")
        outcome = await booker.book(
            doctor_id=doctor_id,
            patient_id=patient_id,
            at=at.astimezone(UTC),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
            request_id=secrets.token_hex(16),
        )
        return Response(
            json.dumps(outcome.body), status_code=outcome.status, media_type="application/json"
        )

    async def ready(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/ceiling/doctors/{doctor_id:int}/availability", availability),
            Route("/ceiling/appointments", book, methods=["POST"]),
            Route("/readyz", ready),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--database", required=True)
    args = ap.parse_args()
    uvicorn.run(
        build(args.database),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
