"""GET/PUT/DELETE /users/{userId} and GET /users, through HTTP, against the contract."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import date, timedelta

import pytest

from ehass.appointments.models import Status
from tests.factories import PASSWORD
from tests.problems import assert_problem

NEW_PASSWORD = "another quite unusual passphrase 7"
UTC_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
USER_FIELDS = {
    "id",
    "email",
    "name",
    "role",
    "is_active",
    "email_verified",
    "created_at",
    "patient_id",
    "date_of_birth",
    "doctor_id",
    "specialty",
    "timezone",
}


def marker() -> str:
    """A word no other row contains, so list filters can be scoped to one test's users."""
    return "m" + uuid.uuid4().hex[:10]


async def login_status(api, email: str, password: str = PASSWORD) -> int:
    response = await api("POST", "/auth/login", json={"email": email, "password": password})
    return response.status_code


async def session_status(api, token: str) -> int:
    return (await api("GET", "/auth/session", token=token)).status_code


@pytest.fixture
async def admin(factories):
    return await factories.admin()


@pytest.fixture
async def patient(factories):
    return await factories.patient(date_of_birth=date(1985, 6, 15))


@pytest.fixture
async def doctor(factories):
    return await factories.doctor(specialty="Cardiology", timezone="Europe/Berlin")


@pytest.fixture
def read_as(api, factories):
    """`await read_as(viewer, user)`: GET /users/{user.id} with viewer's token."""

    async def read(viewer, user):
        return await api("GET", f"/users/{user.id}", token=await factories.token(viewer))

    return read


# --- GET /users/{userId} ------------------------------------------------------------------


async def test_user_reads_own_patient_profile(read_as, patient):
    response = await read_as(patient, patient)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == USER_FIELDS
    assert body["id"] == patient.id and body["email"] == patient.email
    assert (body["name"], body["role"], body["is_active"]) == (patient.name, "patient", True)
    assert body["patient_id"] == patient.patient.id and body["date_of_birth"] == "1985-06-15"
    assert (body["doctor_id"], body["specialty"], body["timezone"]) == (None, None, None)
    assert body["created_at"] == "2026-11-30T12:00:00Z"
    assert "hash" not in response.text and "password" not in response.text


async def test_user_reads_own_doctor_profile(read_as, doctor):
    body = (await read_as(doctor, doctor)).json()
    assert body["role"] == "doctor" and body["doctor_id"] == doctor.doctor.id
    assert (body["specialty"], body["timezone"]) == ("Cardiology", "Europe/Berlin")
    assert (body["patient_id"], body["date_of_birth"]) == (None, None)


async def test_admin_reads_anyone(read_as, admin, patient, doctor):
    for user in (patient, doctor, admin):
        response = await read_as(admin, user)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user.id
    assert (await read_as(admin, admin)).json()["role"] == "admin"


@pytest.mark.parametrize(("status", "days"), [(Status.SCHEDULED, 1), (Status.COMPLETED, -7)])
async def test_doctor_reads_a_patient_they_have_an_appointment_with(
    read_as, factories, clock, patient, doctor, status, days
):
    await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() + timedelta(days=days), status=status
    )
    response = await read_as(doctor, patient)
    assert response.status_code == 200, response.text
    assert response.json()["date_of_birth"] == "1985-06-15"


async def test_everyone_else_gets_404(read_as, factories, clock, admin, patient, doctor):
    other_patient = await factories.patient()
    other_doctor = await factories.doctor()
    # The doctor has an appointment with the other patient only.
    await factories.appointment(
        patient=other_patient, doctor=doctor, at=clock.now() + timedelta(days=1)
    )
    # An appointment with a doctor does not let a patient see the doctor's account.
    await factories.appointment(patient=patient, doctor=other_doctor, at=clock.now())
    for viewer, user in [
        (doctor, patient),  # no appointment together
        (patient, other_patient),
        (patient, other_doctor),
        (doctor, other_doctor),
        (patient, admin),
        (doctor, admin),
    ]:
        assert_problem(await read_as(viewer, user), 404)


