"""The circuit breaker in front of Redis, on a fake clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ehass.config import Settings
from ehass.core.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _breaker(clock: FakeClock, **overrides: float) -> CircuitBreaker:
    options = {"failure_threshold": 3, "open_seconds": 2.0, "max_open_seconds": 30.0}
    options.update(overrides)
    return CircuitBreaker(clock=clock, **options)  # type: ignore[arg-type]


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == BreakerState.OPEN


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    assert not breaker.record_failure()
    assert not breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.record_failure()  # the third opens it
    assert breaker.state == BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = _breaker(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    assert breaker.allow()


def test_it_stays_open_for_the_bounded_time_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.advance(1.99)
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(0.01)
    clock.advance(0.01)
    assert breaker.state == BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still waits for its answer
    assert not breaker.allow()


def test_a_successful_probe_closes_it() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.advance(2)
    assert breaker.allow()
    assert breaker.record_success()
    assert breaker.state == BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(5))
    # Closed anew: it takes the full threshold to open it again, for the base time.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.open_for == 2.0


def test_a_failed_probe_reopens_it_for_twice_as_long_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, max_open_seconds=10.0)
    _open(breaker)
    periods = []
    for _ in range(5):
        clock.advance(breaker.seconds_until_probe())
        assert breaker.allow()
        assert breaker.record_failure()
        periods.append(breaker.seconds_until_probe())
        assert not breaker.allow()
    assert periods == [4.0, 8.0, 10.0, 10.0, 10.0]


def test_failures_of_calls_started_before_it_opened_do_not_extend_it() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.advance(1.5)
    assert not breaker.record_failure()  # a slow call that was already under way
    assert breaker.seconds_until_probe() == pytest.approx(0.5)


def test_a_probe_that_never_reports_does_not_keep_it_open_forever() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.advance(2)
    assert breaker.allow()  # this probe's task is cancelled: no outcome is ever reported
    clock.advance(1.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()  # another caller probes after one more open period


@pytest.mark.parametrize(
    ("threshold", "open_seconds", "max_open_seconds"),
    [(0, 2.0, 30.0), (3, 0.0, 30.0), (3, 5.0, 4.0)],
)
def test_bad_bounds_are_refused(
    threshold: int, open_seconds: float, max_open_seconds: float
) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        CircuitBreaker(
            failure_threshold=threshold,
            open_seconds=open_seconds,
            max_open_seconds=max_open_seconds,
        )


def test_settings_refuse_a_cap_below_the_first_open_period() -> None:
    with pytest.raises(ValidationError, match="MAX_OPEN_SECONDS must not be below"):
        Settings(_env_file=None, redis_breaker_open_seconds=10, redis_breaker_max_open_seconds=5)
