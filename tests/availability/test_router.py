"""GET and POST /doctors/{doctorId}/availability, through HTTP, against the contract.

Expected UTC times are worked out by hand from the zones' published offsets, never taken
from the code under test. 2026 transitions (all Sundays):
  New York: 2026-03-08 02:00 EST -> 03:00 EDT;  2026-11-01 02:00 EDT -> 01:00 EST
  Berlin:   2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET
The default clock is Monday 2026-11-30 12:00 UTC; factories' doctors work Mon-Fri 09-17.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from ehass.appointments.models import Status
from tests.problems import assert_problem

UTC_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z$")
NINE_TO_FIVE = [{"day": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed")]


def at(text: str) -> datetime:
    """`at("2026-12-01 10:00")`: an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def grid(day: str, first: str, last: str, minutes: int = 30) -> list[str]:
    """UTC slot starts on `day` from `first` to `last` inclusive, `minutes` apart."""
    start, end = at(f"{day} {first}"), at(f"{day} {last}")
    out = []
    while start <= end:
        out.append(start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        start += timedelta(minutes=minutes)
    return out


def starts(response, minutes: int = 30) -> list[str]:
    """The slot starts of an Availability response, after checking every slot's form."""
    assert response.status_code == 200, response.text
    slots = response.json()["slots"]
    for slot in slots:
        assert UTC_FORM.match(slot["start"]) and UTC_FORM.match(slot["end"]), slot
        length = datetime.fromisoformat(slot["end"]) - datetime.fromisoformat(slot["start"])
        assert length == timedelta(minutes=minutes), slot
    return [slot["start"] for slot in slots]


@pytest.fixture
def availability(api):
    """`await availability(doctor, from_=..., to=...)`: GET without a token."""

    async def call(doctor, **params):
        if "from_" in params:
            params["from"] = params.pop("from_")
        return await api("GET", f"/doctors/{doctor.doctor.id}/availability", params=params)

    return call


@pytest.fixture
def post(api, factories):
    """`await post(actor, doctor, body)`: POST a new definition with actor's token."""

    async def call(actor, doctor, body):
        token = await factories.token(actor)
        path = f"/doctors/{doctor.doctor.id}/availability"
        return await api("POST", path, token=token, json=body)

    return call


# --- GET: the range -----------------------------------------------------------------------


async def test_default_range_is_now_to_seven_days_ahead(availability, factories):
    doctor = await factories.doctor()
    response = await availability(doctor)
    expected = grid("2026-11-30", "12:00", "16:30")  # a slot starting now is not past
    for day in ("2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"):
        expected += grid(day, "09:00", "16:30")
    expected += grid("2026-12-07", "09:00", "11:30")  # `to` (12:00) is excluded
    assert starts(response) == expected
    body = response.json()
    assert (body["doctor_id"], body["timezone"], body["slot_minutes"]) == (
        doctor.doctor.id,
        "UTC",
        30,
    )
    days = ["mon", "tue", "wed", "thu", "fri"]
    assert body["weekly"] == [{"day": d, "start": "09:00", "end": "17:00"} for d in days]
    assert body["overrides"] == []


async def test_slots_start_in_the_half_open_range(availability, factories):
    doctor = await factories.doctor()
    response = await availability(doctor, from_="2026-12-01T09:15:00Z", to="2026-12-01T10:30:00Z")
    assert starts(response) == ["2026-12-01T09:30:00Z", "2026-12-01T10:00:00Z"]


async def test_offsets_in_the_query_are_honoured_and_answers_are_utc(availability, factories):
    doctor = await factories.doctor()
    response = await availability(
        doctor, from_="2026-12-01T10:00:00+01:00", to="2026-12-01T06:00:00-05:00"
    )
    assert starts(response) == grid("2026-12-01", "09:00", "10:30")


async def test_to_defaults_to_from_plus_seven_days(availability, factories):
    doctor = await factories.doctor()
    response = await availability(doctor, from_="2026-12-08T12:00:00Z")
    expected = grid("2026-12-08", "12:00", "16:30")
    for day in ("2026-12-09", "2026-12-10", "2026-12-11", "2026-12-14"):
        expected += grid(day, "09:00", "16:30")
    expected += grid("2026-12-15", "09:00", "11:30")
    assert starts(response) == expected


async def test_past_slots_are_never_listed(availability, factories, clock):
    doctor = await factories.doctor()
    clock.at = at("2026-11-30 12:10")
    response = await availability(doctor, from_="2026-11-27T00:00:00Z", to="2026-11-30T14:00:00Z")
    assert starts(response) == [
        "2026-11-30T12:30:00Z",
        "2026-11-30T13:00:00Z",
        "2026-11-30T13:30:00Z",
    ]
    response = await availability(doctor, from_="2026-11-23T00:00:00Z", to="2026-11-28T00:00:00Z")
    assert starts(response) == []


async def test_a_range_of_exactly_62_days_is_allowed(availability, factories):
    doctor = await factories.doctor()
    response = await availability(doctor, from_="2026-12-01T00:00:00Z", to="2027-02-01T00:00:00Z")
    slots = starts(response)
    assert slots[0] == "2026-12-01T09:00:00Z" and slots[-1] == "2027-01-29T16:30:00Z"
    assert len(slots) == 44 * 16  # 23 weekdays in December from the 1st, 21 in January


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-02T00:00:00Z"}, "to"),
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"to": "2026-11-30T11:00:00Z"}, "to"),  # before `from`, which defaults to now
        ({"from": "2026-12-01T00:00:00Z", "to": "2027-02-01T00:00:01Z"}, "to"),
        ({"from": "2026-12-01T09:00:00"}, "from"),
        ({"from": "2026-12-01T09:00:00Z", "to": "2026-12-02T09:00:00"}, "to"),
        ({"from": "2026-12-01"}, "from"),
        ({"from": "tomorrow"}, "from"),
        ({"from": "1764579600"}, "from"),  # a Unix time is not RFC 3339
        ({"from": "2026-12-01T09:00Z"}, "from"),  # neither is a time without seconds
        ({"from": "9999-12-30T00:00:00Z"}, "from"),
        ({"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"}, "from"),
    ],
)
async def test_bad_ranges_are_422(api, factories, params, field):
    doctor = await factories.doctor()
    response = await api("GET", f"/doctors/{doctor.doctor.id}/availability", params=params)
    problem = assert_problem(response, 422)
    assert any(field in map(str, e["loc"]) for e in problem["errors"]), problem