async def test_unknown_user_is_404_even_for_an_admin(api, factories, admin):
    token = await factories.token(admin)
    assert_problem(await api("GET", "/users/987654321", token=token), 404)
    # An id no row can ever have is just another unknown user.
    assert_problem(await api("GET", f"/users/{10**30}", token=token), 404)


async def test_non_integer_id_is_422(api, factories, admin):
    response = await api("GET", "/users/abc", token=await factories.token(admin))
    assert_problem(response, 422)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users/1"), ("PUT", "/users/1"), ("DELETE", "/users/1"), ("GET", "/users")],
)
async def test_no_token_is_401(api, method, path):
    kwargs = {"json": {"name": "X"}} if method == "PUT" else {}
    response = await api(method, path, **kwargs)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# --- PUT /users/{userId} ------------------------------------------------------------------


@pytest.fixture
def put(api, factories):
    """`await put(actor, user, {...})`: PUT /users/{user.id} with actor's token."""

    async def call(actor, user, body):
        return await api("PUT", f"/users/{user.id}", token=await factories.token(actor), json=body)

    return call


async def test_put_changes_only_the_fields_sent(put, read_as, patient):
    response = await put(patient, patient, {"name": "  Ada Renamed  "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Ada Renamed"
    assert (body["email"], body["date_of_birth"]) == (patient.email, "1985-06-15")

    response = await put(patient, patient, {"date_of_birth": "1986-07-16"})
    assert response.status_code == 200, response.text
    stored = (await read_as(patient, patient)).json()
    assert (stored["name"], stored["date_of_birth"]) == ("Ada Renamed", "1986-07-16")


async def test_doctor_changes_specialty_and_timezone(put, api, doctor):
    response = await put(doctor, doctor, {"specialty": "Neurology", "timezone": "Asia/Tokyo"})
    assert response.status_code == 200, response.text
    assert (response.json()["specialty"], response.json()["timezone"]) == (
        "Neurology",
        "Asia/Tokyo",
    )
    public = (await api("GET", f"/doctors/{doctor.doctor.id}")).json()
    assert (public["specialty"], public["timezone"]) == ("Neurology", "Asia/Tokyo")
    assert public["name"] == doctor.name


async def test_email_change_is_lower_cased_and_used_for_login(put, api, patient):
    response = await put(patient, patient, {"email": "New.Address@Example.org"})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new.address@example.org"
    assert await login_status(api, "new.address@example.org") == 200


@pytest.mark.parametrize(
    ("who", "change", "field"),
    [
        ("patient", {"specialty": "Neurology"}, "specialty"),
        ("patient", {"timezone": "Europe/Paris"}, "timezone"),
        ("doctor", {"date_of_birth": "1980-01-01"}, "date_of_birth"),
        ("admin", {"timezone": "Europe/Paris"}, "timezone"),
        ("admin", {"date_of_birth": "1980-01-01"}, "date_of_birth"),
    ],
)
async def test_fields_of_another_role_are_422(
    put, read_as, who, change, field, admin, patient, doctor
):
    user = {"patient": patient, "doctor": doctor, "admin": admin}[who]
    before = (await read_as(user, user)).json()
    problem = assert_problem(await put(user, user, change | {"name": "Changed"}), 422)
    assert any(field in map(str, e["loc"]) for e in problem["errors"]), problem
    assert (await read_as(user, user)).json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nickname": "Ada"}, "nickname"),
        ({"patient_id": 99}, "patient_id"),
        ({"password_hash": "x"}, "password_hash"),
        ({"name": None}, None),
        ({"name": ""}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, None),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"is_active": "perhaps"}, "is_active"),
    ],
)
async def test_invalid_or_unknown_fields_are_422(put, read_as, patient, body, field):
    problem = assert_problem(await put(patient, patient, body), 422)
    if field:
        assert any(field in map(str, e["loc"]) for e in problem["errors"]), problem
    assert (await read_as(patient, patient)).json()["name"] == patient.name


