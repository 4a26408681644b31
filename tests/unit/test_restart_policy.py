"""`up`'s restart policy: backoff per crash, and a crash window that stops the stack."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.config import Settings
from runtime.supervision import (
    CrashHistory,
    RestartPolicy,
    SupervisedPart,
    supervise,
    supervise_all,
)
from tests.waiting import eventually

POLICY = RestartPolicy(max_crashes=5, window_seconds=60.0, first_delay=1.0, max_delay=30.0)


def test_restarts_back_off_doubling_until_the_fifth_crash_within_the_window() -> None:
    history = CrashHistory(POLICY)
    delays = [history.crashed(at) for at in (0.0, 2.0, 5.0, 10.0, 19.0)]
    assert delays == [1.0, 2.0, 4.0, 8.0, None]


def test_crashes_older_than_the_window_no_longer_count() -> None:
    history = CrashHistory(POLICY)
    for at in (0.0, 10.0, 20.0, 30.0):
        assert history.crashed(at) is not None
    # At 75 s only the crashes at 20 s and 30 s are within the last minute.
    assert history.crashed(75.0) == 4.0
    assert history.recent == 3


def test_the_backoff_is_capped() -> None:
    history = CrashHistory(RestartPolicy(max_crashes=10, first_delay=1.0, max_delay=5.0))
    assert [history.crashed(float(n)) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_policy_comes_from_the_restart_settings() -> None:
    settings = Settings(
        restart_max_crashes=3,
        restart_window_seconds=10,
        restart_backoff_seconds=0.5,
        restart_backoff_max_seconds=4,
    )
    assert RestartPolicy.from_settings(settings) == RestartPolicy(3, 10.0, 0.5, 4.0)


class FakePart:
    """A part that exits with status 1 `crashes` times, then runs for good."""

    def __init__(self, crashes: int, failing_restarts: int = 0) -> None:
        self.running = True
        self.crashes_left = crashes
        self.failing_restarts = failing_restarts
        self.restarts = 0

    def exit_status(self) -> int | None:
        if self.running and self.crashes_left > 0:
            self.crashes_left -= 1
            self.running = False
        return None if self.running else 1

    async def restart(self) -> None:
        self.restarts += 1
        if self.failing_restarts > 0:
            self.failing_restarts -= 1
            raise RuntimeError("not ready after 240s\nlog tail")
        self.running = True

    def supervised(self) -> SupervisedPart:
        return SupervisedPart("worker", self.exit_status, Path("worker.log"), self.restart)


class FakeTime:
    """A clock that only moves when the supervisor sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if seconds >= 1.0:
            self.slept.append(seconds)
        await asyncio.sleep(0)


async def test_a_crashing_part_is_restarted_with_backoff_and_reported() -> None:
    part, time, said = FakePart(crashes=3), FakeTime(), []
    supervisor = asyncio.create_task(
        supervise(part.supervised(), POLICY, said.append, clock=time.clock, sleep=time.sleep)
    )

    async def restarted_thrice() -> bool:
        return part.restarts >= 3

    await eventually(restarted_thrice, 10, "the part was restarted three times")
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
    assert time.slept == [1.0, 2.0, 4.0]
    assert said[0] == (
        "worker exited with status 1; restarting it in 1s (crash 1 within 60s; 5 stop the"
        " stack; log worker.log)"
    )
    assert said[1] == "worker restarted"
    assert said.count("worker restarted") == 3


async def test_a_part_crashing_too_often_is_given_up_with_its_cause() -> None:
    part, time, said = FakePart(crashes=100), FakeTime(), []
    cause = await supervise(
        part.supervised(), POLICY, said.append, clock=time.clock, sleep=time.sleep
    )
    assert cause == "worker exited with status 1: 5 crashes within 60s; log worker.log"
    assert part.restarts == 4


async def test_a_restart_that_fails_counts_as_a_crash() -> None:
    part, time, said = FakePart(crashes=1, failing_restarts=100), FakeTime(), []
    cause = await supervise(
        part.supervised(), POLICY, said.append, clock=time.clock, sleep=time.sleep
    )
    assert cause.startswith("worker did not restart (not ready after 240s): 5 crashes")
    assert part.restarts == 4


async def test_stopping_the_supervision_restarts_nothing_more() -> None:
    healthy, crashing = FakePart(crashes=0), FakePart(crashes=100)
    slow = RestartPolicy(first_delay=3600.0, max_delay=3600.0)
    said: list[str] = []
    supervision = asyncio.create_task(
        supervise_all([healthy.supervised(), crashing.supervised()], slow, said.append)
    )

    async def crash_reported() -> bool:
        return bool(said)

    await eventually(crash_reported, 10, "the crash was reported")
    supervision.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervision
    assert crashing.restarts == 0
    assert len(said) == 1 and "restarting it in 3600s" in said[0]
