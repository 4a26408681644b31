"""What the long-running singleton followers share: the relay's and projectors' loop, their
heartbeats, and the fence that lets one instance of each work at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.follower_fence import FenceTimings, FollowerFence
from adapters.notifications import EventNotifications

IDLE_WAKE_SECONDS = 1.0
HEARTBEAT_EVERY_SECONDS = 0.5
"""How often a long-running activity tells Temporal it is alive (the SDK throttles sends)."""
FENCE_TRY_EVERY_SECONDS = 0.25
"""How often an instance waiting for its follower's fence tries to take it."""
FENCE_WAIT_SECONDS = 30.0
"""How long an instance waits for the fence before failing, for Temporal to try again."""
FOLLOWER_HELD_ELSEWHERE = "FollowerHeldElsewhere"

T = TypeVar("T")


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


async def fenced(
    database_url: str,
    name: str,
    work: Callable[[], Awaitable[T]],
    wait_seconds: float = FENCE_WAIT_SECONDS,
    timings: FenceTimings | None = None,
) -> T:
    """Run `work` holding follower `name`'s fence, so no other instance of it works meanwhile.

    While another instance holds the fence this one waits, trying again every
    FENCE_TRY_EVERY_SECONDS; after `wait_seconds` it fails with FollowerHeldElsewhere
    (retryably, so Temporal tries again later). While `work` runs, the fence watches its
    connection (`FollowerFence.watch`, with `timings`): once it is lost, another instance
    may take the fence, so `work` is cancelled and FenceLost raised, whatever `work` then
    does. The caller heartbeats, also while this waits.

    A lost fence waits for `work` to unwind for the timings' margin at most (what the fence
    leaves for it, see FenceTimings): work stuck on an outage is left cancelled, so the
    caller stops heartbeating and Temporal may move the activity.
    """
    loop = asyncio.get_running_loop()
    async with FollowerFence(database_url, name, timings) as held:
        give_up = loop.time() + wait_seconds
        while not await held.try_hold():
            if loop.time() >= give_up:
                raise ApplicationError(
                    f"follower {name} is held by another instance for over {wait_seconds:g} s",
                    type=FOLLOWER_HELD_ELSEWHERE,
                )
            await asyncio.sleep(FENCE_TRY_EVERY_SECONDS)
        working = asyncio.ensure_future(work())
        working.add_done_callback(_retrieve)
        watching = asyncio.ensure_future(held.watch())
        try:
            await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (working, watching):
                task.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            lost = None if watching.cancelled() else watching.exception()
            if lost is None:
                await asyncio.gather(working, return_exceptions=True)
            else:
                await asyncio.wait({working}, timeout=held.timings.margin)
        if lost is not None:
            raise lost
        return working.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Take a finished task's error, so one left behind to unwind is not reported unread."""
    if not task.cancelled():
        task.exception()


async def follow(
    batch: Callable[[], Awaitable[int]],
    database_url: str,
    run_seconds: float,
    fence: str,
    pacing: Pacing | None = None,
) -> int:
    """Run batches until `run_seconds` pass, sleeping on LISTEN/NOTIFY when there is no work
    (see `run_batches` for how `pacing` spaces them).

    Heartbeats all along, so a dead worker is noticed within the heartbeat timeout and the
    activity resumes elsewhere from the last stored checkpoint; batches run only while this
    instance holds the follower's fence (named `fence`, see `fenced`).
    """
    moved = 0

    def count(step: int) -> None:
        nonlocal moved
        moved += step

    async def batches() -> int:
        loop = asyncio.get_running_loop()
        async with EventNotifications(database_url) as notifications:
            await run_batches(
                batch, notifications, loop.time() + run_seconds, pacing or Pacing(), count
            )
        return moved

    async with heartbeating(lambda: moved):
        return await fenced(database_url, fence, batches)


@dataclass(frozen=True)
class Pacing:
    """How a follower spaces its batches.

    `page_size`: a batch that moved the checkpoint by less than this read a page that was
    not full, so it saw every commit notified before it began: the next batch waits for a
    notification instead of reading an empty page at once. None: every batch that moved
    is followed by another at once (for a batch whose step says nothing of its page).

    `coalesce_seconds`: a notification that comes less than this after a batch that moved
    the checkpoint is acted on only once that much has passed since the batch ended, so
    the commits arriving meanwhile share one batch. A commit that finds the follower idle
    (its last batch moved nothing) is acted on at once; any other within this bound.
    """

    page_size: int | None = None
    coalesce_seconds: float = 0.0


async def run_batches(
    batch: Callable[[], Awaitable[int]],
    notifications: EventNotifications,
    deadline: float,
    pacing: Pacing,
    moved: Callable[[int], object],
) -> None:
    """Run batches until the loop's clock passes `deadline`, each woken by a notification
    (or after IDLE_WAKE_SECONDS without one) and spaced by `pacing`; `moved` is told each
    batch's step."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        # What was notified while the last batch ran is in the next one: no wake-up
        # for it after that batch.
        await notifications.drain()
        step = await batch()
        moved(step)
        ended = loop.time()
        if step != 0 and (pacing.page_size is None or not 0 < step < pacing.page_size):
            continue  # a full page, or a move back: more may be there already
        if not await notifications.wait(IDLE_WAKE_SECONDS) or step == 0:
            continue
        # Busy: let the commits arriving within the window share the next batch.
        pause = ended + pacing.coalesce_seconds - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
