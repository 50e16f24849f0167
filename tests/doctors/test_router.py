"""GET /doctors and GET /doctors/{doctorId}, through HTTP, against the contract."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.problems import assert_problem

DOCTOR_FIELDS = {"id", "user_id", "name", "specialty", "timezone"}


def marker() -> str:
    """A word no other row contains, so filters can be scoped to one test's doctors."""
    return "m" + uuid.uuid4().hex[:10]


@pytest.fixture
def list_doctors(api):
    """`await list_doctors(q=...)`: GET /doctors without any token."""

    async def call(**params):
        return await api("GET", "/doctors", params=params)

    return call


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- GET /doctors -------------------------------------------------------------------------


async def test_lists_doctors_without_a_token(list_doctors, factories):
    tag = marker()
    user = await factories.doctor(
        name=f"Dr Who {tag}", specialty="Time Medicine", timezone="Europe/London"
    )
    response = await list_doctors(q=tag)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "items": [
            {
                "id": user.doctor.id,
                "user_id": user.id,
                "name": f"Dr Who {tag}",
                "specialty": "Time Medicine",
                "timezone": "Europe/London",
            }
        ],
        "next_cursor": None,
    }


async def test_lists_active_doctors_only_and_no_other_roles(list_doctors, factories):
    tag = marker()
    active = await factories.doctor(name=f"Active {tag}")
    await factories.doctor(name=f"Retired {tag}", is_active=False)
    await factories.patient(name=f"Patient {tag}")
    await factories.admin(name=f"Admin {tag}")
    assert ids(await list_doctors(q=tag)) == [active.doctor.id]


async def test_a_deactivated_doctor_leaves_the_list(list_doctors, api, factories):
    tag = marker()
    doctor = await factories.doctor(name=f"Leaving {tag}")
    assert ids(await list_doctors(q=tag)) == [doctor.doctor.id]
    response = await api("DELETE", f"/users/{doctor.id}", token=await factories.token(doctor))
    assert response.status_code == 204
    assert ids(await list_doctors(q=tag)) == []


async def test_specialty_is_an_exact_case_insensitive_match(list_doctors, factories):
    tag = marker()
    cardio = await factories.doctor(specialty=f"Cardiology {tag}")
    await factories.doctor(specialty=f"Pediatric Cardiology {tag}")
    await factories.doctor(specialty=f"Cardiology {tag} Extra")
    other = await factories.doctor(specialty=f"cardiology {tag}".upper())
    expected = [cardio.doctor.id, other.doctor.id]
    assert ids(await list_doctors(specialty=f"Cardiology {tag}")) == expected
    assert ids(await list_doctors(specialty=f"CARDIOLOGY {tag}".lower())) == expected
    assert ids(await list_doctors(specialty=f"Cardio {tag}")) == []
    assert ids(await list_doctors(specialty=tag)) == []


async def test_specialty_and_q_combine(list_doctors, factories):
    tag = marker()
    ann = await factories.doctor(name=f"Ann {tag}", specialty=f"Derm {tag}")
    await factories.doctor(name=f"Bob {tag}", specialty=f"Derm {tag}")
    await factories.doctor(name=f"Ann {tag} Two", specialty=f"Neuro {tag}")
    assert ids(await list_doctors(specialty=f"derm {tag}", q="ann")) == [ann.doctor.id]


async def test_q_is_a_case_insensitive_substring_of_the_name(list_doctors, factories):
    tag = marker()
    grace = await factories.doctor(name=f"Grace {tag.upper()} Hopper")
    await factories.doctor(
        name="Someone Else", email=f"{tag}@example.org", specialty=f"Surgery {tag}"
    )
    assert ids(await list_doctors(q=tag)) == [grace.doctor.id]
    assert ids(await list_doctors(q=f"GRACE {tag}")) == [grace.doctor.id]
    assert ids(await list_doctors(q=f"{tag} hop")) == [grace.doctor.id]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("%", ["100% Doc"]),
        ("_", ["Under_Doc"]),
        ("\\", ["Back\\Doc"]),
        # As LIKE wildcards these would match "Plain Doc"; as literal text they match nothing.
        ("n_d", []),
        ("p%c", []),
    ],
)
async def test_q_wildcards_are_literal(list_doctors, factories, query, matches):
    tag = marker()
    doctors = {
        name: await factories.doctor(name=f"{name} {tag}")
        for name in ["100% Doc", "Under_Doc", "Back\\Doc", "Plain Doc"]
    }
    found = set(ids(await list_doctors(q=query, limit=200)))
    mine = {user.doctor.id for user in doctors.values()}
    assert found & mine == {doctors[name].doctor.id for name in matches}


async def test_pages_concatenate_to_the_full_list_in_id_order(list_doctors, factories):
    tag = marker()
    created = [(await factories.doctor(name=f"Paged {tag} {i}")).doctor.id for i in range(5)]
    await factories.doctor(name=f"Paged {tag} inactive", is_active=False)
    seen, cursor = [], None
    for _ in range(5):
        params = {"q": tag, "limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await list_doctors(**params)
        page = ids(response)
        assert 0 < len(page) <= 2
        seen += page
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert seen == sorted(created)


async def test_limit_defaults_to_50(list_doctors, factories):
    tag = marker()
    created = [(await factories.doctor(name=f"Many {tag} {i}")).doctor.id for i in range(51)]
    first = await list_doctors(q=tag)
    assert ids(first) == created[:50]
    second = await list_doctors(q=tag, cursor=first.json()["next_cursor"])
    assert ids(second) == created[50:]
    assert second.json()["next_cursor"] is None


@pytest.mark.parametrize(("limit", "status"), [(1, 200), (200, 200), (0, 422), (201, 422)])
async def test_limit_bounds(list_doctors, limit, status):
    response = await list_doctors(limit=limit)
    if status == 422:
        problem = assert_problem(response, 422)
        assert any("limit" in map(str, e["loc"]) for e in problem["errors"]), problem
    else:
        assert response.status_code == 200, response.text


def _b64(value: object) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        _b64(b"\xff\xfe"),
        _b64({"after": 1}),
        _b64(["v1", "seven"]),
        _b64(["v1", 1.5]),
        _b64(["v1", 10**30]),
        _b64(["v2", 1]),
    ],
)
async def test_malformed_cursor_is_422(list_doctors, cursor):
    problem = assert_problem(await list_doctors(cursor=cursor), 422)
    assert any("cursor" in map(str, e["loc"]) for e in problem["errors"]), problem


# --- GET /doctors/{doctorId} --------------------------------------------------------------


async def test_reads_one_doctor_without_a_token(api, factories):
    user = await factories.doctor(specialty="Oncology", timezone="Asia/Tokyo")
    response = await api("GET", f"/doctors/{user.doctor.id}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": user.doctor.id,
        "user_id": user.id,
        "name": user.name,
        "specialty": "Oncology",
        "timezone": "Asia/Tokyo",
    }
    assert response.json().keys() == DOCTOR_FIELDS


async def test_unknown_or_inactive_doctor_is_404(api, factories):
    inactive = await factories.doctor(is_active=False)
    for doctor_id in [inactive.doctor.id, 987654321, 10**30, 0, -1]:
        assert_problem(await api("GET", f"/doctors/{doctor_id}"), 404)


async def test_non_integer_doctor_id_is_422(api):
    assert_problem(await api("GET", "/doctors/first"), 422)