async def test_invalid_timezone_is_422(put, doctor):
    assert_problem(await put(doctor, doctor, {"timezone": "Mars/Olympus_Mons"}), 422)


async def test_duplicate_email_is_409_in_any_case(put, read_as, factories, patient):
    other = await factories.patient()
    assert_problem(await put(patient, patient, {"email": other.email.upper()}), 409)
    assert (await read_as(patient, patient)).json()["email"] == patient.email
    # Its own address, in another case, is no conflict.
    response = await put(patient, patient, {"email": patient.email.upper()})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == patient.email


async def test_others_cannot_change_a_user(put, read_as, factories, clock, patient, doctor):
    other_patient = await factories.patient()
    assert_problem(await put(other_patient, patient, {"name": "Hijacked"}), 404)
    assert_problem(await put(doctor, patient, {"name": "Hijacked"}), 404)
    # A doctor who may see the patient still may not change them.
    await factories.appointment(patient=patient, doctor=doctor, at=clock.now())
    assert_problem(await put(doctor, patient, {"name": "Hijacked"}), 403)
    assert (await read_as(patient, patient)).json()["name"] == patient.name


async def test_admin_changes_any_profile(put, admin, patient, doctor):
    response = await put(admin, patient, {"name": "By Admin", "date_of_birth": "1970-01-02"})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["date_of_birth"]) == (
        "By Admin",
        "1970-01-02",
    )
    response = await put(admin, doctor, {"specialty": "Dermatology"})
    assert response.status_code == 200 and response.json()["specialty"] == "Dermatology"


async def test_unknown_user_put_is_404(api, factories, admin):
    response = await api(
        "PUT", "/users/987654321", token=await factories.token(admin), json={"name": "X"}
    )
    assert_problem(response, 404)


# --- passwords ----------------------------------------------------------------------------