async def test_unknown_or_inactive_doctor_is_404(api, factories):
    inactive = await factories.doctor(is_active=False)
    for doctor_id in (inactive.doctor.id, 987654321, 10**30):
        assert_problem(await api("GET", f"/doctors/{doctor_id}/availability"), 404)


# --- GET: what makes a slot free ----------------------------------------------------------

DEC_1 = {"from_": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}


async def test_scheduled_appointments_hide_the_slots_they_overlap(availability, factories):
    doctor, patient = await factories.doctor(), await factories.patient()
    await factories.appointment(patient=patient, doctor=doctor, at=at("2026-12-01 10:00"))
    await factories.appointment(
        patient=patient, doctor=doctor, at=at("2026-12-01 11:00"), minutes=60
    )
    # Off the grid, 13:15-13:45: overlaps both the 13:00 and the 13:30 slot.
    await factories.appointment(patient=patient, doctor=doctor, at=at("2026-12-01 13:15"))
    # Ends exactly when the 16:00 slot starts: touching is no overlap.
    await factories.appointment(
        patient=patient, doctor=doctor, at=at("2026-12-01 15:40"), minutes=20
    )
    taken = {"10:00", "11:00", "11:30", "13:00", "13:30", "15:30"}
    expected = [s for s in grid("2026-12-01", "09:00", "16:30") if s[11:16] not in taken]
    assert starts(await availability(doctor, **DEC_1)) == expected


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW])
async def test_only_scheduled_appointments_take_a_slot(availability, factories, status):
    doctor, patient = await factories.doctor(), await factories.patient()
    await factories.appointment(
        patient=patient, doctor=doctor, at=at("2026-12-01 09:30"), status=status
    )
    assert starts(await availability(doctor, **DEC_1)) == grid("2026-12-01", "09:00", "16:30")


async def test_cancelling_frees_the_slot(availability, api, factories):
    doctor, patient = await factories.doctor(), await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=doctor, at=at("2026-12-01 09:30")
    )
    assert "2026-12-01T09:30:00Z" not in starts(await availability(doctor, **DEC_1))
    response = await api(
        "DELETE", f"/appointments/{appointment.id}", token=await factories.token(doctor)
    )
    assert response.status_code == 200, response.text
    assert "2026-12-01T09:30:00Z" in starts(await availability(doctor, **DEC_1))


