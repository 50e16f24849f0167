"""GET /appointments/{id} and GET /appointments: who sees what, filters, order and pages."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from ehass.appointments.models import Status
from tests.appointments.support import (
    TUE_0900,
    WED_0900,
    assert_appointment,
    doctor_id,
    error_locs,
    patient_id,
    z,
)
from tests.problems import assert_problem


@pytest.fixture
async def cast(factories):
    """Two patients, two doctors, an admin, and appointments between them."""
    p1, p2 = await factories.patient(), await factories.patient()
    d1, d2 = await factories.doctor(), await factories.doctor()
    admin = await factories.admin()
    appointments = {
        "p1_d1": await factories.appointment(patient=p1, doctor=d1, at=WED_0900),
        "p1_d2": await factories.appointment(
            patient=p1, doctor=d2, at=TUE_0900 + timedelta(hours=2)
        ),
        "p2_d1": await factories.appointment(patient=p2, doctor=d1, at=TUE_0900),
        "p2_d2": await factories.appointment(
            patient=p2, doctor=d2, at=WED_0900 + timedelta(hours=1), status=Status.CANCELLED
        ),
    }
    return {"p1": p1, "p2": p2, "d1": d1, "d2": d2, "admin": admin, **appointments}


async def _ids(api, token, **params):
    response = await api("GET", "/appointments", token=token, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    return [item["id"] for item in body["items"]]


# GET one ------------------------------------------------------------------------------------


async def test_its_patient_its_doctor_and_an_admin_see_an_appointment(api, factories, cast):
    appointment = cast["p1_d1"]
    answers = [
        await api("GET", f"/appointments/{appointment.id}", token=await factories.token(who))
        for who in (cast["p1"], cast["d1"], cast["admin"])
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    body = answers[0].json()
    assert all(a.json() == body for a in answers)
    assert_appointment(
        body,
        id=appointment.id,
        patient_id=patient_id(cast["p1"]),
        doctor_id=doctor_id(cast["d1"]),
        scheduled_at="2026-12-02T09:00:00Z",
        ends_at="2026-12-02T09:30:00Z",
        status="scheduled",
        reason="check-up",
        created_at="2026-11-30T12:00:00Z",
        updated_at="2026-11-30T12:00:00Z",
    )


async def test_anyone_else_gets_the_same_404_as_for_a_missing_one(api, factories, cast):
    appointment = cast["p1_d1"]
    missing = await api("GET", "/appointments/999999", token=await factories.token(cast["admin"]))
    missing_problem = assert_problem(missing, 404)
    for who in (cast["p2"], cast["d2"]):
        response = await api(
            "GET", f"/appointments/{appointment.id}", token=await factories.token(who)
        )
        problem = assert_problem(response, 404)
        assert (problem["type"], problem["title"]) == (
            missing_problem["type"],
            missing_problem["title"],
        )
        assert "check-up" not in response.text


async def test_get_one_needs_a_token(client, cast):
    response = await client.get(f"/api/v1/appointments/{cast['p1_d1'].id}")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_non_integer_id_is_422(api, factories):
    response = await api(
        "GET", "/appointments/abc", token=await factories.token(await factories.admin())
    )
    assert_problem(response, 422)


# Who sees what in the list -----------------------------------------------------------------


async def test_a_patient_only_ever_sees_their_own(api, factories, cast):
    token = await factories.token(cast["p1"])
    own = [cast["p1_d2"].id, cast["p1_d1"].id]  # by scheduled_at: Tue 11:00, Wed 09:00
    assert await _ids(api, token) == own
    assert await _ids(api, token, patient_id=patient_id(cast["p1"])) == own
    assert await _ids(api, token, patient_id=patient_id(cast["p2"])) == []
    assert await _ids(api, token, doctor_id=doctor_id(cast["d2"])) == [cast["p1_d2"].id]
    assert (
        await _ids(api, token, patient_id=patient_id(cast["p2"]), doctor_id=doctor_id(cast["d1"]))
        == []
    )
    assert await _ids(api, token, status="cancelled") == []


async def test_a_doctor_only_ever_sees_theirs(api, factories, cast):
    token = await factories.token(cast["d1"])
    theirs = [cast["p2_d1"].id, cast["p1_d1"].id]  # Tue 09:00, Wed 09:00
    assert await _ids(api, token) == theirs
    assert await _ids(api, token, doctor_id=doctor_id(cast["d2"])) == []
    assert await _ids(api, token, patient_id=patient_id(cast["p1"])) == [cast["p1_d1"].id]
    assert await _ids(api, token, doctor_id=doctor_id(cast["d1"])) == theirs


async def test_a_doctor_sees_cancelled_appointments_too(api, factories, cast):
    token = await factories.token(cast["d2"])
    assert await _ids(api, token) == [cast["p1_d2"].id, cast["p2_d2"].id]
    assert await _ids(api, token, status="cancelled") == [cast["p2_d2"].id]


async def test_an_admin_sees_all_and_filters(api, factories, cast):
    token = await factories.token(cast["admin"])
    everything = [cast[k].id for k in ("p2_d1", "p1_d2", "p1_d1", "p2_d2")]
    assert await _ids(api, token) == everything
    assert await _ids(api, token, doctor_id=doctor_id(cast["d1"])) == [
        cast["p2_d1"].id,
        cast["p1_d1"].id,
    ]
    assert await _ids(api, token, patient_id=patient_id(cast["p2"])) == [
        cast["p2_d1"].id,
        cast["p2_d2"].id,
    ]
    assert await _ids(api, token, status="scheduled") == everything[:3]
    assert await _ids(api, token, status="cancelled") == [cast["p2_d2"].id]
    assert await _ids(api, token, status="completed") == []
    assert await _ids(
        api, token, doctor_id=doctor_id(cast["d2"]), patient_id=patient_id(cast["p2"])
    ) == [cast["p2_d2"].id]


async def test_from_is_inclusive_and_to_exclusive_on_scheduled_at(api, factories, cast):
    token = await factories.token(cast["admin"])
    # Appointments start Tue 09:00, Tue 11:00, Wed 09:00 and Wed 10:00.
    assert await _ids(api, token, **{"from": "2026-12-01T11:00:00Z"}) == [
        cast["p1_d2"].id,
        cast["p1_d1"].id,
        cast["p2_d2"].id,
    ]
    assert await _ids(api, token, to="2026-12-01T11:00:00Z") == [cast["p2_d1"].id]
    assert await _ids(
        api, token, **{"from": "2026-12-01T09:00:00Z", "to": "2026-12-02T09:00:00Z"}
    ) == [cast["p2_d1"].id, cast["p1_d2"].id]
    # The same instants written with another offset.
    assert await _ids(
        api, token, **{"from": "2026-12-01T12:00:00+01:00", "to": "2026-12-02T11:00:00+01:00"}
    ) == [cast["p1_d2"].id, cast["p1_d1"].id]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-12-01T09:00:00"},
        {"to": "2026-12-01"},
        {"from": "1796115600"},
        {"status": "booked"},
        {"doctor_id": "two"},
        {"patient_id": "1.5"},
    ],
)
async def test_malformed_filters_are_422(api, factories, params):
    response = await api(
        "GET", "/appointments", token=await factories.token(await factories.admin()), params=params
    )
    problem = assert_problem(response, 422)
    assert set(params) <= error_locs(problem)


async def test_listing_needs_a_token(client):
    response = await client.get("/api/v1/appointments")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_items_are_full_appointments_in_the_contracts_form(api, factories, cast):
    response = await api("GET", "/appointments", token=await factories.token(cast["p2"]))
    items = response.json()["items"]
    assert len(items) == 2
    assert_appointment(
        items[1],
        id=cast["p2_d2"].id,
        patient_id=patient_id(cast["p2"]),
        doctor_id=doctor_id(cast["d2"]),
        scheduled_at="2026-12-02T10:00:00Z",
        ends_at="2026-12-02T10:30:00Z",
        status="cancelled",
        reason="check-up",
    )


# Order and pages ---------------------------------------------------------------------------


async def test_ordered_by_scheduled_at_whatever_the_insertion_order(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    for hours in (50, 2, 26, 0, 3):
        await factories.appointment(
            patient=patient, doctor=doctor, at=TUE_0900 + timedelta(hours=hours)
        )
    response = await api("GET", "/appointments", token=await factories.token(patient))
    starts = [item["scheduled_at"] for item in response.json()["items"]]
    assert starts == [z(TUE_0900 + timedelta(hours=h)) for h in (0, 2, 3, 26, 50)]


async def test_limit_defaults_to_50(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    for n in range(51):
        await factories.appointment(
            patient=patient, doctor=doctor, at=TUE_0900 + timedelta(minutes=30 * n)
        )
    token = await factories.token(patient)
    first = await api("GET", "/appointments", token=token)
    assert len(first.json()["items"]) == 50
    assert first.json()["next_cursor"]
    rest = await api(
        "GET", "/appointments", token=token, params={"cursor": first.json()["next_cursor"]}
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None
    assert rest.json()["items"][0]["scheduled_at"] == z(TUE_0900 + timedelta(minutes=30 * 50))


@pytest.mark.parametrize("limit", ["0", "-1", "201", "1000", "ten", "1.5", ""])
async def test_limit_outside_1_to_200_is_422(api, factories, limit):
    response = await api(
        "GET",
        "/appointments",
        token=await factories.token(await factories.admin()),
        params={"limit": limit},
    )
    assert "limit" in error_locs(assert_problem(response, 422))


@pytest.mark.parametrize("limit", [1, 200])
async def test_limit_edges_are_accepted(api, factories, cast, limit):
    response = await api(
        "GET",
        "/appointments",
        token=await factories.token(cast["admin"]),
        params={"limit": limit},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == min(limit, 4)
    assert (response.json()["next_cursor"] is None) == (limit >= 4)


def _b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!",
        _b64(b"\xff\xfe"),
        _b64({"at": "2026-12-01T09:00:00Z"}),
        _b64(["v1", 5]),  # a cursor from a list ordered by id
        _b64(["v1", "yesterday", 5]),
        _b64(["v1", "2026-12-01T09:00:00", 5]),  # no offset
        _b64(["v1", "2026-12-01T09:00:00Z", "5"]),
        _b64(["v2", "2026-12-01T09:00:00Z", 5]),
        "x" * 600,
    ],
)
async def test_a_malformed_cursor_is_422(api, factories, cursor):
    response = await api(
        "GET",
        "/appointments",
        token=await factories.token(await factories.admin()),
        params={"cursor": cursor},
    )
    assert "cursor" in error_locs(assert_problem(response, 422))


async def _walk(api, token, limit, **params):
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await api("GET", "/appointments", token=token, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert body["items"], "a page with a next cursor must not be empty"
        assert len(pages) < 50, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_pages_concatenate_to_the_whole_list_even_with_equal_start_times(
    api, factories, limit
):
    doctors = [await factories.doctor() for _ in range(3)]
    patients = [await factories.patient() for _ in range(3)]
    created = []
    # Three appointments at the same instant with different doctors, surrounded by others.
    for i, doctor in enumerate(doctors):
        created.append(await factories.appointment(patient=patients[i], doctor=doctor, at=WED_0900))
    created.append(await factories.appointment(patient=patients[0], doctor=doctors[1], at=TUE_0900))
    created.append(
        await factories.appointment(
            patient=patients[1], doctor=doctors[2], at=WED_0900 + timedelta(minutes=30)
        )
    )
    created.append(
        await factories.appointment(
            patient=patients[2], doctor=doctors[0], at=WED_0900, status=Status.CANCELLED
        )
    )
    token = await factories.token(await factories.admin())

    pages = await _walk(api, token, limit)
    items = [item for page in pages for item in page]
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == len(created)
    assert set(ids) == {a.id for a in created}
    starts = [item["scheduled_at"] for item in items]
    assert starts == sorted(starts)
    assert starts.count("2026-12-02T09:00:00Z") == 4
    whole = await api("GET", "/appointments", token=token, params={"limit": 200})
    assert [item["id"] for item in whole.json()["items"]] == ids


async def test_a_cursor_keeps_the_filters_of_the_request_it_is_sent_with(api, factories):
    doctor = await factories.doctor()
    other = await factories.doctor()
    patient = await factories.patient()
    mine = [
        await factories.appointment(
            patient=patient, doctor=doctor, at=TUE_0900 + timedelta(hours=h)
        )
        for h in range(5)
    ]
    for h in range(5):
        await factories.appointment(
            patient=await factories.patient(),
            doctor=other,
            at=TUE_0900 + timedelta(hours=h, minutes=30),
        )
    token = await factories.token(doctor)
    pages = await _walk(api, token, 2)
    assert [item["id"] for page in pages for item in page] == [a.id for a in mine]
    assert [len(page) for page in pages][:2] == [2, 2]
