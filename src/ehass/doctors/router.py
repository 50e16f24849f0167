from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ehass.core.schemas import LIMIT_DEFAULT, Limit
from ehass.deps import ReaderDep
from ehass.doctors import service
from ehass.doctors.schemas import DoctorList, DoctorRead
from ehass.openapi import problems

router = APIRouter(prefix="/doctors", tags=["doctors"])


@router.get("", response_model=DoctorList, responses=problems(422))
async def list_doctors(
    reader: ReaderDep,
    specialty: Annotated[str | None, Query(max_length=100, description="Exact, any case")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Name contains")] = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DoctorList:
    page = await service.list_doctors(reader, specialty=specialty, q=q, limit=limit, cursor=cursor)
    return DoctorList(items=page.items, next_cursor=page.next_cursor)


@router.get("/{doctorId}", response_model=DoctorRead, responses=problems(404, 422))
async def get_doctor(
    doctor_id: Annotated[int, Path(alias="doctorId")], reader: ReaderDep
) -> DoctorRead:
    return DoctorRead.model_validate(await service.get_doctor(reader, doctor_id=doctor_id))