async def test_another_doctors_appointment_takes_nothing(availability, factories):
    doctor, other = await factories.doctor(), await factories.doctor()
    patient = await factories.patient()
    await factories.appointment(patient=patient, doctor=other, at=at("2026-12-01 09:00"))
    assert starts(await availability(doctor, **DEC_1)) == grid("2026-12-01", "09:00", "16:30")


# --- GET: overrides -----------------------------------------------------------------------


async def test_overrides_replace_the_weekly_windows_of_their_date(availability, factories):
    doctor = await factories.doctor(
        overrides={
            date(2026, 12, 2): [],  # Wednesday off
            date(2026, 12, 3): [(time(13), time(14))],  # Thursday: one hour only
            date(2026, 12, 5): [(time(10), time(12))],  # Saturday: extra hours
        }
    )
    response = await availability(doctor, from_="2026-12-02T00:00:00Z", to="2026-12-07T00:00:00Z")
    assert starts(response) == (
        grid("2026-12-03", "13:00", "13:30")
        + grid("2026-12-04", "09:00", "16:30")
        + grid("2026-12-05", "10:00", "11:30")
    )
    assert response.json()["overrides"] == [
        {"date": "2026-12-02", "windows": []},
        {"date": "2026-12-03", "windows": [{"start": "13:00", "end": "14:00"}]},
        {"date": "2026-12-05", "windows": [{"start": "10:00", "end": "12:00"}]},
    ]


async def test_override_dates_are_the_doctors_local_dates(availability, factories):
    # Tokyo is UTC+9 all year: Wednesday 2 Dec there runs from 1 Dec 15:00 UTC.
    doctor = await factories.doctor(timezone="Asia/Tokyo", overrides={date(2026, 12, 2): []})
    wednesday = await availability(doctor, from_="2026-12-01T15:00:00Z", to="2026-12-02T15:00:00Z")
    assert starts(wednesday) == []
    thursday = await availability(doctor, from_="2026-12-02T15:00:00Z", to="2026-12-03T15:00:00Z")
    assert starts(thursday) == grid("2026-12-03", "00:00", "07:30")


# --- GET: daylight saving -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "now", "days"),
    [
        # (local date, UTC time of 09:00 local that day): 09:00 local stays, UTC shifts.
        (
            "America/New_York",
            "2026-03-01 12:00",
            [("2026-03-06", "14:00"), ("2026-03-09", "13:00"), ("2026-03-10", "13:00")],
        ),
        (
            "America/New_York",
            "2026-10-25 12:00",
            [("2026-10-30", "13:00"), ("2026-11-02", "14:00"), ("2026-11-03", "14:00")],
        ),
        (
            "Europe/Berlin",
            "2026-03-22 12:00",
            [("2026-03-27", "08:00"), ("2026-03-30", "07:00"), ("2026-03-31", "07:00")],
        ),
        (
            "Europe/Berlin",
            "2026-10-18 12:00",
            [("2026-10-23", "07:00"), ("2026-10-26", "08:00"), ("2026-10-27", "08:00")],
        ),
    ],
    ids=["new-york-spring", "new-york-fall", "berlin-spring", "berlin-fall"],
)
async def test_nine_to_five_stays_local_across_dst(
    availability, factories, clock, timezone, now, days
):
    clock.at = at(now)
    doctor = await factories.doctor(timezone=timezone)
    first_day, last_day = days[0][0], days[-1][0]
    end = date.fromisoformat(last_day) + timedelta(days=1)
    response = await availability(doctor, from_=f"{first_day}T00:00:00Z", to=f"{end}T00:00:00Z")
    expected = []
    for day, nine in days:
        hour = int(nine[:2])
        expected += grid(day, nine, f"{hour + 7:02d}:30")  # last start 16:30 local
    assert starts(response) == expected
    assert response.json()["timezone"] == timezone


