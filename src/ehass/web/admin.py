"""The admin console: users, the audit trail and the health of the running system."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ehass import metrics
from ehass.admin import service as admin_service
from ehass.appointments import service as appointment_service
from ehass.audit import service as audit_service
from ehass.core.principal import Role
from ehass.deps import RuntimeDep, SessionDep
from ehass.doctors import service as doctor_service
from ehass.errors import NotFoundError
from ehass.users import service as user_service
from ehass.users.schemas import UserUpdate
from ehass.web.deps import AdminPrincipal, CsrfChecked
from ehass.web.forms import Problems, attempt
from ehass.web.pages import redirect, render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 25


@router.get("/admin/users")
async def users(
    request: Request,
    principal: AdminPrincipal,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    role: Annotated[Literal["", "patient", "doctor", "admin"], Query()] = "",
    status: Annotated[Literal["", "active", "inactive"], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page = await user_service.list_users(
        session,
        principal,
        role=Role(role) if role else None,
        is_active={"active": True, "inactive": False}.get(status),
        q=q.strip() or None,
        limit=PAGE_SIZE,
        cursor=cursor,
    )
    return render(
        request,
        "admin_users.html",
        principal=principal,
        users=page.items,
        next_cursor=page.next_cursor,
        filters={"q": q, "role": role, "status": status},
        flash=request.query_params.get("done"),
    )


async def _confirm_page(
    request: Request, principal: Any, session: Any, rt: Any, user_id: int, action: str
) -> Response:
    user = await user_service.get(session, rt, principal, user_id=user_id)
    return render(request, "admin_confirm.html", principal=principal, user=user, action=action)


@router.get("/admin/users/{user_id}/{action}")
async def confirm_status_change(
    request: Request,
    user_id: int,
    action: Literal["deactivate", "reactivate"],
    principal: AdminPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    return await _confirm_page(request, principal, session, rt, user_id, action)


@router.post("/admin/users/{user_id}/{action}", dependencies=[CsrfChecked])
async def change_status(
    request: Request,
    user_id: int,
    action: Literal["deactivate", "reactivate"],
    principal: AdminPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    problems = Problems()
    if action == "deactivate":
        await attempt(
            session,
            lambda: user_service.deactivate(session, rt, principal, user_id=user_id),
            problems,
        )
    else:
        await attempt(
            session,
            lambda: user_service.update(
                session, rt, principal, user_id=user_id, request=UserUpdate(is_active=True)
            ),
            problems,
        )
    if problems:
        return render(
            request,
            "error.html",
            principal=principal,
            status_code=409,
            status=409,
            detail=" ".join(problems.general),
        )
    message = "deactivated+and+signed+out" if action == "deactivate" else "reactivated"
    return redirect(f"/admin/users?done=The+account+is+{message}.")


@router.get("/admin/users/{user_id}")
async def user_appointments(
    request: Request,
    user_id: int,
    principal: AdminPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    user = await user_service.get(session, rt, principal, user_id=user_id)
    items: list[Any] = []
    if user.patient is not None or user.doctor is not None:
        page = await appointment_service.list_appointments(
            session,
            principal,
            doctor_id=user.doctor.id if user.doctor else None,
            patient_id=user.patient.id if user.patient else None,
            status=None,
            start=None,
            end=None,
            limit=200,
            cursor=None,
        )
        items = page.items
    patients = await user_service.patient_names(
        session, principal, patient_ids={a.patient_id for a in items}
    )
    doctors = {}
    for doctor_id in {a.doctor_id for a in items}:
        with contextlib.suppress(NotFoundError):  # a deactivated doctor: shown by id
            doctors[doctor_id] = (
                await doctor_service.get_doctor(session, doctor_id=doctor_id)
            ).name
    return render(
        request,
        "admin_user.html",
        principal=principal,
        user=user,
        appointments=items,
        patients=patients,
        doctors=doctors,
    )


def _parse_time(raw: str) -> datetime | None:
    """A `datetime-local` field's value, read as UTC (the console works in UTC)."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/admin/audit")
async def audit_log(
    request: Request,
    principal: AdminPrincipal,
    session: SessionDep,
    actor_id: Annotated[str, Query(max_length=12)] = "",
    entity: Annotated[str, Query(max_length=32)] = "",
    entity_id: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    start: Annotated[str, Query(alias="from", max_length=32)] = "",
    end: Annotated[str, Query(alias="to", max_length=32)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    problems = Problems()
    if actor_id and not actor_id.isdigit():
        problems.fields["actor_id"] = "An actor is a user id: digits only."
    start_at = _parse_time(start) if start else None
    end_at = _parse_time(end) if end else None
    if start and start_at is None:
        problems.fields["from"] = "Give a date and time."
    if end and end_at is None:
        problems.fields["to"] = "Give a date and time."
    entries: list[Any] = []
    next_cursor = None
    if not problems:
        page = await audit_service.list_entries(
            session,
            actor_id=int(actor_id) if actor_id else None,
            entity=entity or None,
            entity_id=entity_id or None,
            action=action or None,
            start=start_at,
            end=end_at,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
        entries, next_cursor = page.items, page.next_cursor
    verification = await audit_service.verify(session)
    filters = {
        "actor_id": actor_id,
        "entity": entity,
        "entity_id": entity_id,
        "action": action,
        "from": start,
        "to": end,
    }
    return render(
        request,
        "admin_audit.html",
        principal=principal,
        status_code=422 if problems else 200,
        entries=entries,
        next_cursor=next_cursor,
        filters=filters,
        problems=problems,
        verification=verification,
    )


def _request_stats() -> dict[str, float | None]:
    """Requests answered and their mean time, from the metrics this process keeps."""
    count = total = 0.0
    for family in metrics.collector_registry().collect():
        if family.name != "ehass_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return {"requests": count, "mean_ms": round(total / count * 1000, 1) if count else None}


@router.get("/admin/health")
async def health(
    request: Request, principal: AdminPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    report = await admin_service.health(session, rt, principal)
    today = rt.clock.now().date()
    page = await appointment_service.list_appointments(
        session,
        principal,
        doctor_id=None,
        patient_id=None,
        status=None,
        start=datetime.combine(today, time(0), UTC),
        end=datetime.combine(today + timedelta(days=1), time(0), UTC),
        limit=200,
        cursor=None,
    )
    return render(
        request,
        "admin_health.html",
        principal=principal,
        report=report,
        stats=_request_stats(),
        appointments_today=f"{len(page.items)}{'+' if page.next_cursor else ''}",
    )
