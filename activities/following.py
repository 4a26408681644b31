"""The loop shared by the long-running followers of the global order (relay, projectors)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity

from adapters.notifications import EventNotifications

IDLE_WAKE_SECONDS = 1.0


@dataclass(frozen=True)
class FollowInput:
    """How long one activity run follows before handing back to its workflow."""

    run_seconds: float = 300.0


async def follow(batch: Callable[[], Awaitable[int]], database_url: str, run_seconds: float) -> int:
    """Run batches until `run_seconds` pass, sleeping on LISTEN/NOTIFY when there is no work.

    Heartbeats after every batch, so a dead worker is noticed within the heartbeat timeout
    and the activity resumes elsewhere from the last stored checkpoint.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run_seconds
    moved = 0
    async with EventNotifications(database_url) as notifications:
        while loop.time() < deadline:
            step = await batch()
            moved += step
            activity.heartbeat(moved)
            if step == 0:
                await notifications.wait(IDLE_WAKE_SECONDS)
    return moved
