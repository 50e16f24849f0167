"""A circuit breaker: after repeated failures, stop calling a dependency for a while.

A dependency that accepts connections but never answers costs every caller its full
timeout. After `failure_threshold` consecutive failures the breaker opens: callers are
told at once not to call, for `open_seconds`. Then one call is let through as a probe
(half-open). Its success closes the breaker; its failure opens it again for twice as
long, up to `max_open_seconds`, so a long outage costs one timeout per period at most.

Pure: callers report each outcome, and the clock (seconds, monotonic) is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # the open time is over: the next call is a probe


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        open_seconds: float = 2.0,
        max_open_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if open_seconds <= 0 or max_open_seconds < open_seconds:
            raise ValueError("need 0 < open_seconds <= max_open_seconds")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.max_open_seconds = max_open_seconds
        self._clock = clock
        self._failures = 0
        self._open_for = open_seconds
        self._open_until: float | None = None  # None while closed
        self._probe_since: float | None = None

    @property
    def state(self) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        if self._probe_since is None and self._clock() < self._open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def open_for(self) -> float:
        """How long the breaker stays open the next time a probe fails (or the current
        period, while open)."""
        return self._open_for

    def seconds_until_probe(self) -> float:
        """0 when a call may be made now (closed, or a probe is due)."""
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    def allow(self) -> bool:
        """Whether to make the call. Half-open, only one caller gets True: the probe."""
        if self._open_until is None:
            return True
        now = self._clock()
        if self._probe_since is not None:
            # A probe that never reported (its task was cancelled) must not shut the
            # dependency out for good: after one open period another caller probes.
            if now - self._probe_since < self._open_for:
                return False
        elif now < self._open_until:
            return False
        self._probe_since = now
        return True

    def record_success(self) -> bool:
        """The dependency answered. True when this closed the breaker."""
        self._failures = 0
        if self._open_until is None:
            return False
        self._open_until = None
        self._probe_since = None
        self._open_for = self.open_seconds
        return True

    def record_failure(self) -> bool:
        """The call failed or timed out. True when this opened the breaker (again)."""
        now = self._clock()
        if self._open_until is not None:
            if self._probe_since is None:
                return False  # a call started before the breaker opened: already counted
            self._open_for = min(self._open_for * 2, self.max_open_seconds)
            self._open_until = now + self._open_for
            self._probe_since = None
            return True
        self._failures += 1
        if self._failures < self.failure_threshold:
            return False
        self._open_for = self.open_seconds
        self._open_until = now + self._open_for
        return True
