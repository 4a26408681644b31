"""The fence's timing rule: a holder cut off notices before Postgres hands its lock on."""

from __future__ import annotations

import pytest

from adapters.follower_fence import UNWATCHED, FenceTimings


def test_the_default_timings_notice_a_lost_connection_within_the_idle_timeout() -> None:
    timings = FenceTimings()
    assert timings.check_every + timings.check_timeout + timings.margin < timings.idle_timeout


@pytest.mark.parametrize(
    ("check_every", "check_timeout", "margin"),
    [(1.0, 5.0, 4.0), (5.0, 5.0, 0.0), (0.5, 9.6, 0.0), (1.0, 5.0, 5.0)],
)
def test_checks_that_could_notice_too_late_are_refused(
    check_every: float, check_timeout: float, margin: float
) -> None:
    with pytest.raises(ValueError, match="too late"):
        FenceTimings(10.0, check_every, check_timeout, margin)


def test_negative_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        FenceTimings(10.0, -1.0)


def test_a_fence_without_an_idle_timeout_has_no_rule_to_keep() -> None:
    assert UNWATCHED.idle_timeout == 0
    FenceTimings(idle_timeout=0, check_every=60.0)
