"""Read-your-writes: waiting until projections have processed a global position.

A projector that moves its checkpoint also sends a NOTIFY on CHECKPOINT_CHANNEL (payload:
checkpoint name and position, delivered when its transaction commits). A process that waits
often keeps one `CheckpointWakeups` listening to it, so a wait ends as soon as the position
is reached instead of at its next poll; the poll stays, every POLL_SECONDS, for what a
notification cannot tell (a replica that has not replayed the commit yet, a listener that
reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.notifications import EventNotifications
from adapters.schema import checkpoints
from projections.projector import CHECKPOINT_CHANNEL, checkpoint_name

log = logging.getLogger(__name__)

POLL_SECONDS = 0.01
RECONNECT_SECONDS = 1.0


async def caught_up(engine: AsyncEngine, projections: Sequence[str], position: int) -> bool:
    """Whether every named projection has processed `position`."""
    names = [checkpoint_name(p) for p in projections]
    query = select(func.count()).where(
        checkpoints.c.name.in_(names), checkpoints.c.position >= position
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one()) == len(names)


async def checkpoint_reach(engine: AsyncEngine, projections: Sequence[str]) -> tuple[int, int]:
    """How far the read models have got: the position every named projection has processed
    (-1 if one has no checkpoint yet), and the furthest any projection has processed.

    A projection processes only committed events, so the furthest is never past the event
    store's head.
    """
    names = [checkpoint_name(p) for p in projections]
    named = checkpoints.c.name.in_(names)
    query = select(
        func.count().filter(named),
        func.min(checkpoints.c.position).filter(named),
        func.max(checkpoints.c.position),
    ).where(checkpoints.c.name.like(checkpoint_name("%")))
    async with engine.connect() as conn:
        found, slowest, furthest = (await conn.execute(query)).one()
    every = int(slowest) if found == len(names) and slowest is not None else -1
    return every, int(furthest or 0)


class CheckpointWatch:
    """One wait's view of the notifications: which of its checkpoints were notified at its
    position or past it since the watch began."""

    def __init__(self, names: Sequence[str], position: int) -> None:
        self.names = frozenset(names)
        self.position = position
        self._reached: set[str] = set()
        self._moved = asyncio.Event()

    def notified(self, name: str, position: int) -> None:
        if name in self.names and position >= self.position:
            self._reached.add(name)
            self._moved.set()

    def reached(self) -> bool:
        """Whether every checkpoint watched was notified at the position or past it."""
        return self._reached >= self.names

    async def wait(self, seconds: float) -> None:
        """Return once one of the checkpoints is notified at the position or past it (or was,
        since the last wait), or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), seconds)
        self._moved.clear()


class CheckpointWakeups:
    """Wakes waiters when a checkpoint they wait on is notified at or past their position."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._watches: set[CheckpointWatch] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen from now on (in a task of its own, reconnecting after a failure)."""
        self._task = asyncio.create_task(self._listen(), name="checkpoint-wakeups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watch(self, names: Sequence[str], position: int) -> Iterator[CheckpointWatch]:
        """Watch the checkpoints `names` for a move to `position` or past it, for the block."""
        watch = CheckpointWatch(names, position)
        self._watches.add(watch)
        try:
            yield watch
        finally:
            self._watches.discard(watch)

    def notified(self, payload: str) -> None:
        """A checkpoint moved: `payload` is its name and position, space-separated."""
        name, _, position_text = payload.rpartition(" ")
        if not position_text.isdigit():
            return
        position = int(position_text)
        for watch in list(self._watches):
            watch.notified(name, position)

    async def _listen(self) -> None:
        while True:
            try:
                async with EventNotifications(self._database_url, CHECKPOINT_CHANNEL) as listen:
                    async for payload in listen.payloads():
                        self.notified(payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # waits fall back to polling meanwhile
                log.warning("checkpoint notifications interrupted, listening again: %r", error)
            await asyncio.sleep(RECONNECT_SECONDS)


async def wait_until_caught_up(
    engine: AsyncEngine,
    projections: Sequence[str],
    position: int,
    seconds: float,
    wakeups: CheckpointWakeups | None = None,
    trust_notifications: bool = False,
) -> bool:
    """Wait (bounded) until the projections have processed `position`; False on timeout.

    With `wakeups`, a notification that a checkpoint reached the position ends the pause
    between two checks early; the watch starts before the first check, so a move notified
    while that check runs still ends the pause. With `trust_notifications` too (`engine`
    reads the database the notifications come from, not a replica), once every projection
    was notified at the position or past it the wait is over without another check: a
    notification is delivered only after its checkpoint's move committed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    if wakeups is None:
        while not await caught_up(engine, projections, position):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True
    with wakeups.watch([checkpoint_name(p) for p in projections], position) as watch:
        while not (trust_notifications and watch.reached()):
            if await caught_up(engine, projections, position):
                return True
            left = deadline - loop.time()
            if left <= 0:  # a move notified during the last check still counts
                return trust_notifications and watch.reached()
            await watch.wait(min(POLL_SECONDS, left))
        return True
