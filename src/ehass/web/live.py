"""Server-sent events: a booking page hears which of the doctor's times were taken."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from starlette.responses import StreamingResponse

from ehass.web.deps import web_principal
from ehass.web.events import SlotEvents

router = APIRouter(include_in_schema=False)
HEARTBEAT_SECONDS = 15.0
# A stream ends after this long and the browser reconnects (then reconciles with the
# availability API). Shorter than the 20 s `ehass serve` gives requests in flight when it
# is stopped, so an open page never holds a graceful shutdown up to its end.
STREAM_SECONDS = 15.0
RECONNECT_MS = 1000


async def _stream(bus: SlotEvents, doctor_id: int) -> AsyncIterator[str]:
    async with bus.subscribe(doctor_id) as queue:
        yield f"retry: {RECONNECT_MS}\nevent: ready\ndata: {{}}\n\n"
        deadline = time.monotonic() + STREAM_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                change = await asyncio.wait_for(queue.get(), timeout=min(HEARTBEAT_SECONDS, left))
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield f"event: slots\ndata: {change.as_json()}\n\n"


@router.get("/doctors/{doctor_id}/live", dependencies=[Depends(web_principal)])
async def live_slots(request: Request, doctor_id: int) -> StreamingResponse:
    """For signed-in people only, though free times are public: it holds a connection."""
    bus: SlotEvents = request.app.state.slot_events
    return StreamingResponse(
        _stream(bus, doctor_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
