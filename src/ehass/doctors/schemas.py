from __future__ import annotations

from ehass.core.schemas import Page, ResponseModel


class DoctorRead(ResponseModel):
    id: int
    user_id: int
    name: str
    specialty: str
    timezone: str


class DoctorList(Page[DoctorRead]):
    pass