@pytest.mark.parametrize(
    ("timezone", "day", "window", "expected"),
    [
        # 01:00-04:00 on spring-forward day: 02:00 and 02:30 do not exist.
        (
            "America/New_York",
            date(2026, 3, 8),
            (time(1), time(4)),
            ["06:00", "06:30", "07:00", "07:30"],
        ),
        (
            "Europe/Berlin",
            date(2026, 3, 29),
            (time(1), time(4)),
            ["00:00", "00:30", "01:00", "01:30"],
        ),
        # Fall-back day: 01:00 and 01:30 happen twice in New York, offered once (EDT).
        (
            "America/New_York",
            date(2026, 11, 1),
            (time(1), time(3)),
            ["05:00", "05:30", "07:00", "07:30"],
        ),
        # Berlin repeats 02:00-03:00; the first (CEST) occurrence is offered, then 03:00 CET.
        (
            "Europe/Berlin",
            date(2026, 10, 25),
            (time(1), time(4)),
            ["-1 23:00", "-1 23:30", "00:00", "00:30", "02:00", "02:30"],
        ),
    ],
    ids=["new-york-gap", "berlin-gap", "new-york-repeat", "berlin-repeat"],
)
async def test_skipped_starts_are_skipped_and_repeated_ones_offered_once(
    availability, factories, clock, timezone, day, window, expected
):
    clock.at = datetime.combine(day - timedelta(days=3), time(12), tzinfo=UTC)
    doctor = await factories.doctor(timezone=timezone, weekly={}, overrides={day: [window]})
    response = await availability(
        doctor,
        from_=f"{day - timedelta(days=1)}T00:00:00Z",
        to=f"{day + timedelta(days=1)}T12:00:00Z",
    )
    utc_starts = []
    for hhmm in expected:
        on = day - timedelta(days=1) if hhmm.startswith("-1 ") else day
        utc_starts.append(f"{on}T{hhmm.removeprefix('-1 ')}:00Z")
    assert starts(response) == utc_starts  # each lasts 30 minutes of real time


# --- POST ---------------------------------------------------------------------------------

NEW_YORK_DEFINITION = {
    "timezone": "America/New_York",
    "slot_minutes": 60,
    "weekly": [
        {"day": "mon", "start": "13:00", "end": "17:00"},
        {"day": "mon", "start": "09:00", "end": "12:00"},
        {"day": "wed", "start": "10:00", "end": "12:00"},
    ],
    "overrides": [
        {"date": "2026-12-24", "windows": []},
        {"date": "2026-12-27", "windows": [{"start": "10:00", "end": "14:00"}]},
    ],
}


async def test_doctor_replaces_own_availability(post, availability, api, factories):
    doctor = await factories.doctor(overrides={date(2026, 12, 21): []})
    response = await post(doctor, doctor, NEW_YORK_DEFINITION)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["doctor_id"], body["timezone"], body["slot_minutes"]) == (
        doctor.doctor.id,
        "America/New_York",
        60,
    )
    assert body["weekly"] == [
        {"day": "mon", "start": "09:00", "end": "12:00"},
        {"day": "mon", "start": "13:00", "end": "17:00"},
        {"day": "wed", "start": "10:00", "end": "12:00"},
    ]
    assert body["overrides"] == NEW_YORK_DEFINITION["overrides"]  # the old one is gone
    assert body["conflicts"] == []
    # Monday 30 Nov is EST (UTC-5); now is 07:00 there. Next Monday starts after `to`.
    expected = (
        grid("2026-11-30", "14:00", "16:00", 60)
        + grid("2026-11-30", "18:00", "21:00", 60)
        + grid("2026-12-02", "15:00", "16:00", 60)
    )
    assert starts(response, minutes=60) == expected

    again = await availability(doctor)
    assert starts(again, minutes=60) == expected
    assert {k: v for k, v in again.json().items() if k != "slots"} == {
        k: v for k, v in body.items() if k not in {"slots", "conflicts"}
    }
    public = (await api("GET", f"/doctors/{doctor.doctor.id}")).json()
    assert public["timezone"] == "America/New_York"


async def test_the_new_timezone_drives_dst(post, availability, factories, clock):
    clock.at = at("2026-03-02 12:00")
    doctor = await factories.doctor(weekly={})
    response = await post(
        doctor,
        doctor,
        {"timezone": "America/New_York", "slot_minutes": 30, "weekly": NINE_TO_FIVE},
    )
    assert response.status_code == 200, response.text
    week = await availability(doctor, from_="2026-03-04T00:00:00Z", to="2026-03-10T00:00:00Z")
    assert starts(week) == grid("2026-03-04", "14:00", "21:30") + grid(
        "2026-03-09", "13:00", "20:30"
    )


