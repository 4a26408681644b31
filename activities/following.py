"""The loop shared by the long-running followers of the global order (relay, projectors)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from temporalio import activity

from adapters.notifications import EventNotifications

IDLE_WAKE_SECONDS = 1.0
HEARTBEAT_EVERY_SECONDS = 0.5
"""How often a long-running activity tells Temporal it is alive (the SDK throttles sends)."""


@dataclass(frozen=True)
class FollowInput:
    """How long one activity run follows before handing back to its workflow."""

    run_seconds: float = 300.0


@contextlib.asynccontextmanager
async def heartbeating(details: Callable[[], object]) -> AsyncIterator[None]:
    """Heartbeat from a task of its own for as long as the block runs.

    A batch that waits on an outage (a broker that does not answer, a database that is
    down) does not stop the heartbeats, so the heartbeat timeout can be short: it notices a
    dead worker, not a slow batch.
    """

    async def beat() -> None:
        while True:
            activity.heartbeat(details())
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def follow(batch: Callable[[], Awaitable[int]], database_url: str, run_seconds: float) -> int:
    """Run batches until `run_seconds` pass, sleeping on LISTEN/NOTIFY when there is no work.

    Heartbeats all along, so a dead worker is noticed within the heartbeat timeout and the
    activity resumes elsewhere from the last stored checkpoint.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run_seconds
    moved = 0
    async with heartbeating(lambda: moved), EventNotifications(database_url) as notifications:
        while loop.time() < deadline:
            step = await batch()
            moved += step
            if step == 0:
                await notifications.wait(IDLE_WAKE_SECONDS)
    return moved