async def test_password_change_keeps_this_session_and_ends_the_others(api, factories, patient):
    current = await factories.login(patient)
    other = await factories.login(patient)
    # Used once first, so any cache of "this session is fine" must be overruled.
    assert await session_status(api, other["access_token"]) == 200
    response = await api(
        "PUT",
        f"/users/{patient.id}",
        token=current["access_token"],
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert "password" not in response.json()

    assert await session_status(api, current["access_token"]) == 200
    assert await session_status(api, other["access_token"]) == 401
    refreshed = await api("POST", "/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refreshed.status_code == 401
    kept = await api("POST", "/auth/refresh", json={"refresh_token": current["refresh_token"]})
    assert kept.status_code == 200
    assert await login_status(api, patient.email, NEW_PASSWORD) == 200
    assert await login_status(api, patient.email, PASSWORD) == 401


@pytest.mark.parametrize(
    "extra", [{}, {"current_password": "not the password 123"}, {"current_password": None}]
)
async def test_password_change_without_the_right_current_password_is_403(
    api, factories, patient, extra
):
    other = await factories.login(patient)
    response = await api(
        "PUT",
        f"/users/{patient.id}",
        token=await factories.token(patient),
        json={"password": NEW_PASSWORD, "name": "Not Renamed"} | extra,
    )
    assert_problem(response, 403)
    assert "not the password" not in response.text
    assert await session_status(api, other["access_token"]) == 200
    assert await login_status(api, patient.email) == 200
    stored = await api("GET", f"/users/{patient.id}", token=other["access_token"])
    assert stored.json()["name"] == patient.name


@pytest.mark.parametrize(
    "password",
    ["short pw", "x" * 129, "password1234", "Password1234"],
    ids=["too-short", "too-long", "common", "common-any-case"],
)
async def test_password_policy_is_422(put, api, patient, password):
    body = {"password": password, "current_password": PASSWORD}
    problem = assert_problem(await put(patient, patient, body), 422)
    assert any("password" in map(str, e["loc"]) for e in problem["errors"]), problem
    assert password not in json.dumps(problem)
    assert await login_status(api, patient.email) == 200


async def test_password_of_ten_and_of_128_characters_are_accepted(put, api, patient):
    for password in ["q7#kdl2!zp", "k" * 127 + "!"]:
        current = PASSWORD if password == "q7#kdl2!zp" else "q7#kdl2!zp"
        response = await put(patient, patient, {"password": password, "current_password": current})
        assert response.status_code == 200, response.text
    assert await login_status(api, patient.email, "k" * 127 + "!") == 200


async def test_admin_resets_another_users_password_without_current(api, factories, admin, patient):
    patient_session = await factories.login(patient)
    assert await session_status(api, patient_session["access_token"]) == 200
    admin_token = await factories.token(admin)
    response = await api(
        "PUT", f"/users/{patient.id}", token=admin_token, json={"password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.text
    # Every session of the patient ends; the admin's own goes on.
    assert await session_status(api, patient_session["access_token"]) == 401
    assert await session_status(api, admin_token) == 200
    assert await login_status(api, patient.email, NEW_PASSWORD) == 200


async def test_admin_changing_own_password_needs_the_current_one(put, api, admin):
    assert_problem(await put(admin, admin, {"password": NEW_PASSWORD}), 403)
    response = await put(admin, admin, {"password": NEW_PASSWORD, "current_password": PASSWORD})
    assert response.status_code == 200, response.text
    assert await login_status(api, admin.email, NEW_PASSWORD) == 200


# --- is_active and role -------------------------------------------------------------------


@pytest.mark.parametrize("value", [False, True])
async def test_is_active_from_a_non_admin_is_403_and_changes_nothing(
    put, api, factories, patient, value
):
    token = await factories.token(patient)
    response = await put(patient, patient, {"is_active": value, "name": "Sneaky"})
    assert_problem(response, 403)
    assert await session_status(api, token) == 200
    body = (await api("GET", f"/users/{patient.id}", token=token)).json()
    assert (body["is_active"], body["name"]) == (True, patient.name)


async def test_is_active_from_a_doctor_who_sees_the_patient_is_403(
    put, read_as, factories, clock, admin, patient, doctor
):
    await factories.appointment(patient=patient, doctor=doctor, at=clock.now())
    assert_problem(await put(doctor, patient, {"is_active": False}), 403)
    assert (await read_as(admin, patient)).json()["is_active"] is True


async def test_role_from_an_admin_is_422_and_from_anyone_else_403(
    put, read_as, admin, patient, doctor
):
    problem = assert_problem(await put(admin, patient, {"role": "doctor"}), 422)
    assert any("role" in map(str, e["loc"]) for e in problem["errors"]), problem
    assert_problem(await put(admin, admin, {"role": "patient", "name": "Renamed"}), 422)
    assert_problem(await put(patient, patient, {"role": "admin"}), 403)
    assert_problem(await put(doctor, doctor, {"role": "doctor"}), 403)
    assert (await read_as(admin, patient)).json()["role"] == "patient"
    # The 422 refused the whole request: the name sent with it did not change either.
    assert (await read_as(admin, admin)).json()["name"] == admin.name


async def test_admin_deactivates_and_reactivates_with_put(put, api, factories, admin, patient):
    patient_token = await factories.token(patient)
    assert await session_status(api, patient_token) == 200
    response = await put(admin, patient, {"is_active": False})
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert await session_status(api, patient_token) == 401
    assert await login_status(api, patient.email) == 401

    response = await put(admin, patient, {"is_active": True})
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True
    assert await login_status(api, patient.email) == 200
    # Reactivation does not bring old sessions back.
    assert await session_status(api, patient_token) == 401


# --- DELETE /users/{userId} ---------------------------------------------------------------


async def _status_of(session, appointment) -> str:
    await session.refresh(appointment)
    return appointment.status


@pytest.mark.parametrize("by", ["self", "admin"])
async def test_delete_deactivates_at_once(
    api, factories, session, clock, admin, patient, doctor, by
):
    own = await factories.login(patient)
    other = await factories.login(patient)
    future = await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() + timedelta(days=2)
    )
    past = await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() - timedelta(days=2)
    )
    cancelled = await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() + timedelta(days=3), status=Status.CANCELLED
    )
    token = own["access_token"] if by == "self" else await factories.token(admin)
    for pair in (own, other):
        assert await session_status(api, pair["access_token"]) == 200

    response = await api("DELETE", f"/users/{patient.id}", token=token)
    assert response.status_code == 204, response.text
    assert response.content == b""

    for pair in (own, other):
        assert await session_status(api, pair["access_token"]) == 401
        again = await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert again.status_code == 401
    assert await login_status(api, patient.email) == 401
    assert await _status_of(session, future) == Status.CANCELLED
    assert await _status_of(session, past) == Status.SCHEDULED
    assert await _status_of(session, cancelled) == Status.CANCELLED
    # Nothing is physically deleted.
    stored = await api("GET", f"/users/{patient.id}", token=await factories.token(admin))
    assert stored.status_code == 200 and stored.json()["is_active"] is False


async def test_deleting_a_doctor_cancels_their_future_appointments(
    api, factories, session, clock, patient, doctor
):
    future = await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() + timedelta(hours=1)
    )
    past = await factories.appointment(
        patient=patient, doctor=doctor, at=clock.now() - timedelta(hours=1)
    )
    response = await api("DELETE", f"/users/{doctor.id}", token=await factories.token(doctor))
    assert response.status_code == 204, response.text
    assert await _status_of(session, future) == Status.CANCELLED
    assert await _status_of(session, past) == Status.SCHEDULED
    assert_problem(await api("GET", f"/doctors/{doctor.doctor.id}"), 404)