async def test_admin_may_replace_any_doctors_availability(post, factories):
    doctor, admin = await factories.doctor(), await factories.admin()
    response = await post(admin, doctor, {"timezone": "UTC", "slot_minutes": 30, "weekly": []})
    assert response.status_code == 200, response.text
    assert response.json()["weekly"] == [] and response.json()["slots"] == []


async def test_replacing_drops_every_old_window_and_override(post, availability, factories):
    doctor = await factories.doctor(overrides={date(2026, 12, 1): [], date(2026, 12, 5): []})
    body = {"timezone": "UTC", "weekly": [{"day": "tue", "start": "10:00", "end": "11:00"}]}
    assert (await post(doctor, doctor, body)).status_code == 200
    response = await availability(doctor)
    assert response.json()["weekly"] == [{"day": "tue", "start": "10:00", "end": "11:00"}]
    assert response.json()["overrides"] == []
    assert starts(response) == grid("2026-12-01", "10:00", "10:30")


async def test_others_may_not_replace_availability(post, api, availability, factories):
    doctor = await factories.doctor()
    before = (await availability(doctor)).json()
    for actor in (await factories.doctor(), await factories.patient()):
        assert_problem(await post(actor, doctor, NEW_YORK_DEFINITION), 403)
    response = await api(
        "POST", f"/doctors/{doctor.doctor.id}/availability", json=NEW_YORK_DEFINITION
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await availability(doctor)).json() == before


async def test_unknown_or_inactive_doctor_post_is_404(api, factories):
    token = await factories.token(await factories.admin())
    inactive = await factories.doctor(is_active=False)
    for doctor_id in (inactive.doctor.id, 987654321):
        response = await api(
            "POST", f"/doctors/{doctor_id}/availability", token=token, json=NEW_YORK_DEFINITION
        )
        assert_problem(response, 404)


@pytest.mark.parametrize(("minutes", "status"), [(4, 422), (5, 200), (240, 200), (241, 422)])
async def test_slot_minutes_is_5_to_240(post, factories, minutes, status):
    doctor = await factories.doctor()
    body = {"timezone": "UTC", "slot_minutes": minutes, "weekly": NINE_TO_FIVE}
    response = await post(doctor, doctor, body)
    if status == 422:
        problem = assert_problem(response, 422)
        assert any("slot_minutes" in map(str, e["loc"]) for e in problem["errors"]), problem
        return
    assert response.json()["slot_minutes"] == minutes
    slots = starts(response, minutes=minutes)
    if minutes == 5:
        assert slots[:2] == ["2026-11-30T12:00:00Z", "2026-11-30T12:05:00Z"]
        assert len(slots) == 60 + 2 * 96 + 36  # Mon 12-17, Tue-Wed 09-17, next Mon 09-12
    else:  # 09:00-13:00 and 13:00-17:00; Monday's first has begun
        assert slots == [
            "2026-11-30T13:00:00Z",
            "2026-12-01T09:00:00Z",
            "2026-12-01T13:00:00Z",
            "2026-12-02T09:00:00Z",
            "2026-12-02T13:00:00Z",
            "2026-12-07T09:00:00Z",
        ]


def window(start: str, end: str, day: str | None = "mon") -> dict:
    return {"start": start, "end": end} | ({"day": day} if day else {})


@pytest.mark.parametrize(
    "change",
    [
        {"weekly": [window("09:00", "12:00"), window("11:30", "13:00")]},
        {"weekly": [window("09:00", "17:00"), window("10:00", "11:00")]},
        {"weekly": [window("09:00", "09:00")]},
        {"weekly": [window("12:00", "09:00")]},
        {"overrides": [{"date": "2026-12-24", "windows": [window("10:00", "09:00", None)]}]},
        {
            "overrides": [
                {
                    "date": "2026-12-24",
                    "windows": [window("09:00", "12:00", None), window("11:00", "14:00", None)],
                }
            ]
        },
        {"weekly": [window("09:00", "12:00", "monday")]},
        {"weekly": [window("25:00", "26:00")]},
        {"weekly": [window("09:00:30", "12:00")]},
        {"timezone": "Mars/Olympus_Mons"},
        {"slot_minutes": "thirty"},
        {"overrides": [{"date": "2026-02-30", "windows": []}]},
        # Unknown fields, at any depth.
        {"doctor_id": 1},
        {"slots": []},
        {"weekly": [window("09:00", "12:00") | {"room": "3"}]},
        {"overrides": [{"date": "2026-12-24", "windows": [], "note": "holiday"}]},
        {
            "overrides": [
                {"date": "2026-12-24", "windows": [window("09:00", "10:00", None) | {"x": 1}]}
            ]
        },
    ],
)
async def test_invalid_definitions_are_422_and_change_nothing(
    post, availability, factories, change
):
    doctor = await factories.doctor()
    before = (await availability(doctor)).json()
    body = {"timezone": "Europe/Paris", "slot_minutes": 30, "weekly": NINE_TO_FIVE} | change
    assert_problem(await post(doctor, doctor, body), 422)
    assert (await availability(doctor)).json() == before


