from __future__ import annotations

import asyncio

import pytest

from runtime.embedded.process import ComponentStartError
from runtime.launcher import Deadline, start_together


async def test_start_together_runs_every_start_at_once() -> None:
    both_running = asyncio.Barrier(2)

    async def start() -> None:
        await asyncio.wait_for(both_running.wait(), timeout=10)

    await start_together({"first": start(), "second": start()})


async def test_a_failing_start_stops_the_others_and_names_them() -> None:
    cancelled: list[str] = []

    async def never_ready(name: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def late() -> None:
        raise ComponentStartError("temporal was not ready after 240s; log temporal.log:\n...")

    with pytest.raises(ComponentStartError) as raised:
        await start_together(
            {
                "PostgreSQL": never_ready("PostgreSQL"),
                "Temporal": late(),
                "broker": never_ready("broker"),
            }
        )

    message = str(raised.value)
    assert message.startswith("temporal was not ready after 240s; log temporal.log:")
    assert message.endswith("(stopped while still starting: PostgreSQL, broker)")
    assert sorted(cancelled) == ["PostgreSQL", "broker"]


async def test_an_unexpected_error_of_a_start_is_raised_as_it_is() -> None:
    async def broken() -> None:
        raise OSError("no such file")

    with pytest.raises(OSError, match="no such file"):
        await start_together({"broken": broken()})


def test_a_deadline_leaves_a_little_time_for_one_last_check_once_passed() -> None:
    passed = Deadline(0.0)

    assert 0 < passed.remaining() <= 0.1
    assert Deadline(60.0).remaining() > 59