async def test_admin_reactivates_a_deleted_user(api, factories, admin, patient):
    await api("DELETE", f"/users/{patient.id}", token=await factories.token(patient))
    response = await api(
        "PUT",
        f"/users/{patient.id}",
        token=await factories.token(admin),
        json={"is_active": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True
    assert await login_status(api, patient.email) == 200


async def test_others_cannot_delete_a_user(api, factories, read_as, clock, admin, patient, doctor):
    other = await factories.patient()
    for actor in (other, doctor):
        response = await api("DELETE", f"/users/{patient.id}", token=await factories.token(actor))
        assert_problem(response, 404)
    await factories.appointment(patient=patient, doctor=doctor, at=clock.now())
    response = await api("DELETE", f"/users/{patient.id}", token=await factories.token(doctor))
    assert_problem(response, 403)
    assert (await read_as(admin, patient)).json()["is_active"] is True
    assert_problem(await api("DELETE", "/users/987654321", token=await factories.token(admin)), 404)


# --- GET /users ---------------------------------------------------------------------------


@pytest.fixture
def list_users(api, factories, admin):
    """`await list_users(q=..., limit=...)`: GET /users as the admin; returns the response."""

    async def call(**params):
        return await api("GET", "/users", token=await factories.token(admin), params=params)

    return call


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_only_admins_list_users(api, factories, patient, doctor):
    for user in (patient, doctor):
        response = await api("GET", "/users", token=await factories.token(user))
        assert_problem(response, 403)


async def test_list_items_are_users(list_users, patient):
    response = await list_users(q=patient.email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"items", "next_cursor"}
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item.keys() == USER_FIELDS
    assert (item["id"], item["patient_id"], item["date_of_birth"]) == (
        patient.id,
        patient.patient.id,
        "1985-06-15",
    )
    assert UTC_FORM.match(item["created_at"])


async def test_list_filters_by_role_and_is_active(list_users, factories):
    tag = marker()
    p = await factories.patient(name=f"P {tag}")
    d = await factories.doctor(name=f"D {tag}")
    a = await factories.admin(name=f"A {tag}")
    gone = await factories.patient(name=f"Gone {tag}", is_active=False)

    assert ids(await list_users(q=tag)) == [p.id, d.id, a.id, gone.id]
    assert ids(await list_users(q=tag, role="patient")) == [p.id, gone.id]
    assert ids(await list_users(q=tag, role="doctor")) == [d.id]
    assert ids(await list_users(q=tag, role="admin")) == [a.id]
    assert ids(await list_users(q=tag, is_active="false")) == [gone.id]
    assert ids(await list_users(q=tag, is_active="true")) == [p.id, d.id, a.id]
    assert ids(await list_users(q=tag, role="patient", is_active="true")) == [p.id]


@pytest.mark.parametrize("params", [{"role": "nurse"}, {"is_active": "sometimes"}])
async def test_invalid_filters_are_422(list_users, params):
    assert_problem(await list_users(**params), 422)


async def test_q_matches_name_or_email_case_insensitively(list_users, factories):
    tag = marker()
    by_name = await factories.patient(name=f"Grace {tag.upper()} Hopper")
    by_email = await factories.doctor(email=f"{tag}.doc@clinic.example")
    await factories.patient(name="Unrelated Person")
    assert ids(await list_users(q=tag)) == [by_name.id, by_email.id]
    assert ids(await list_users(q=tag.upper())) == [by_name.id, by_email.id]
    assert ids(await list_users(q=f"{tag}.DOC@Clinic")) == [by_email.id]
    assert ids(await list_users(q=f"grace {tag}")) == [by_name.id]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("%", ["100% Sure"]),
        ("_", ["Under_Score"]),
        ("\\", ["Back\\Slash"]),
        ("0%", ["100% Sure"]),
        # As LIKE wildcards these would match "Plain Name"; as literal text they match nothing.
        ("n_n", []),
        ("n%e", []),
        ("\\%", []),
    ],
)
async def test_q_wildcards_are_literal(list_users, factories, query, matches):
    tag = marker()
    users = {
        name: await factories.patient(name=f"{name} {tag}", email=f"{tag}.{i}@example.org")
        for i, name in enumerate(["100% Sure", "Under_Score", "Back\\Slash", "Plain Name"])
    }
    response = await list_users(q=query, limit=200)
    found = set(ids(response))
    mine = {user.id for user in users.values()}
    assert found & mine == {users[name].id for name in matches}