async def test_touching_windows_and_repeated_days_are_fine(post, factories):
    doctor = await factories.doctor()
    weekly = [window("09:00", "12:00"), window("12:00", "13:00"), window("09:00", "12:00", "tue")]
    response = await post(doctor, doctor, {"timezone": "UTC", "slot_minutes": 60, "weekly": weekly})
    assert response.status_code == 200, response.text
    assert starts(response, minutes=60)[:5] == [
        "2026-11-30T12:00:00Z",
        "2026-12-01T09:00:00Z",
        "2026-12-01T10:00:00Z",
        "2026-12-01T11:00:00Z",
        "2026-12-07T09:00:00Z",
    ]


async def test_conflicts_list_future_bookings_outside_the_new_definition(post, factories, session):
    doctor, patient = await factories.doctor(), await factories.patient()

    async def book(when: str, **kwargs):
        return await factories.appointment(patient=patient, doctor=doctor, at=at(when), **kwargs)

    on_tuesday = await book("2026-12-01 10:00")
    on_christmas_eve = await book("2026-12-24 10:00")
    late_thursday = await book("2026-12-03 16:30")
    kept_thursday = await book("2026-12-03 10:00")
    await book("2026-12-02 10:00", status=Status.CANCELLED)
    await book("2026-11-30 09:00")  # past: no longer matters

    body = {
        "timezone": "UTC",
        "slot_minutes": 60,
        "weekly": [{"day": "thu", "start": "09:00", "end": "16:00"}],
        "overrides": [{"date": "2026-12-24", "windows": []}],
    }
    response = await post(doctor, doctor, body)
    assert response.status_code == 200, response.text
    assert sorted(response.json()["conflicts"]) == sorted(
        [on_tuesday.id, on_christmas_eve.id, late_thursday.id]
    )
    # The booking inside the new hours still takes its slot.
    assert "2026-12-03T10:00:00Z" not in starts(response, minutes=60)
    assert "2026-12-03T11:00:00Z" in starts(response, minutes=60)
    # Replacing never cancels anything.
    for appointment in (on_tuesday, on_christmas_eve, late_thursday, kept_thursday):
        await session.refresh(appointment)
        assert appointment.status == Status.SCHEDULED


async def test_a_booking_inside_the_new_hours_is_no_conflict(post, factories):
    doctor, patient = await factories.doctor(), await factories.patient()
    # Booked on the 30-minute grid; the new 60-minute grid has no 10:30 start, but the
    # doctor still works then, so the booking does not fall outside the definition.
    await factories.appointment(patient=patient, doctor=doctor, at=at("2026-12-01 10:30"))
    body = {"timezone": "UTC", "slot_minutes": 60, "weekly": NINE_TO_FIVE}
    response = await post(doctor, doctor, body)
    assert response.status_code == 200, response.text
    assert response.json()["conflicts"] == []


async def test_a_new_timezone_can_move_hours_away_from_bookings(post, factories):
    doctor, patient = await factories.doctor(), await factories.patient()
    booked = await factories.appointment(patient=patient, doctor=doctor, at=at("2026-12-01 09:00"))
    # 09:00 UTC is 04:00 in New York: outside 09:00-17:00 there.
    body = {"timezone": "America/New_York", "slot_minutes": 30, "weekly": NINE_TO_FIVE}
    response = await post(doctor, doctor, body)
    assert response.status_code == 200, response.text
    assert response.json()["conflicts"] == [booked.id]