async def test_q_percent_does_not_match_everything(list_users, factories):
    tag = marker()
    created = [await factories.patient(name=f"No Percent {tag} {i}") for i in range(3)]
    found = set(ids(await list_users(q="%", limit=200)))
    assert not found & {u.id for u in created}


async def test_pages_concatenate_to_the_full_list_in_id_order(list_users, factories):
    tag = marker()
    created = [(await factories.patient(name=f"Paged {tag} {i}")).id for i in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": tag, "limit": 3} | ({"cursor": cursor} if cursor else {})
        response = await list_users(**params)
        page = ids(response)
        assert len(page) <= 3
        seen += page
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and pages < 10
    assert pages == 3
    assert seen == sorted(created)


async def test_limit_defaults_to_50(list_users, factories):
    tag = marker()
    created = [(await factories.patient(name=f"Many {tag} {i}")).id for i in range(51)]
    first = await list_users(q=tag)
    assert ids(first) == created[:50]
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await list_users(q=tag, cursor=cursor)
    assert ids(second) == created[50:]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(("limit", "status"), [(1, 200), (200, 200), (0, 422), (201, 422)])
async def test_limit_bounds(list_users, limit, status):
    response = await list_users(limit=limit)
    if status == 422:
        problem = assert_problem(response, 422)
        assert any("limit" in map(str, e["loc"]) for e in problem["errors"]), problem
    else:
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) <= limit


def _b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED_CURSORS = [
    "not a cursor!",
    "%%%",
    _b64(b"\xff\xfe binary"),
    _b64({"after": 1}),
    _b64(["v1"]),
    _b64(["v1", "seven"]),
    _b64(["v1", True]),
    _b64(["v1", 1, 2]),
    _b64(["v9", 1]),
    _b64(["v1", 10**30]),
    _b64(["v1", -(10**30)]),
]


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS)
async def test_malformed_cursor_is_422(list_users, cursor):
    problem = assert_problem(await list_users(cursor=cursor), 422)
    assert any("cursor" in map(str, e["loc"]) for e in problem["errors"]), problem
